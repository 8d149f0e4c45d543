package fakecloud

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Tokens is a set of bearer tokens a fake token endpoint issued, with the
// audience each is good for and when it expires.
type Tokens struct {
	mu     sync.Mutex
	tokens map[string]issued
	count  int
}

type issued struct {
	audience string
	expires  time.Time
}

func (t *Tokens) issue(audience string, life time.Duration) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tokens == nil {
		t.tokens = map[string]issued{}
	}
	tok := "fake-access-token-" + randomID()
	t.tokens[tok] = issued{audience: audience, expires: time.Now().Add(life)}
	t.count++
	return tok
}

// Issued reports how many tokens were handed out.
func (t *Tokens) Issued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}

// Check verifies an Authorization header carries an unexpired bearer token
// issued for audience.
func (t *Tokens) Check(h string, audience string) error {
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return fmt.Errorf("no bearer token")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	it, ok := t.tokens[tok]
	switch {
	case !ok:
		return fmt.Errorf("the bearer token was not issued by this token endpoint")
	case time.Now().After(it.expires):
		return fmt.Errorf("the bearer token has expired")
	case it.audience != audience:
		return fmt.Errorf("the bearer token is for %q, not %q", it.audience, audience)
	}
	return nil
}

// Entra is a fake Microsoft Entra ID (Azure AD) v2.0 endpoint: OpenID
// discovery and the token endpoint's client credentials grant, with a
// client secret or a federated client assertion (workload identity).
type Entra struct {
	URL      string // its own base URL, set by the test once the server runs
	TenantID string
	ClientID string
	// ClientSecret is accepted for the client credentials grant; empty accepts none.
	ClientSecret string
	// Assertions are federated tokens accepted as client_assertion.
	Assertions []string
	Lifetime   time.Duration // default 1h
	Tokens     Tokens
}

// ServeHTTP serves discovery and tokens.
func (e *Entra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	base := strings.TrimRight(e.URL, "/") + "/" + e.TenantID
	switch r.URL.Path {
	case "/" + e.TenantID + "/v2.0/.well-known/openid-configuration":
		writeJSON(w, 200, map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
			"jwks_uri":               base + "/discovery/v2.0/keys",
		})
	case "/" + e.TenantID + "/oauth2/v2.0/token":
		if err := r.ParseForm(); err != nil {
			entraError(w, "invalid_request", "unreadable form")
			return
		}
		f := r.PostForm
		if f.Get("grant_type") != "client_credentials" || f.Get("client_id") != e.ClientID {
			entraError(w, "unauthorized_client", "AADSTS700016: application not found in the directory")
			return
		}
		ok := e.ClientSecret != "" && f.Get("client_secret") == e.ClientSecret
		for _, a := range e.Assertions {
			if f.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && f.Get("client_assertion") == a {
				ok = true
			}
		}
		if !ok {
			entraError(w, "invalid_client", "AADSTS7000215: invalid client secret provided")
			return
		}
		scope := f.Get("scope")
		aud := strings.TrimSuffix(strings.Fields(scope + " x")[0], "/.default")
		life := e.Lifetime
		if life == 0 {
			life = time.Hour
		}
		writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": int(life.Seconds()), "ext_expires_in": int(life.Seconds()),
			"access_token": e.Tokens.issue(aud, life)})
	default:
		http.NotFound(w, r)
	}
}

func entraError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, 400, map[string]any{"error": code, "error_description": desc, "error_codes": []int{7000215}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// KeyVault is a fake Azure Key Vault secrets API (api-version 7.x). Its
// requests must carry a bearer token the Entra fake issued for
// https://vault.azure.net; a request without one gets the challenge.
type KeyVault struct {
	URL    string // its own base URL
	Entra  *Entra
	mu     sync.Mutex
	values map[string][]string // name -> versions' values, oldest first
	fail   bool
}

// Put adds value as the newest version of the secret called name.
func (k *KeyVault) Put(name, value string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.values == nil {
		k.values = map[string][]string{}
	}
	k.values[name] = append(k.values[name], value)
}

// Fail makes every request answer 403 Forbidden until Fail(false).
func (k *KeyVault) Fail(on bool) {
	k.mu.Lock()
	k.fail = on
	k.mu.Unlock()
}

func kvError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// ServeHTTP serves GET /secrets and GET /secrets/{name}[/{version}].
func (k *KeyVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="https://vault.azure.net"`, strings.TrimRight(k.Entra.URL, "/"), k.Entra.TenantID))
		kvError(w, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	if err := k.Entra.Tokens.Check(r.Header.Get("Authorization"), "https://vault.azure.net"); err != nil {
		kvError(w, 401, "Unauthorized", "AKV10032: "+err.Error())
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, 400, "BadParameter", "api-version is required")
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		kvError(w, 403, "Forbidden", "The user, group or application does not have secrets get permission (fake failure)")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	base := strings.TrimRight(k.URL, "/")
	switch {
	case len(parts) == 1 && parts[0] == "secrets":
		names := make([]string, 0, len(k.values))
		for n := range k.values {
			names = append(names, n)
		}
		sort.Strings(names)
		var items []map[string]any
		for _, n := range names {
			items = append(items, map[string]any{"id": base + "/secrets/" + n, "attributes": map[string]any{"enabled": true}})
		}
		writeJSON(w, 200, map[string]any{"value": items, "nextLink": nil})
	case (len(parts) == 2 || len(parts) == 3) && parts[0] == "secrets":
		vs := k.values[parts[1]]
		if len(vs) == 0 {
			kvError(w, 404, "SecretNotFound", fmt.Sprintf("A secret with (name/id) %s was not found in this key vault.", parts[1]))
			return
		}
		n := len(vs)
		if len(parts) == 3 && parts[2] != "" {
			if _, err := fmt.Sscanf(parts[2], "v%d", &n); err != nil || n < 1 || n > len(vs) {
				kvError(w, 404, "SecretNotFound", "no such version")
				return
			}
		}
		writeJSON(w, 200, map[string]any{"value": vs[n-1], "id": fmt.Sprintf("%s/secrets/%s/v%d", base, url.PathEscape(parts[1]), n),
			"attributes": map[string]any{"enabled": true, "created": time.Now().Unix(), "updated": time.Now().Unix()}})
	default:
		kvError(w, 404, "NotFound", "unknown path")
	}
}
