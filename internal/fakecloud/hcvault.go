package fakecloud

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// HCVault is a fake HashiCorp Vault (or OpenBao) server with KV version 2
// secrets engines and AppRole login. Requests must carry a token in
// X-Vault-Token: Token, or one AppRole login issued.
type HCVault struct {
	Token            string // a root-like token accepted everywhere
	RoleID, SecretID string // AppRole credentials accepted at auth/approle/login

	mu     sync.Mutex
	kv     map[string][]map[string]any // "mount/path" -> versions' data
	tokens map[string]bool
	fail   bool
}

// Put adds data as the newest version of path under the KV v2 mount.
func (v *HCVault) Put(mount, path string, data map[string]any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.kv == nil {
		v.kv = map[string][]map[string]any{}
	}
	k := mount + "/" + path
	v.kv[k] = append(v.kv[k], data)
}

// Fail makes every request answer 403 (the token's policy revoked) until Fail(false).
func (v *HCVault) Fail(on bool) { v.mu.Lock(); v.fail = on; v.mu.Unlock() }

func vaultErrors(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	writeJSON(w, status, map[string]any{"errors": errs})
}

// ServeHTTP serves KV v2 data reads, metadata lists and AppRole login.
func (v *HCVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail {
		vaultErrors(w, 403, "1 error occurred:\n\t* permission denied\n\n")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	if p == "auth/approle/login" && r.Method == http.MethodPost {
		var in struct {
			RoleID   string `json:"role_id"`
			SecretID string `json:"secret_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		if v.RoleID == "" || in.RoleID != v.RoleID || in.SecretID != v.SecretID {
			vaultErrors(w, 400, "invalid role or secret ID")
			return
		}
		if v.tokens == nil {
			v.tokens = map[string]bool{}
		}
		tok := "hvs.fake" + randomID()
		v.tokens[tok] = true
		writeJSON(w, 200, map[string]any{"auth": map[string]any{"client_token": tok, "lease_duration": 3600, "renewable": true, "policies": []string{"default"}}})
		return
	}
	tok := r.Header.Get("X-Vault-Token")
	if tok == "" || (tok != v.Token && !v.tokens[tok]) {
		vaultErrors(w, 403, "permission denied")
		return
	}
	list := r.Method == "LIST" || (r.Method == http.MethodGet && r.URL.Query().Get("list") == "true")
	mount, rest, _ := strings.Cut(p, "/")
	switch {
	case list && strings.HasPrefix(rest, "metadata"):
		dir := strings.Trim(strings.TrimPrefix(rest, "metadata"), "/")
		seen := map[string]bool{}
		prefix := mount + "/"
		if dir != "" {
			prefix += dir + "/"
		}
		for k := range v.kv {
			if tail, ok := strings.CutPrefix(k, prefix); ok {
				if i := strings.IndexByte(tail, '/'); i >= 0 {
					tail = tail[:i+1]
				}
				seen[tail] = true
			}
		}
		if len(seen) == 0 {
			vaultErrors(w, 404)
			return
		}
		keys := make([]string, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeJSON(w, 200, map[string]any{"request_id": randomID(), "data": map[string]any{"keys": keys}})
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "data/"):
		vs := v.kv[mount+"/"+strings.TrimPrefix(rest, "data/")]
		if len(vs) == 0 {
			vaultErrors(w, 404)
			return
		}
		n := len(vs)
		writeJSON(w, 200, map[string]any{"request_id": randomID(), "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": map[string]any{"data": vs[n-1], "metadata": map[string]any{"created_time": time.Now().UTC().Format(time.RFC3339Nano),
				"custom_metadata": nil, "deletion_time": "", "destroyed": false, "version": n}},
			"wrap_info": nil, "warnings": nil, "auth": nil})
	default:
		vaultErrors(w, 404)
	}
}
