package admin

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

var (
	keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	keyEnv  = regexp.MustCompile(`^[a-z][a-z0-9]{1,9}$`)
)

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CreateKeyRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	ctx := r.Context()
	now := a.opts.Now().UTC()
	k, err := a.validateKey(r, &req, now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	raw, err := apikey.Generate(req.Env)
	if err != nil {
		a.internal(w, "generate key", err)
		return
	}
	p, err := apikey.Parse(raw.Reveal())
	if err != nil {
		a.internal(w, "generate key", err)
		return
	}
	h := a.opts.Hasher.Hash(raw.Reveal())
	k.Hash, k.Prefix = h[:], p.Prefix
	if err := a.opts.Store.CreateKey(ctx, k); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a key named %q already exists; choose another name", req.Name))
			return
		}
		a.internal(w, "create key", err)
		return
	}
	web.WriteJSON(w, http.StatusCreated, adminapi.CreatedKey{Key: keyView(k, now), Secret: raw.Reveal()})
}

func (a *API) validateKey(r *http.Request, req *adminapi.CreateKeyRequest, now time.Time) (store.Key, error) {
	req.Name = strings.TrimSpace(req.Name)
	if !keyName.MatchString(req.Name) {
		return store.Key{}, fmt.Errorf("name %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	if req.Env == "" {
		req.Env = "live"
	}
	if !keyEnv.MatchString(req.Env) || req.Env == "admin" {
		return store.Key{}, fmt.Errorf("env %q must be 2-10 lower-case letters or digits (such as live, test, dev), and not admin", req.Env)
	}
	for _, m := range req.AllowModels {
		if !authz.ValidPattern(m) {
			return store.Key{}, fmt.Errorf("allow_models: %q is not a valid pattern (use * and ? wildcards, as in gpt-4o*)", m)
		}
	}
	for _, p := range req.AllowProviders {
		if _, err := a.opts.Store.GetProvider(r.Context(), p); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return store.Key{}, fmt.Errorf("allow_providers: no provider named %q; see `keygate provider list`", p)
			}
			return store.Key{}, fmt.Errorf("allow_providers: could not check %q: %w", p, err)
		}
	}
	if err := validateServices(req.AllowServices); err != nil {
		return store.Key{}, err
	}
	k := store.Key{
		ID: newID("key_"), Name: req.Name, Env: req.Env,
		AllowModels: req.AllowModels, AllowProviders: req.AllowProviders, AllowServices: req.AllowServices, CreatedAt: now,
	}
	limits, err := encodeLimits(req.Limits)
	if err != nil {
		return store.Key{}, err
	}
	k.Limits = limits
	if err := validateScopes(req.AllowPaths, req.AllowIPs, req.Hours); err != nil {
		return store.Key{}, err
	}
	k.AllowPaths, k.AllowIPs, k.Hours = req.AllowPaths, req.AllowIPs, strings.TrimSpace(req.Hours)
	if req.ClientCert != "" {
		if err := adminapi.ValidClientCertMatch(req.ClientCert); err != nil {
			return store.Key{}, fmt.Errorf("client_cert: %w", err)
		}
		k.ClientCert = req.ClientCert
	}
	if k.RotateEvery, k.RotateGrace, k.DeliverTo, err = parseRotation(req.Rotation); err != nil {
		return store.Key{}, err
	}
	if k.DeliverTo != "" {
		if err := a.checkDelivery(r.Context(), req.Name, k.DeliverTo); err != nil {
			return store.Key{}, err
		}
	}
	if k.RotateEvery > 0 {
		due := now.Add(k.RotateEvery)
		k.NextRotationAt = &due
	}
	if req.Group != "" {
		if _, err := a.opts.Store.GetGroup(r.Context(), req.Group); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return store.Key{}, fmt.Errorf("group: no group named %q; create it with keygate group create", req.Group)
			}
			return store.Key{}, fmt.Errorf("group: could not check %q: %w", req.Group, err)
		}
		k.Group = req.Group
	}
	if req.ExpiresIn != "" {
		d, err := adminapi.ParseDuration(req.ExpiresIn)
		if err != nil {
			return store.Key{}, fmt.Errorf("expires_in: %w", err)
		}
		exp := now.Add(d)
		k.ExpiresAt = &exp
	}
	return k, nil
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	var unused time.Duration
	if q := r.URL.Query().Get("unused"); q != "" {
		d, err := adminapi.ParseDuration(q)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "unused: "+err.Error())
			return
		}
		unused = d
	}
	ks, err := a.opts.Store.ListKeys(r.Context())
	if err != nil {
		a.internal(w, "list keys", err)
		return
	}
	now := a.opts.Now()
	out := adminapi.KeyList{Keys: make([]adminapi.Key, 0, len(ks))}
	for _, k := range ks {
		if unused > 0 && !staleKey(k, now, unused) {
			continue
		}
		out.Keys = append(out.Keys, keyView(k, now))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// findKey resolves a key reference: its id, else its name.
func (a *API) findKey(r *http.Request, ref string) (store.Key, error) {
	if strings.HasPrefix(ref, "key_") {
		k, err := a.opts.Store.GetKey(r.Context(), ref)
		if !errors.Is(err, store.ErrNotFound) {
			return k, err
		}
	}
	return a.opts.Store.GetKeyByName(r.Context(), ref)
}

func (a *API) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, keyView(k, a.opts.Now()))
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	k, err = a.opts.Store.RevokeKey(r.Context(), k.ID, a.opts.Now().UTC())
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	a.keyChanged(r, k, "revoked")
	a.opts.Log.Info("key revoked", "key_id", k.ID, "name", k.Name)
	web.WriteJSON(w, http.StatusOK, keyView(k, a.opts.Now()))
}

func keyView(k store.Key, now time.Time) adminapi.Key {
	status := "active"
	switch {
	case k.RevokedAt != nil:
		status = "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		status = "expired"
	}
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return adminapi.Key{
		ID: k.ID, Name: k.Name, Env: k.Env, Prefix: k.Prefix, Status: status,
		AllowModels: orEmpty(k.AllowModels), AllowProviders: orEmpty(k.AllowProviders),
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt,
		Limits: decodeLimits(k.Limits), Group: k.Group,
		AllowServices: orEmpty(k.AllowServices), AllowPaths: orEmpty(k.AllowPaths), AllowIPs: orEmpty(k.AllowIPs), Hours: k.Hours,
		SuspendedAt: k.SuspendedAt, RotatedFrom: k.RotatedFrom, Rotation: keyRotationView(k), ClientCert: k.ClientCert,
		StepUpUntil: k.StepUpUntil,
	}
}
