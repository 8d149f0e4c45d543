package cli

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/policy"
)

// fakeNow is the fake admin API's clock: suspensions, rotations and the
// stale-key report are judged at this time.
var fakeNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// fakeScopes is the scopes and lifecycle side of fakeAdmin: key creation
// bodies, suspension, rotation and the stale-key report, following the
// adminapi contract.
type fakeScopes struct {
	creates   []string // raw bodies of POST /keys, in order
	rotations []string // raw bodies of POST /keys/{ref}/rotate, in order
	unused    []string // the unused query of each GET /keys that had one
}

func (f *fakeAdmin) scopeRoutes(mux *http.ServeMux) {
	p := adminapi.Prefix
	mux.HandleFunc("POST "+p+"/keys/{ref}/suspend", func(w http.ResponseWriter, r *http.Request) { f.setSuspended(w, r, true) })
	mux.HandleFunc("POST "+p+"/keys/{ref}/resume", func(w http.ResponseWriter, r *http.Request) { f.setSuspended(w, r, false) })
	mux.HandleFunc("POST "+p+"/keys/{ref}/rotate", f.rotateKey)
}

// checkScopes validates scopes as the admin API does, naming the field at fault.
func checkScopes(paths, ips []string, hours string) error {
	if _, err := policy.ParsePathRules(paths); err != nil {
		return fmt.Errorf("allow_paths: %w", err)
	}
	if _, err := policy.ParseCIDRs(ips); err != nil {
		return fmt.Errorf("allow_ips: %w", err)
	}
	if _, err := policy.ParseWindows(hours); err != nil {
		return fmt.Errorf("hours: %w", err)
	}
	return nil
}

// updateScopes validates and applies the scope fields of a key update to key
// i, answering a bad request itself; f.mu must be held.
func (f *fakeAdmin) updateScopes(w http.ResponseWriter, i int, req adminapi.UpdateKeyRequest) bool {
	k := f.keys[i]
	if req.AllowServices != nil {
		k.AllowServices = orEmpty(*req.AllowServices)
	}
	if req.AllowPaths != nil {
		k.AllowPaths = orEmpty(*req.AllowPaths)
	}
	if req.AllowIPs != nil {
		k.AllowIPs = orEmpty(*req.AllowIPs)
	}
	if req.Hours != nil {
		k.Hours = strings.TrimSpace(*req.Hours)
	}
	if err := checkScopes(k.AllowPaths, k.AllowIPs, k.Hours); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return false
	}
	f.keys[i] = k
	return true
}

// live reports whether k is neither revoked nor expired at fakeNow.
func live(k adminapi.Key) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || fakeNow.Before(*k.ExpiresAt))
}

func (f *fakeAdmin) listKeys(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query().Get("unused")
	if q == "" {
		writeJSONBody(w, http.StatusOK, adminapi.KeyList{Keys: append([]adminapi.Key{}, f.keys...)})
		return
	}
	f.scopes.unused = append(f.scopes.unused, q)
	d, err := adminapi.ParseDuration(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "unused: "+err.Error())
		return
	}
	out := adminapi.KeyList{Keys: []adminapi.Key{}}
	for _, k := range f.keys {
		last := k.CreatedAt
		if k.LastUsedAt != nil {
			last = *k.LastUsedAt
		}
		if live(k) && fakeNow.Sub(last) >= d {
			out.Keys = append(out.Keys, k)
		}
	}
	writeJSONBody(w, http.StatusOK, out)
}

func (f *fakeAdmin) setSuspended(w http.ResponseWriter, r *http.Request, suspend bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.findKey(r.PathValue("ref"))
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no key named %q", r.PathValue("ref")))
		return
	}
	switch {
	case !suspend:
		f.keys[i].SuspendedAt = nil
	case f.keys[i].SuspendedAt == nil:
		at := fakeNow
		f.keys[i].SuspendedAt = &at
	}
	writeJSONBody(w, http.StatusOK, f.keys[i])
}

func (f *fakeAdmin) rotateKey(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RotateKeyRequest
	raw, ok := decodeRaw(w, r, &req)
	if !ok {
		return
	}
	grace := 24 * time.Hour
	if req.Grace != "" {
		d, err := adminapi.ParseDuration(req.Grace)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "grace: "+err.Error())
			return
		}
		grace = d
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scopes.rotations = append(f.scopes.rotations, strings.TrimSpace(raw))
	i := f.findKey(r.PathValue("ref"))
	if i < 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no key named %q", r.PathValue("ref")))
		return
	}
	old := f.keys[i]
	if !live(old) {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("key %q is revoked or expired; create a new key instead", old.Name))
		return
	}
	f.nextID++
	secretValue := fmt.Sprintf("kg_%s_testsecret%04d", old.Env, f.nextID)
	next := old
	next.ID, next.Prefix, next.CreatedAt = fmt.Sprintf("key_test%d", f.nextID), secretValue[:12], fakeNow
	next.Name = old.Name + ".rot-" + fakeNow.Format("20060102T150405")
	next.LastUsedAt, next.SuspendedAt, next.RotatedFrom = nil, nil, old.ID
	if old.ExpiresAt != nil {
		exp := fakeNow.Add(old.ExpiresAt.Sub(old.CreatedAt))
		next.ExpiresAt = &exp
	}
	end := fakeNow.Add(grace)
	if old.ExpiresAt == nil || end.Before(*old.ExpiresAt) {
		f.keys[i].ExpiresAt = &end
	}
	f.keys = append(f.keys, next)
	f.keySecrets[next.ID] = secretValue
	writeJSONBody(w, http.StatusCreated, adminapi.RotatedKey{Key: next, Secret: secretValue, Previous: f.keys[i]})
}
