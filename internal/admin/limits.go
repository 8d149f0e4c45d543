package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// encodeLimits validates limits and encodes them for the store; no limits
// encode as nil.
func encodeLimits(l adminapi.Limits) ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if l.IsZero() {
		return nil, nil
	}
	return json.Marshal(l)
}

// decodeLimits reads stored limits; the store only holds what
// encodeLimits wrote.
func decodeLimits(b []byte) adminapi.Limits {
	var l adminapi.Limits
	if len(b) > 0 {
		_ = json.Unmarshal(b, &l)
	}
	return l
}

// updateKey changes a live key's limits or group. The change applies on
// this node at the next request, on others within key_cache_ttl.
func (a *API) updateKey(w http.ResponseWriter, r *http.Request) {
	var req adminapi.UpdateKeyRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if req.Limits == nil && req.Group == nil && req.AllowPaths == nil && req.AllowIPs == nil && req.Hours == nil && req.Rotation == nil && req.ClientCert == nil && req.AllowServices == nil && req.AllowTools == nil && req.LeakAction == nil {
		writeError(w, http.StatusBadRequest, "bad_request", "nothing to change: send limits, group, allow_services, allow_tools, allow_paths, allow_ips, hours, client_cert, leak_action or rotation")
		return
	}
	// Every field is checked before anything is written: a bad one
	// changes nothing.
	every, grace, deliverTo, err := parseRotation(req.Rotation)
	if err == nil {
		err = checkUpdate(req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var limits []byte
	if req.Limits != nil {
		var err error
		if limits, err = encodeLimits(*req.Limits); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	ctx := r.Context()
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	if deliverTo != "" {
		if err := a.checkDelivery(ctx, k.Name, deliverTo); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	if err := a.checkTeamUpdate(r, k, req, limits); err != nil {
		a.targetError(w, err)
		return
	}
	if req.Group != nil {
		k, err = a.opts.Store.SetKeyGroup(ctx, k.ID, strings.TrimSpace(*req.Group))
		if errors.Is(err, store.ErrNoSuchGroup) {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("group: no group named %q; create it with keygate group create", *req.Group))
			return
		}
		if err != nil {
			a.lookupError(w, "key", r.PathValue("ref"), err)
			return
		}
	}
	if req.Limits != nil {
		if k, err = a.opts.Store.UpdateKeyLimits(ctx, k.ID, limits); err != nil {
			a.lookupError(w, "key", r.PathValue("ref"), err)
			return
		}
	}
	if k, err = a.updateScopes(ctx, k, req); err != nil {
		var bad badRequest
		if errors.As(err, &bad) {
			writeError(w, http.StatusBadRequest, "bad_request", bad.Error())
			return
		}
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	if req.ClientCert != nil {
		if k, err = a.opts.Store.SetKeyClientCert(ctx, k.ID, *req.ClientCert); err != nil {
			a.lookupError(w, "key", r.PathValue("ref"), err)
			return
		}
	}
	if req.LeakAction != nil {
		if k, err = a.opts.Store.SetKeyLeakAction(ctx, k.ID, *req.LeakAction); err != nil {
			a.lookupError(w, "key", r.PathValue("ref"), err)
			return
		}
	}
	if req.Rotation != nil {
		var next *time.Time
		if every > 0 {
			due := a.opts.Now().UTC().Add(every)
			next = &due
		}
		if k, err = a.opts.Store.SetKeyRotation(ctx, k.ID, every, grace, deliverTo, next); err != nil {
			a.lookupError(w, "key", r.PathValue("ref"), err)
			return
		}
	}
	a.opts.Keys.Changed(ctx, k.ID)
	a.opts.Log.Info("key updated", "actor", principal(r).ID, "key_id", k.ID, "limits", string(limits), "group", k.Group)
	web.WriteJSON(w, http.StatusOK, a.named(r, keyView(k, a.opts.Now())))
}

// checkTeamUpdate keeps a key's team and group together, and a team key's
// limits within its team's ceilings for anyone without a global grant.
func (a *API) checkTeamUpdate(r *http.Request, k store.Key, req adminapi.UpdateKeyRequest, limits []byte) error {
	if req.AllowTools != nil {
		if err := a.checkToolGrant(r, k.Team, *req.AllowTools, rbac.KeysUpdate); err != nil {
			return err
		}
	}
	if req.LeakAction != nil && k.Team != "" && !a.global(r, rbac.KeysUpdate) {
		return badRequestf("leak_action: a team key's leak action is its team's policy; an administrator with %s over every key sets another", rbac.KeysUpdate)
	}
	if req.Group != nil {
		g := strings.TrimSpace(*req.Group)
		if k.Team != "" {
			return badRequestf("group: key %s belongs to team %s and shares its limits (group %s); it joins no other group", k.Name, k.Team, k.Group)
		}
		if owner, err := a.teamOfGroup(r, g); err != nil {
			return err
		} else if owner != "" {
			return badRequestf("group: %s holds the shared limits of team %s; only the team's keys are in it", g, owner)
		}
	}
	if k.Team == "" || (req.Limits == nil && req.AllowServices == nil) || a.global(r, rbac.KeysUpdate) {
		return nil
	}
	t, err := a.opts.People.GetTeam(r.Context(), k.Team)
	if err != nil {
		return err
	}
	pol := decodePolicy(t.Policy)
	var v []string
	if req.Limits != nil {
		v = limitViolations(decodeLimits(limits), pol.MaxLimits)
	}
	if req.AllowServices != nil {
		v = append(v, policyViolations(adminapi.TeamPolicy{AllowServices: pol.AllowServices}, store.Key{AllowServices: *req.AllowServices})...)
	}
	if len(v) > 0 {
		return badRequestf("the change breaks the policy of team %s: %s", k.Team, strings.Join(v, "; "))
	}
	return nil
}

// usageDays reads ?days=N, default 30.
func usageDays(r *http.Request) (int, error) {
	days := defaultUsageDays
	if q := r.URL.Query().Get("days"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxUsageDays {
			return 0, fmt.Errorf("days %q must be a whole number from 1 to %d", q, maxUsageDays)
		}
		days = n
	}
	return days, nil
}

// checkUpdate checks the fields of a key update that need no lookup.
func checkUpdate(req adminapi.UpdateKeyRequest) error {
	deref := func(l *[]string) []string {
		if l == nil {
			return nil
		}
		return *l
	}
	hours := ""
	if req.Hours != nil {
		hours = *req.Hours
	}
	if err := validateScopes(deref(req.AllowPaths), deref(req.AllowIPs), hours); err != nil {
		return err
	}
	if err := validateServices(deref(req.AllowServices)); err != nil {
		return err
	}
	if err := validateTools(deref(req.AllowTools)); err != nil {
		return err
	}
	if req.LeakAction != nil {
		if err := adminapi.ValidLeakAction(*req.LeakAction); err != nil {
			return err
		}
	}
	if req.ClientCert != nil && *req.ClientCert != "" {
		if err := adminapi.ValidClientCertMatch(*req.ClientCert); err != nil {
			return fmt.Errorf("client_cert: %w", err)
		}
	}
	return nil
}

const (
	defaultUsageDays = 30
	maxUsageDays     = 400
)

func (a *API) keyUsage(w http.ResponseWriter, r *http.Request) {
	days, err := usageDays(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	since := a.opts.Now().In(a.opts.UsageLocation).AddDate(0, 0, 1-days).Format(time.DateOnly)
	rows, err := a.opts.Store.ListUsage(r.Context(), k.ID, since)
	if err != nil {
		a.internal(w, "read the key's usage", err)
		return
	}
	out := adminapi.KeyUsage{Key: keyView(k, a.opts.Now()), Rows: make([]adminapi.UsageRow, 0, len(rows))}
	for _, u := range rows {
		out.Rows = append(out.Rows, adminapi.UsageRow{
			Date: u.Day, Model: u.Model, Requests: u.Requests, InputTokens: u.InputTokens,
			OutputTokens: u.OutputTokens, MicroUSD: u.MicroUSD, Denials: u.Denials,
		})
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func groupView(g store.Group) adminapi.Group {
	return adminapi.Group{Name: g.Name, Limits: decodeLimits(g.Limits), Keys: g.Keys, CreatedAt: g.CreatedAt}
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) {
	var req adminapi.GroupRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if !keyName.MatchString(req.Name) {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("name %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name))
		return
	}
	limits, err := encodeLimits(req.Limits)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	g := store.Group{Name: req.Name, Limits: limits, CreatedAt: a.opts.Now().UTC()}
	if err := a.opts.Store.CreateGroup(r.Context(), g); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a group named %q already exists", req.Name))
			return
		}
		a.internal(w, "create the group", err)
		return
	}
	a.opts.GroupsChanged(r.Context())
	a.opts.Log.Info("group created", "actor", principal(r).ID, "group", g.Name, "limits", string(limits))
	web.WriteJSON(w, http.StatusCreated, groupView(g))
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) {
	gs, err := a.opts.Store.ListGroups(r.Context())
	if err != nil {
		a.internal(w, "list groups", err)
		return
	}
	out := adminapi.GroupList{Groups: make([]adminapi.Group, 0, len(gs))}
	for _, g := range gs {
		out.Groups = append(out.Groups, groupView(g))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.opts.Store.GetGroup(r.Context(), r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "group", r.PathValue("name"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, groupView(g))
}

func (a *API) updateGroup(w http.ResponseWriter, r *http.Request) {
	var req adminapi.GroupRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	limits, err := encodeLimits(req.Limits)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	name := r.PathValue("name")
	if !a.notTeamGroup(w, r, name) {
		return
	}
	if err := a.opts.Store.UpdateGroupLimits(r.Context(), name, limits); err != nil {
		a.lookupError(w, "group", name, err)
		return
	}
	a.opts.GroupsChanged(r.Context())
	a.opts.Log.Info("group updated", "actor", principal(r).ID, "group", name, "limits", string(limits))
	a.getGroup(w, r)
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !a.notTeamGroup(w, r, name) {
		return
	}
	err := a.opts.Store.DeleteGroup(r.Context(), name)
	if errors.Is(err, store.ErrGroupInUse) {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("group %q still has keys; move them out first (keygate key update KEY --no-group)", name))
		return
	}
	if err != nil {
		a.lookupError(w, "group", name, err)
		return
	}
	a.opts.GroupsChanged(r.Context())
	a.opts.Log.Info("group deleted", "actor", principal(r).ID, "group", name)
	w.WriteHeader(http.StatusNoContent)
}

// notTeamGroup refuses a change to a team's group through the group
// routes: the team's limits change with keygate team limits, on the trail
// as the team's.
func (a *API) notTeamGroup(w http.ResponseWriter, r *http.Request, name string) bool {
	team, err := a.teamOfGroup(r, name)
	if err != nil {
		a.internal(w, "read teams", err)
		return false
	}
	if team != "" {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("group %s holds the shared limits of team %s; change them with keygate team limits %s", name, team, team))
		return false
	}
	return true
}
