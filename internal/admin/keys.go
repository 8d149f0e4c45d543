package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/rbac"
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
	if err := a.placeKey(r, &k, req.Group, now); err != nil {
		a.targetError(w, err)
		return
	}
	if err := a.opts.Store.CreateKey(ctx, k); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a key named %q already exists; choose another name", req.Name))
			return
		}
		a.internal(w, "create key", err)
		return
	}
	a.opts.Log.Info("key created", "actor", principal(r).ID, "key_id", k.ID, "team", k.Team, "owner", k.Owner)
	a.opts.Keys.Created(ctx, k.ID)
	web.WriteJSON(w, http.StatusCreated, adminapi.CreatedKey{Key: a.named(r, keyView(k, now)), Secret: raw.Reveal()})
}

// placeKey puts a new key in the team its route resolved: in the team's
// group, owned by its creator when the creator manages only its own keys
// there (a developer), and, for anyone without a global grant, within the
// team's policy. A key of no team may not join a team's group.
func (a *API) placeKey(r *http.Request, k *store.Key, group string, now time.Time) error {
	p := principal(r)
	k.CreatedBy = p.ID
	team := state(r).newTeam
	if team == "" {
		if owner, err := a.teamOfGroup(r, k.Group); err != nil {
			return err
		} else if owner != "" {
			return badRequestf("group: %s holds the shared limits of team %s; create the key in the team instead (keygate key create --team %s)", k.Group, owner, owner)
		}
		return nil
	}
	t, err := a.opts.People.GetTeam(r.Context(), team)
	if err != nil {
		return err
	}
	if group != "" && group != t.Group {
		return badRequestf("group: a key of team %s shares the team's limits (group %s) and joins no other group; leave --group out", team, t.Group)
	}
	k.Team, k.Group = team, t.Group
	if p.UserID != "" && !a.opts.Roles.Allowed(p, rbac.KeysUpdate, rbac.Resource{Team: team, Owner: "\x00another"}) {
		k.Owner = p.UserID
	}
	if err := a.checkToolGrant(r, team, k.AllowTools, rbac.KeysCreate); err != nil {
		return err
	}
	if a.global(r, rbac.KeysCreate) {
		return nil
	}
	pol := decodePolicy(t.Policy)
	fillFromPolicy(pol, k, now)
	v := policyViolations(pol, *k)
	if k.LeakAction != pol.LeakAction {
		// Weaker or stronger, a key's own leak action is an
		// administrator's decision: within the team it is the team's.
		team := pol.LeakAction
		if team == "" {
			team = "none (the global leaks: policy)"
		}
		v = append(v, "leak_action: the team's keys take "+team)
	}
	if len(v) > 0 {
		return badRequestf("the key breaks the policy of team %s: %s; ask within it, or ask an admin", team, strings.Join(v, "; "))
	}
	return nil
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
	if err := validateTools(req.AllowTools); err != nil {
		return store.Key{}, err
	}
	if err := adminapi.ValidLeakAction(req.LeakAction); err != nil {
		return store.Key{}, err
	}
	k := store.Key{
		ID: newID("key_"), Name: req.Name, Env: req.Env,
		AllowModels: req.AllowModels, AllowProviders: req.AllowProviders, AllowServices: req.AllowServices, AllowTools: req.AllowTools, CreatedAt: now,
		LeakAction: req.LeakAction,
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
	users, err := a.usersByID(r.Context())
	if err != nil {
		a.internal(w, "list users", err)
		return
	}
	out := adminapi.KeyList{Keys: make([]adminapi.Key, 0, len(ks))}
	for _, k := range ks {
		if unused > 0 && !staleKey(k, now, unused) {
			continue
		}
		// A principal sees only the keys it may read: its team's, its own.
		if !a.can(r, rbac.KeysRead, rbac.Resource{Team: k.Team, Owner: k.Owner}) {
			continue
		}
		out.Keys = append(out.Keys, namedWith(keyView(k, now), users))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// findKey resolves a key reference: the key its route resolved, else by
// its id, else its name.
func (a *API) findKey(r *http.Request, ref string) (store.Key, error) {
	if k := state(r).key; k != nil && (k.ID == ref || k.Name == ref) {
		return *k, nil
	}
	return a.lookupKey(r.Context(), ref)
}

// lookupKey finds a key by its id, else its name.
func (a *API) lookupKey(ctx context.Context, ref string) (store.Key, error) {
	if strings.HasPrefix(ref, "key_") {
		k, err := a.opts.Store.GetKey(ctx, ref)
		if !errors.Is(err, store.ErrNotFound) {
			return k, err
		}
	}
	return a.opts.Store.GetKeyByName(ctx, ref)
}

// named fills in the names of a key's owner and creator.
func (a *API) named(r *http.Request, k adminapi.Key) adminapi.Key {
	users, err := a.usersByID(r.Context())
	if err != nil {
		a.opts.Log.Warn("could not read users to name a key's owner", "err", err)
		return k
	}
	return namedWith(k, users)
}

func namedWith(k adminapi.Key, users map[string]store.User) adminapi.Key {
	if u, ok := users[k.OwnerID]; ok {
		k.Owner = u.Name
	}
	if u, ok := users[k.CreatedBy]; ok {
		k.CreatedBy = u.Name
	}
	return k
}

func (a *API) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, a.named(r, keyView(k, a.opts.Now())))
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	c, err := a.opts.Keys.Revoke(r.Context(), k.ID, a.actor(r))
	if err != nil {
		a.keyStateError(w, r.PathValue("ref"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, keyView(c.Key, a.opts.Now()))
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
		AllowServices: orEmpty(k.AllowServices), AllowTools: orEmpty(k.AllowTools), AllowPaths: orEmpty(k.AllowPaths), AllowIPs: orEmpty(k.AllowIPs), Hours: k.Hours,
		SuspendedAt: k.SuspendedAt, RotatedFrom: k.RotatedFrom, Rotation: keyRotationView(k), ClientCert: k.ClientCert, LeakAction: k.LeakAction,
		StepUpUntil: k.StepUpUntil, Team: k.Team, OwnerID: k.Owner, CreatedBy: k.CreatedBy,
	}
}
