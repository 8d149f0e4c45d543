package cli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// fakeAdmin is an in-memory admin API that follows the adminapi contract:
// bearer authentication, the documented routes and ErrorBody errors.
type fakeAdmin struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu         sync.Mutex
	providers  []adminapi.Provider
	keys       []adminapi.Key
	keySecrets map[string]string // key id -> its secret
	upstream   map[string]string // provider name -> API key received in a request body
	requests   []recorded        // every request, for leak checks
	nextID     int

	role       string // of the admin credential: adminapi.RoleAdmin (the default) or RoleOperator
	failRevoke bool   // answer every key revocation with an internal error
	vault      fakeVault
	limits     fakeLimits
	scopes     fakeScopes
}

// recorded is what a request exposed outside its body.
type recorded struct {
	Method, URL string
	Header      http.Header
}

// newToken builds an admin credential at run time, obviously fake.
func newToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "kg_admin_" + "testonly" + hex.EncodeToString(b)
}

func newFakeAdmin(t *testing.T) *fakeAdmin {
	t.Helper()
	return newFakeAdminOn(t, nil)
}

// newFakeAdminOn serves the fake admin API on ln, or on a loopback port
// when ln is nil.
func newFakeAdminOn(t *testing.T, ln net.Listener) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{t: t, token: newToken(t), upstream: map[string]string{}, keySecrets: map[string]string{}, role: adminapi.RoleAdmin}
	mux := http.NewServeMux()
	p := adminapi.Prefix
	mux.HandleFunc("GET "+p+"/whoami", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSONBody(w, http.StatusOK, adminapi.WhoAmI{TokenID: "adm_test1", Name: "bootstrap", Role: f.role})
	})
	mux.HandleFunc("POST "+p+"/providers", f.createProvider)
	mux.HandleFunc("GET "+p+"/providers", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSONBody(w, http.StatusOK, adminapi.ProviderList{Providers: append([]adminapi.Provider{}, f.providers...)})
	})
	mux.HandleFunc("GET "+p+"/providers/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, pr := range f.providers {
			if pr.Name == r.PathValue("name") {
				writeJSONBody(w, http.StatusOK, pr)
				return
			}
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no provider named %q", r.PathValue("name")))
	})
	mux.HandleFunc("DELETE "+p+"/providers/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, pr := range f.providers {
			if pr.Name == r.PathValue("name") {
				f.providers = append(f.providers[:i], f.providers[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no provider named %q", r.PathValue("name")))
	})
	mux.HandleFunc("POST "+p+"/keys", f.createKey)
	mux.HandleFunc("GET "+p+"/keys", f.listKeys)
	mux.HandleFunc("GET "+p+"/keys/{ref}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if i := f.findKey(r.PathValue("ref")); i >= 0 {
			writeJSONBody(w, http.StatusOK, f.keys[i])
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no key named %q", r.PathValue("ref")))
	})
	mux.HandleFunc("POST "+p+"/keys/{ref}/revoke", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		i := f.findKey(r.PathValue("ref"))
		if i < 0 {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no key named %q", r.PathValue("ref")))
			return
		}
		if f.failRevoke {
			writeError(w, http.StatusInternalServerError, "internal", "the database is unavailable (test)")
			return
		}
		now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
		f.keys[i].RevokedAt, f.keys[i].Status = &now, "revoked"
		writeJSONBody(w, http.StatusOK, f.keys[i])
	})
	f.vaultRoutes(mux)
	f.limitRoutes(mux)
	f.scopeRoutes(mux)
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, recorded{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone()})
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid admin credential")
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			writeError(w, http.StatusNotFound, "not_found", "no such admin API route")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	if ln != nil {
		f.srv.Listener.Close()
		f.srv.Listener = ln
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAdmin) findKey(ref string) int {
	for i, k := range f.keys {
		if k.ID == ref || k.Name == ref {
			return i
		}
	}
	return -1
}

func (f *fakeAdmin) createProvider(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CreateProviderRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Name == "" || req.BaseURL == "" || req.APIKey == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "name, base_url and api_key are required")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.providers {
		if p.Name == req.Name {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a provider named %q already exists", req.Name))
			return
		}
	}
	dialect := req.Dialect
	if dialect == "" {
		dialect = "openai"
		if req.Name == "anthropic" {
			dialect = "anthropic"
		}
	}
	f.nextID++
	p := adminapi.Provider{
		ID: fmt.Sprintf("prv_test%d", f.nextID), Name: req.Name, Dialect: dialect, BaseURL: req.BaseURL,
		Models: req.Models, Default: req.Default, CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Env: req.Env,
	}
	if p.Models == nil {
		p.Models = []string{}
	}
	f.providers = append(f.providers, p)
	f.upstream[req.Name] = req.APIKey
	writeJSONBody(w, http.StatusCreated, p)
}

func (f *fakeAdmin) createKey(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CreateKeyRequest
	raw, ok := decodeRaw(w, r, &req)
	if !ok {
		return
	}
	f.mu.Lock()
	f.scopes.creates = append(f.scopes.creates, strings.TrimSpace(raw))
	f.mu.Unlock()
	if req.Name == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "name is required")
		return
	}
	if err := req.Limits.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if err := checkScopes(req.AllowPaths, req.AllowIPs, req.Hours); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	created := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	var expires *time.Time
	if req.ExpiresIn != "" {
		d, err := adminapi.ParseDuration(req.ExpiresIn)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		e := created.Add(d)
		expires = &e
	}
	env := req.Env
	if env == "" {
		env = "live"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.findKey(req.Name) >= 0 {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a key named %q already exists", req.Name))
		return
	}
	if req.Group != "" && f.findGroup(req.Group) < 0 {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("no group named %q", req.Group))
		return
	}
	f.nextID++
	secretValue := fmt.Sprintf("kg_%s_testsecret%04d", env, f.nextID)
	k := adminapi.Key{
		ID: fmt.Sprintf("key_test%d", f.nextID), Name: req.Name, Env: env, Prefix: secretValue[:12], Status: "active",
		AllowModels: orEmpty(req.AllowModels), AllowProviders: orEmpty(req.AllowProviders), AllowServices: orEmpty(req.AllowServices),
		CreatedAt: created, ExpiresAt: expires, Limits: req.Limits, Group: req.Group,
		AllowPaths: orEmpty(req.AllowPaths), AllowIPs: orEmpty(req.AllowIPs), Hours: req.Hours,
	}
	f.keys = append(f.keys, k)
	f.keySecrets[k.ID] = secretValue
	writeJSONBody(w, http.StatusCreated, adminapi.CreatedKey{Key: k, Secret: secretValue})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusBadRequest, "bad_request", "Content-Type must be application/json")
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSONBody(w, status, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: code, Message: msg}})
}
