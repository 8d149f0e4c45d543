// Package scantest generates credentials in every format keygate's scanner
// knows, near misses that must not be reported, and labelled corpora of
// source-like files holding both, for the scanner's tests and benchmarks.
// Every value is made at run time from a seeded generator: nothing here is
// a real credential, and no file in the repository holds one.
package scantest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/keygate/keygate/internal/scan"
)

const (
	b62chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	hexchars = "0123456789abcdef"
)

// Sample is one credential, or one near miss, as it would be written in a
// file.
type Sample struct {
	Rule   string // the rule that must report it; for a near miss, the one it imitates
	Family string
	Secret string // the credential (for a near miss, the imitation)
	Name   string // the variable it is assigned to, if any
}

// Gen makes samples from a seeded source.
type Gen struct {
	rnd   *rand.Rand
	rules map[string]scan.Rule
	pems  map[string][]string // cached private keys by rule, key generation is slow
}

// NewGen returns a generator seeded with seed.
func NewGen(seed uint64) *Gen {
	g := &Gen{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rules: map[string]scan.Rule{}, pems: map[string][]string{}}
	for _, r := range scan.Rules() {
		g.rules[r.ID] = r
	}
	return g
}

// Rand is the generator's source.
func (g *Gen) Rand() *rand.Rand { return g.rnd }

func (g *Gen) str(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rnd.IntN(len(alphabet))]
	}
	return string(b)
}

// CRC32Token returns prefix, 30 random base62 characters and their base62
// CRC-32: a token shaped like GitHub's and npm's, made at run time.
func (g *Gen) CRC32Token(prefix string) string {
	body := g.str(b62chars, 30)
	return prefix + body + scan.Base62CRC32([]byte(body))
}

// KeygateKey returns a well-formed kg_ key for env with a correct checksum.
func (g *Gen) KeygateKey(env string) string {
	body := g.str(b62chars[:len(b62chars)], 43)
	if body > "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1" {
		body = "a" + body[1:]
	}
	s := "kg_" + env + "_" + body
	return s + scan.Base62CRC32([]byte(s))
}

// Positive returns a credential the rule with id must report.
func (g *Gen) Positive(id string) Sample {
	r, ok := g.rules[id]
	if !ok {
		panic("scantest: no rule " + id)
	}
	s := Sample{Rule: r.ID, Family: r.Family}
	switch {
	case strings.HasPrefix(id, "github-") && id != "github-fine-grained-pat":
		s.Secret = g.CRC32Token(r.Anchors[0])
	case id == "npm-token":
		s.Secret = g.CRC32Token("npm_")
	case id == "keygate-api-key":
		s.Secret = g.KeygateKey([]string{"live", "test", "dev", "prod"}[g.rnd.IntN(4)])
	case strings.HasPrefix(id, "openai-") && id != "openai-legacy-key":
		s.Secret = r.Anchors[0] + g.str(b62chars+"_-", 74) + "T3BlbkFJ" + g.str(b62chars+"_-", 74)
	case id == "openai-legacy-key":
		s.Secret = "sk-" + g.str(b62chars, 20) + "T3BlbkFJ" + g.str(b62chars, 20)
	case strings.HasPrefix(id, "anthropic-"):
		s.Secret = r.Anchors[0] + g.str(b62chars+"_-", 93) + "AA"
	case id == "jwt":
		s.Secret = g.JWT()
	case strings.HasPrefix(id, "private-key-"):
		s.Secret = g.privateKey(id)
	case id == "gcp-service-account":
		s.Secret = g.serviceAccount()
	case id == "database-url-password":
		scheme := []string{"postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqps"}[g.rnd.IntN(6)]
		s.Secret = scheme + "://app_" + g.str("abcdefghij", 4) + ":" + g.password() + "@db-" + g.str(hexchars, 6) + ".internal:5432/app"
	case id == "url-credentials":
		s.Secret = "https://deploy:" + g.password() + "@artifacts.example-corp.io/repo"
	case id == "generic-secret":
		s.Name = []string{"DB_PASSWORD", "db_password", "apiSecret", "client_secret", "SMTP_PASSWORD", "auth_token", "webhookSecret", "SERVICE_API_KEY", "admin_passwd"}[g.rnd.IntN(9)]
		s.Secret = g.password()
		return s
	case id == "authorization-bearer":
		s.Secret = g.str(b62chars, 40)
		return s
	case id == "azure-sas-token":
		sig := base64.StdEncoding.EncodeToString([]byte(g.str(b62chars, 32)))
		s.Secret = "https://acct" + g.str(hexchars, 6) + ".blob.core.windows.net/data?sv=2022-11-02&ss=b&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&sig=" +
			strings.ReplaceAll(sig, "=", "%3D")
	case id == "mailchimp-api-key":
		s.Secret = g.str(hexchars, 32) + "-us" + fmt.Sprint(1+g.rnd.IntN(20))
	case id == "telegram-bot-token":
		s.Secret = fmt.Sprint(100000000+g.rnd.IntN(899999999)) + ":AA" + g.str(b62chars+"_-", 33)
	case r.Rank == scan.RankContext:
		s.Secret = fromPattern(g.rnd, r.Pattern, "s")
		s.Name = strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(r.Anchors[0])) + "_KEY"
		if strings.HasSuffix(strings.ToUpper(r.Anchors[0]), "KEY") {
			s.Name = strings.ToUpper(r.Anchors[0])
		}
		return s
	default:
		s.Secret = fromPattern(g.rnd, r.Pattern, "")
	}
	// Credentials are mostly assigned to names after their issuer, as
	// people write them (GROQ_API_KEY=...).
	if g.rnd.IntN(4) > 0 {
		s.Name = strings.ToUpper(strings.ReplaceAll(r.Family, "-", "_")) + []string{"_API_KEY", "_TOKEN", "_KEY", "_SECRET"}[g.rnd.IntN(4)]
	}
	return s
}

// password returns a password-like value with letters, digits and symbols.
func (g *Gen) password() string {
	n := 12 + g.rnd.IntN(16)
	for {
		p := g.str(b62chars+"!#%^*_+=-", n)
		if strings.ContainsAny(p, "0123456789") && strings.ContainsAny(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			return p
		}
	}
}

// JWT returns a signed-looking JWT with a JSON header and claims.
func (g *Gen) JWT() string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	c := enc.EncodeToString(fmt.Appendf(nil, `{"sub":"%s","iat":%d,"scope":"read write"}`, g.str(hexchars, 12), 1700000000+g.rnd.IntN(1e8)))
	return h + "." + c + "." + enc.EncodeToString([]byte(g.str(b62chars, 32)))
}

func (g *Gen) privateKey(id string) string {
	if ks := g.pems[id]; len(ks) >= 3 {
		return ks[g.rnd.IntN(len(ks))]
	}
	var out string
	switch id {
	case "private-key-rsa":
		k, _ := rsa.GenerateKey(cryptoReader{g.rnd}, 1024)
		out = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	case "private-key-ec":
		k, _ := ecdsa.GenerateKey(elliptic.P256(), cryptoReader{g.rnd})
		der, _ := x509.MarshalECPrivateKey(k)
		out = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	case "private-key-pkcs8":
		_, k, _ := ed25519.GenerateKey(cryptoReader{g.rnd})
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		out = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	case "private-key-openssh":
		_, k, _ := ed25519.GenerateKey(cryptoReader{g.rnd})
		b, _ := ssh.MarshalPrivateKey(k, "")
		out = string(pem.EncodeToMemory(b))
	default:
		typ := map[string]string{"private-key-dsa": "DSA PRIVATE KEY", "private-key-encrypted": "ENCRYPTED PRIVATE KEY", "private-key-pgp": "PGP PRIVATE KEY BLOCK"}[id]
		body := make([]byte, 600)
		for i := range body {
			body[i] = byte(g.rnd.IntN(256))
		}
		out = string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: body}))
	}
	out = strings.TrimSuffix(out, "\n")
	g.pems[id] = append(g.pems[id], out)
	return out
}

func (g *Gen) serviceAccount() string {
	key := strings.ReplaceAll(g.privateKey("private-key-pkcs8")+"\n", "\n", `\n`)
	sa := map[string]string{"type": "service_account", "project_id": "proj-" + g.str(hexchars, 6), "private_key_id": g.str(hexchars, 40)}
	head, _ := json.Marshal(sa)
	// private_key follows the other fields, as in the files Google issues.
	return strings.TrimSuffix(string(head), "}") + `,"private_key":"` + key + `","client_email":"svc@proj.iam.gserviceaccount.com"}`
}

// SecretOf returns the part of s.Secret the rule reports (a URL's
// password, a service account's private key).
func SecretOf(s Sample) string {
	switch s.Rule {
	case "database-url-password", "url-credentials":
		rest := s.Secret[strings.Index(s.Secret, "://")+3:]
		return rest[strings.Index(rest, ":")+1 : strings.LastIndex(rest, "@")]
	case "gcp-service-account":
		v := s.Secret[strings.Index(s.Secret, `"private_key":"`)+len(`"private_key":"`):]
		return v[:strings.Index(v, `"`)]
	case "azure-sas-token":
		return s.Secret[strings.Index(s.Secret, "sig=")+4:]
	case "slack-webhook", "discord-webhook", "teams-webhook", "azure-storage-account-key":
		return groupS(s.Rule, s.Secret)
	}
	return s.Secret
}

func groupS(id, text string) string {
	for _, r := range scan.Rules() {
		if r.ID == id {
			re := regexp.MustCompile(r.Pattern)
			m := re.FindStringSubmatch(text)
			if i := re.SubexpIndex("s"); m != nil && i > 0 {
				return m[i]
			}
		}
	}
	return text
}

// cryptoReader adapts the seeded source to the io.Reader key generation
// wants, so generated keys are reproducible. Test keys only.
type cryptoReader struct{ r *rand.Rand }

func (c cryptoReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c.r.Uint32())
	}
	return len(p), nil
}

// hexOf is a short random hex string.
func (g *Gen) hexOf(n int) string { return hex.EncodeToString([]byte(g.str(b62chars, n)))[:n] }
