package fakecloud

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// CloudPlatformScope is the OAuth scope Google's Secret Manager and Vertex
// AI accept; the fake's tokens are issued for the scope asked for.
const CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// GoogleToken is a fake Google OAuth 2.0 token endpoint: it accepts the
// JWT bearer grant (RFC 7523) from service accounts whose public key it
// holds, verifying the assertion's RS256 signature, issuer, audience and
// lifetime, as oauth2.googleapis.com/token does.
type GoogleToken struct {
	URL      string                    // its own token URL, the JWT's expected audience
	Accounts map[string]*rsa.PublicKey // client_email -> public key
	Lifetime time.Duration             // default 1h
	Tokens   Tokens
}

// ServiceAccountJSON builds a service-account key file for email signed by
// key, whose token_uri is this fake.
func (g *GoogleToken) ServiceAccountJSON(email, project string, key *rsa.PrivateKey) []byte {
	if g.Accounts == nil {
		g.Accounts = map[string]*rsa.PublicKey{}
	}
	g.Accounts[email] = &key.PublicKey
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "fake-key-id",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1234567890", "token_uri": g.URL,
	})
	return b
}

// ServeHTTP answers the token request.
func (g *GoogleToken) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
		return
	}
	scope, err := g.verify(r.PostForm.Get("assertion"))
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": err.Error()})
		return
	}
	life := g.Lifetime
	if life == 0 {
		life = time.Hour
	}
	writeJSON(w, 200, map[string]any{"access_token": g.Tokens.issue(scope, life), "expires_in": int(life.Seconds()), "token_type": "Bearer"})
}

func (g *GoogleToken) verify(assertion string) (string, error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", errors.New("the assertion is not a JWT")
	}
	var hdr struct{ Alg string }
	var claims struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return "", errors.New("the assertion is not base64url")
	}
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil || hdr.Alg != "RS256" {
		return "", errors.New("the assertion must be an RS256 JWT")
	}
	pub, ok := g.Accounts[claims.Iss]
	if !ok {
		return "", errors.New("Invalid JWT Signature: unknown service account")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return "", errors.New("Invalid JWT Signature")
	}
	now := time.Now().Unix()
	switch {
	case claims.Aud != g.URL:
		return "", fmt.Errorf("Invalid JWT: audience must be the token URI")
	case claims.Exp < now || claims.Iat > now+300 || claims.Exp-claims.Iat > 3600:
		return "", errors.New("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe")
	case claims.Scope == "":
		return "", errors.New("Invalid JWT: no scope")
	}
	return strings.Fields(claims.Scope)[0], nil
}

// SecretManager is a fake Google Secret Manager REST API (v1) whose
// requests must carry a token from a GoogleToken for the cloud-platform
// scope.
type SecretManager struct {
	Token *GoogleToken

	mu      sync.Mutex
	secrets map[string][]string // "projects/P/secrets/S" -> versions' values
	fail    bool
	corrupt bool
}

// Put adds value as the newest version of secret name in project.
func (s *SecretManager) Put(project, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string][]string{}
	}
	k := "projects/" + project + "/secrets/" + name
	s.secrets[k] = append(s.secrets[k], value)
}

// Fail makes every request answer 403 PERMISSION_DENIED until Fail(false).
func (s *SecretManager) Fail(on bool) { s.mu.Lock(); s.fail = on; s.mu.Unlock() }

// Corrupt makes access answers carry a checksum that does not match the
// payload, as a damaged answer would.
func (s *SecretManager) Corrupt(on bool) { s.mu.Lock(); s.corrupt = on; s.mu.Unlock() }

func googleError(w http.ResponseWriter, status int, state, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "status": state}})
}

// ServeHTTP serves :access of a version and the secret list.
func (s *SecretManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.Token.Tokens.Check(r.Header.Get("Authorization"), CloudPlatformScope); err != nil {
		googleError(w, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials: "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		googleError(w, 403, "PERMISSION_DENIED", "Permission 'secretmanager.versions.access' denied (fake failure)")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	switch {
	case strings.HasSuffix(p, ":access"):
		name, version, ok := strings.Cut(strings.TrimSuffix(p, ":access"), "/versions/")
		vs := s.secrets[name]
		if !ok || len(vs) == 0 {
			googleError(w, 404, "NOT_FOUND", "Secret ["+name+"] not found or has no versions.")
			return
		}
		n := len(vs)
		if version != "latest" {
			if _, err := fmt.Sscanf(version, "%d", &n); err != nil || n < 1 || n > len(vs) {
				googleError(w, 404, "NOT_FOUND", "Secret Version not found.")
				return
			}
		}
		data := []byte(vs[n-1])
		sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
		if s.corrupt {
			sum++
		}
		writeJSON(w, 200, map[string]any{"name": fmt.Sprintf("%s/versions/%d", name, n),
			"payload": map[string]any{"data": base64.StdEncoding.EncodeToString(data), "dataCrc32c": fmt.Sprint(sum)}})
	case strings.HasSuffix(p, "/secrets") && r.Method == http.MethodGet:
		prefix := p + "/"
		var names []string
		for n := range s.secrets {
			if strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		var out []map[string]any
		for _, n := range names {
			out = append(out, map[string]any{"name": n, "replication": map[string]any{"automatic": map[string]any{}}})
		}
		writeJSON(w, 200, map[string]any{"secrets": out, "totalSize": len(out)})
	default:
		googleError(w, 404, "NOT_FOUND", "unknown path")
	}
}
