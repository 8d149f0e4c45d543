package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/web"
)

// SecretsPath is the gateway's endpoint for vault secrets:
//
//	GET /secrets?name=NAME[&version=N]
//	Authorization: Bearer <keygate key or access token>
//
// answers {"name": NAME, "version": N, "value": "..."}. It is what
// `keygate agent` reads and what the External Secrets Operator's webhook
// provider calls (result.jsonPath "$.value"). The name travels in the
// query, so the access log and the audit trail, which record the path,
// never hold it in clear.
//
// Who may read what is decided in one place, internal/authz: a key reads
// the secrets its grant names (workloads.secret_grants in the
// configuration; none by default), an access token only those its own
// scope names as secret:NAME items besides. A refusal is the same whether
// or not the secret exists; 404 means a readable name holds no secret (the
// External Secrets Operator then treats it as deleted).
const SecretsPath = "/secrets"

// SecretReader serves vault secrets' values to the /secrets endpoint;
// internal/gatewaystore implements it over the store and the vault.
type SecretReader interface {
	// ReadSecret returns the value and version of secret name: version
	// 0 reads the current one. An error matching ErrNoSecret means there
	// is no such secret, version, or a deleted one.
	ReadSecret(ctx context.Context, name string, version int) (secret.String, int, error)
	// SecretRef names a secret in logs and the audit trail without
	// revealing its name (an HMAC, as the admin API records it).
	SecretRef(name string) string
}

// ErrNoSecret is a SecretReader's answer for a secret that does not exist.
var ErrNoSecret = errors.New("no such secret")

// SecretValue is the body of a successful GET /secrets.
type SecretValue struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Value   string `json:"value"`
}

// serveSecret is GET /secrets: authenticate, the key's scope and risk
// rules, authorize the secret, read it, record the read.
func (g *Gateway) serveSecret(w http.ResponseWriter, r *http.Request) {
	c := callFrom(r.Context())
	c.dialect = g.openai
	if g.opts.Secrets == nil {
		g.refuse(w, r, deny(http.StatusNotFound, "unknown_url", "this keygate serves no secrets"))
		return
	}
	if r.Method != http.MethodGet {
		g.refuse(w, r, notServed("GET", r.URL.Path))
		return
	}
	key, den := g.caller(r, c)
	if den != nil {
		g.refuse(w, r, den)
		return
	}
	q := r.URL.Query()
	name := q.Get("name")
	if !validSecretName(name) {
		g.refuse(w, r, deny(http.StatusBadRequest, "invalid_request_error",
			"name must be a secret's name: letters, digits, '.', '_', '-' and single '/' between parts, as in ?name=payments/stripe"))
		return
	}
	version := 0
	if v := q.Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			g.refuse(w, r, deny(http.StatusBadRequest, "invalid_request_error", "version must be a whole number from 1, or left out for the current version"))
			return
		}
		version = n
	}
	ref := g.opts.Secrets.SecretRef(name)
	if d := authz.Authorize(c.principal(key), authz.Target{Kind: authz.Secret, Provider: name}); d != nil {
		g.auditSecret(r, c, ref, "deny", d.Code, 0)
		g.refuse(w, r, deny(http.StatusForbidden, d.Code, d.Message))
		return
	}
	val, ver, err := g.opts.Secrets.ReadSecret(r.Context(), name, version)
	if errors.Is(err, ErrNoSecret) {
		g.auditSecret(r, c, ref, "deny", "not_found", 0)
		g.refuse(w, r, deny(http.StatusNotFound, "not_found", "no such secret (or no such version of it)"))
		return
	}
	if err != nil {
		g.opts.Log.Error("reading a secret failed", "request_id", c.requestID, "secret_ref", ref, "err", err)
		g.refuse(w, r, deny(http.StatusServiceUnavailable, "secret_unavailable", "keygate could not read the secret right now; try again shortly"))
		return
	}
	g.auditSecret(r, c, ref, "allow", "", ver)
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, http.StatusOK, SecretValue{Name: name, Version: ver, Value: val.Reveal()})
}

// auditSecret records a secret read, granted or refused, under the
// secret's reference, never its name.
func (g *Gateway) auditSecret(r *http.Request, c *call, ref, decision, reason string, version int) {
	if g.opts.Audit == nil {
		return
	}
	ev := audit.Event{
		Type: "secret.read", KeyID: c.keyID, Client: web.ClientAddr(r, g.opts.TrustedProxies).String(),
		Resource: "secret ref:" + ref, Decision: decision,
		Fields: map[string]string{"request_id": c.requestID, "via": "gateway"},
	}
	if reason != "" {
		ev.Reasons = []string{reason}
	}
	if version > 0 {
		ev.Fields["version"] = strconv.Itoa(version)
	}
	if c.tokenFamily != "" {
		ev.Fields["family"] = c.tokenFamily
	}
	if err := g.opts.Audit.Record(ev); err != nil {
		g.opts.Log.Error("could not record a secret read in the audit trail", "request_id", c.requestID, "err", err)
	}
}

// validSecretName reports whether name is shaped like a vault secret's
// name: parts of letters, digits, '.', '_' and '-', each starting with a
// letter or digit, separated by single slashes, at most 255 characters.
func validSecretName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || !isAlnum(seg[0]) {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return false
			}
		}
	}
	return true
}

// validSecretPattern reports whether p names secrets in a scope: a name's
// characters with * and ? as wildcards. Character classes are refused: a
// class can match a slash, so its reach is hard to see.
func validSecretPattern(p string) bool {
	if p == "" || len(p) > 255 || strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !isAlnum(c) && !strings.ContainsRune("._-/*?", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
