package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// validateScopes checks path rules, networks and time windows, naming the
// field at fault.
func validateScopes(paths, ips []string, hours string) error {
	if _, err := policy.ParsePathRules(paths); err != nil {
		return fmt.Errorf("allow_paths: %w", err)
	}
	if _, err := policy.ParseCIDRs(ips); err != nil {
		return fmt.Errorf("allow_ips: %w", err)
	}
	if strings.TrimSpace(hours) != "" {
		if _, err := policy.ParseWindows(hours); err != nil {
			return fmt.Errorf("hours: %w", err)
		}
	}
	return nil
}

// validateServices checks the passthrough service names a key may reach.
// The services themselves live in the configuration, which may differ
// between nodes, so an unknown name is accepted: it reaches nothing until
// a service of that name exists.
func validateServices(names []string) error {
	for _, n := range names {
		if err := passthrough.CheckName(n); err != nil {
			return fmt.Errorf("allow_services: %w", err)
		}
	}
	return nil
}

// staleKey reports whether a live key has gone unused for at least d: never
// used since it was made d ago, or last used before that.
func staleKey(k store.Key, now time.Time, d time.Duration) bool {
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) {
		return false
	}
	last := k.CreatedAt
	if k.LastUsedAt != nil {
		last = *k.LastUsedAt
	}
	return now.Sub(last) >= d
}

// keyChanged makes a change to a key take effect at once: this node's key
// cache forgets it, and a revocation record tells every other node to.
func (a *API) keyChanged(r *http.Request, k store.Key, what string) {
	a.keyChangedID(r.Context(), k.ID, what)
}

func (a *API) keyChangedID(ctx context.Context, id, what string) {
	a.opts.KeyRevoked(id)
	until := a.opts.Now().UTC().Add(24 * time.Hour)
	if _, err := a.opts.Store.AddRevocation(ctx, store.Revocation{Kind: "key", Subject: id, At: a.opts.Now().UTC(), Until: until}); err != nil {
		a.opts.Log.Error("key "+what+" but other nodes could not be told at once; they apply it within key_cache_ttl", "key_id", id, "err", err)
	}
}

// keyCreated tells every node of a new key through the revocation log,
// which every node follows, so each reads the key into its cache now
// rather than at its first request there: a database outage that starts a
// moment later does not find the key unknown to the nodes that have not
// served it yet.
func (a *API) keyCreated(ctx context.Context, id string) {
	now := a.opts.Now().UTC()
	if _, err := a.opts.Store.AddRevocation(ctx, store.Revocation{Kind: "key", Subject: id, At: now, Until: now.Add(24 * time.Hour)}); err != nil {
		a.opts.Log.Warn("key created; other nodes could not be told to read it ahead, so they read it at its first request", "key_id", id, "err", err)
	}
}

// updateScopes applies the scope fields of an update, if any. The caller
// has checked them with checkScopeUpdate.
func (a *API) updateScopes(ctx context.Context, k store.Key, req adminapi.UpdateKeyRequest) (store.Key, error) {
	if req.AllowServices != nil {
		var err error
		if k, err = a.opts.Store.SetKeyServices(ctx, k.ID, *req.AllowServices); err != nil {
			return k, err
		}
	}
	if req.AllowTools != nil {
		if a.opts.MCP == nil {
			return k, badRequest{errors.New("allow_tools: this keygate keeps no MCP servers")}
		}
		var err error
		if k, err = a.opts.MCP.SetKeyTools(ctx, k.ID, *req.AllowTools); err != nil {
			return k, err
		}
	}
	if req.AllowPaths == nil && req.AllowIPs == nil && req.Hours == nil {
		return k, nil
	}
	paths, ips, hours := k.AllowPaths, k.AllowIPs, k.Hours
	if req.AllowPaths != nil {
		paths = *req.AllowPaths
	}
	if req.AllowIPs != nil {
		ips = *req.AllowIPs
	}
	if req.Hours != nil {
		hours = strings.TrimSpace(*req.Hours)
	}
	if err := validateScopes(paths, ips, hours); err != nil {
		return k, badRequest{err}
	}
	return a.opts.Store.SetKeyScopes(ctx, k.ID, paths, ips, hours)
}

// badRequest marks an error as the caller's.
type badRequest struct{ error }

func (a *API) suspendKey(w http.ResponseWriter, r *http.Request) { a.setSuspended(w, r, true) }
func (a *API) resumeKey(w http.ResponseWriter, r *http.Request)  { a.setSuspended(w, r, false) }

func (a *API) setSuspended(w http.ResponseWriter, r *http.Request, suspend bool) {
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	var at *time.Time
	what := "resumed"
	if suspend {
		now := a.opts.Now().UTC()
		at, what = &now, "suspended"
		if k.SuspendedAt != nil {
			at = k.SuspendedAt
		}
	}
	if k, err = a.opts.Store.SetKeySuspended(r.Context(), k.ID, at); err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	if !suspend && k.StepUpUntil != nil {
		// Resuming also lifts a second-factor requirement an alert set.
		if k, err = a.opts.Store.SetKeyStepUp(r.Context(), k.ID, nil); err != nil {
			a.lookupError(w, "key", r.PathValue("ref"), err)
			return
		}
	}
	a.keyChanged(r, k, what)
	a.opts.Log.Info("key "+what, "actor", principal(r).ID, "key_id", k.ID)
	web.WriteJSON(w, http.StatusOK, keyView(k, a.opts.Now()))
}

// rotateKey issues a successor with the same name (suffixed), scopes,
// limits and group, and lets the old key work only until the grace ends,
// never past its own expiry.
func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RotateKeyRequest
	if r.ContentLength != 0 {
		if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
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
	old, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	now := a.opts.Now().UTC()
	if old.RevokedAt != nil || (old.ExpiresAt != nil && !now.Before(*old.ExpiresAt)) {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("key %q is revoked or expired; create a new key instead", old.Name))
		return
	}
	next, raw, old, err := a.rotate(r.Context(), old, grace, now)
	if errors.Is(err, store.ErrConflict) {
		writeError(w, http.StatusConflict, "conflict", "a rotation of this key is already in progress; try again")
		return
	}
	if err != nil {
		a.internal(w, "rotate the key", err)
		return
	}
	a.opts.Log.Info("key rotated", "actor", principal(r).ID, "key_id", old.ID, "successor", next.ID, "old_expires_at", old.ExpiresAt)
	web.WriteJSON(w, http.StatusCreated, adminapi.RotatedKey{Key: keyView(next, now), Secret: raw.Reveal(), Previous: keyView(old, now)})
}

// rotate creates old's successor and shortens old's life to the grace. The
// successor inherits the rotation policy; the old key stops rotating.
func (a *API) rotate(ctx context.Context, old store.Key, grace time.Duration, now time.Time) (store.Key, secret.String, store.Key, error) {
	raw, err := apikey.Generate(old.Env)
	if err != nil {
		return store.Key{}, secret.String{}, old, err
	}
	p, err := apikey.Parse(raw.Reveal())
	if err != nil {
		return store.Key{}, secret.String{}, old, err
	}
	h := a.opts.Hasher.Hash(raw.Reveal())
	next := old
	next.ID, next.Hash, next.Prefix, next.CreatedAt = newID("key_"), h[:], p.Prefix, now
	next.LastUsedAt, next.RevokedAt, next.SuspendedAt, next.RotatedFrom = nil, nil, nil, old.ID
	next.Name = successorName(old.Name, now)
	if old.ExpiresAt != nil {
		// The successor lives as long as its predecessor was meant to.
		exp := now.Add(old.ExpiresAt.Sub(old.CreatedAt))
		next.ExpiresAt = &exp
	}
	if next.RotateEvery > 0 {
		due := now.Add(next.RotateEvery)
		next.NextRotationAt = &due
	}
	if err := a.opts.Store.CreateKey(ctx, next); err != nil {
		return store.Key{}, secret.String{}, old, err
	}
	if old.RotateEvery > 0 {
		if _, err := a.opts.Store.SetKeyRotation(ctx, old.ID, 0, 0, "", nil); err != nil {
			return store.Key{}, secret.String{}, old, err
		}
	}
	old, err = a.opts.Store.ShortenKeyExpiry(ctx, old.ID, now.Add(grace))
	if err != nil {
		return store.Key{}, secret.String{}, old, err
	}
	a.keyChangedID(ctx, old.ID, "rotated")
	a.keyCreated(ctx, next.ID)
	return next, raw, old, nil
}

// successorName names a rotated key: its base name and the rotation time.
func successorName(name string, now time.Time) string {
	base, _, _ := strings.Cut(name, ".rot-")
	suffix := ".rot-" + now.Format("20060102T150405")
	if len(base)+len(suffix) > 64 {
		base = base[:64-len(suffix)]
	}
	return base + suffix
}
