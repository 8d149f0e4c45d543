package scan

import (
	"bytes"
)

func shapeRules() []Rule {
	pem := func(id, desc, kind string) Rule {
		begin := "-----BEGIN " + kind + "PRIVATE KEY-----"
		return Rule{ID: id, Family: "private-key", Description: desc,
			Anchors: []string{begin},
			Pattern: `-----BEGIN ` + kind + `PRIVATE KEY-----(?:\r?\n|\\r?\\n)(?:[A-Za-z-]+: [^\r\n\\]*(?:\r?\n|\\r?\\n))*(?:\r?\n|\\r?\\n)?[A-Za-z0-9+/=\s\\n]{64,}?-----END ` + kind + `PRIVATE KEY-----`,
			MaxLen:  12200, Rank: RankShape, Free: true, Structured: true}
	}
	return []Rule{
		pem("private-key-rsa", "RSA private key (PEM)", "RSA "),
		pem("private-key-ec", "EC private key (PEM)", "EC "),
		pem("private-key-dsa", "DSA private key (PEM)", "DSA "),
		pem("private-key-openssh", "OpenSSH private key", "OPENSSH "),
		pem("private-key-pkcs8", "PKCS #8 private key (PEM)", ""),
		pem("private-key-encrypted", "Encrypted PKCS #8 private key (PEM)", "ENCRYPTED "),
		{ID: "private-key-pgp", Family: "private-key", Description: "PGP private key block",
			Anchors: []string{"-----BEGIN PGP PRIVATE KEY BLOCK-----"},
			Pattern: `-----BEGIN PGP PRIVATE KEY BLOCK-----[A-Za-z0-9+/=\s:.\\-]{64,}?-----END PGP PRIVATE KEY BLOCK-----`,
			MaxLen:  20100, Rank: RankShape, Free: true, Structured: true},
		{ID: "jwt", Family: "jwt", Description: "JSON Web Token",
			Anchors: []string{"eyJ"}, Pattern: `eyJ` + b64url + `{8,1000}\.eyJ` + b64url + `{8,}\.` + b64url + `{16,1000}`,
			MaxLen: 6010, MinEntropy: 3, Rank: RankShape, Check: jwtShape, Structured: true},
		{ID: "database-url-password", Family: "database", Description: "Database connection URL with a password",
			Anchors: []string{"postgres://", "postgresql://", "mysql://", "mariadb://", "mongodb://", "mongodb+srv://",
				"redis://", "rediss://", "amqp://", "amqps://", "sqlserver://", "mssql://", "clickhouse://", "cockroachdb://"},
			Pattern: `[a-z+]{4,16}://(?P<n>[^:@/\s"'<>]{1,64}):(?P<s>[^@/\s"'<>]{4,128})@[A-Za-z0-9.\-_\[\]:]+`,
			MaxLen:  400, Rank: RankShape, Free: true, Check: notDefaultPassword},
		{ID: "url-credentials", Family: "url", Description: "Password in a URL",
			Anchors: []string{"https://", "http://", "ftp://", "sftp://", "smtp://", "ldap://", "ldaps://"},
			Pattern: `[a-z]{3,6}://(?P<n>[A-Za-z0-9._%+-]{1,64}):(?P<s>[^@/\s"'<>:]{6,128})@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`,
			MaxLen:  400, MinEntropy: 2.5, Rank: RankShape, Free: true, Check: notDefaultPassword},
		{ID: "keygate-api-key", Family: "keygate", Description: "keygate API key",
			Anchors: []string{"kg_"}, Pattern: `kg_[a-z][a-z0-9]{1,9}_` + b62 + `{49}`, MaxLen: 62,
			Rank: RankToken, Check: keygateKey, Keygate: true},
		{ID: "keygate-refresh-token", Family: "keygate", Description: "keygate refresh token",
			Anchors: []string{"kgr_"}, Pattern: `kgr_` + b62 + `{43}`, MaxLen: 47, MinEntropy: 3.5, Rank: RankToken, Keygate: true},
		{ID: "authorization-bearer", Family: "generic", Description: "Bearer token in an Authorization header",
			Anchors: []string{"bearer "}, Pattern: `(?i:bearer) {1,4}(?P<s>[A-Za-z0-9._~+/-]{20,500}=*)`, MaxLen: 520,
			MinEntropy: 3.5, Rank: RankGeneric, Check: mixedValue},
		generic(),
	}
}

// notDefaultPassword refuses passwords every tutorial uses.
func notDefaultPassword(p []byte) bool {
	switch string(bytes.ToLower(p)) {
	case "password", "pass", "passwd", "secret", "postgres", "mysql", "root", "admin", "guest",
		"user", "test", "example", "changeme", "pwd", "redis", "mongo", "mongodb", "hunter2":
		return false
	}
	return true
}
