package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/policy"
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

// setSuspended suspends or resumes a key; resuming also lifts a
// second-factor requirement an alert set.
func (a *API) setSuspended(w http.ResponseWriter, r *http.Request, suspend bool) {
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	change := a.opts.Keys.Resume
	if suspend {
		change = a.opts.Keys.Suspend
	}
	c, err := change(r.Context(), k.ID, a.actor(r))
	if err != nil {
		a.keyStateError(w, r.PathValue("ref"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, keyView(c.Key, a.opts.Now()))
}

// keyStateError answers a lifecycle change that failed: one the key's
// state refuses is a conflict, saying what to do instead.
func (a *API) keyStateError(w http.ResponseWriter, ref string, err error) {
	var refused *keylife.Error
	if errors.As(err, &refused) {
		writeError(w, http.StatusConflict, "conflict", refused.Msg)
		return
	}
	a.lookupError(w, "key", ref, err)
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
	rot, err := a.opts.Keys.Rotate(r.Context(), old.ID, grace, a.actor(r))
	var refused *keylife.Error
	switch {
	case errors.As(err, &refused):
		writeError(w, http.StatusConflict, "conflict", refused.Msg)
		return
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "a rotation of this key is already in progress; try again")
		return
	case errors.Is(err, store.ErrNotFound):
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	case err != nil:
		a.internal(w, "rotate the key", err)
		return
	}
	now := a.opts.Now()
	web.WriteJSON(w, http.StatusCreated, adminapi.RotatedKey{Key: keyView(rot.Key, now), Secret: rot.Secret.Reveal(), Previous: keyView(rot.Previous, now)})
}
