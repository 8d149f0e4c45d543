package admin

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// A team owns keys. Its shared budget and limits are a key group's, made
// with the team (named "team:NAME", which `keygate group create` cannot
// make) or adopted from an existing group: every key of the team is in
// that group, so the gateway enforces the team's budget with the group
// limits it already enforces, and no gateway change is needed.

// teamGroup is the name of the key group made for a new team.
func teamGroup(team string) string { return "team:" + team }

// createTeam adds a team: POST /teams.
func (a *API) createTeam(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CreateTeamRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	req.Name, req.FromGroup = strings.TrimSpace(req.Name), strings.TrimSpace(req.FromGroup)
	if !keyName.MatchString(req.Name) {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("name %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name))
		return
	}
	ctx := r.Context()
	var policy []byte
	if req.Policy != nil {
		var err error
		if policy, err = a.encodePolicy(ctx, *req.Policy); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	var limits []byte
	if req.Limits != nil {
		var err error
		if limits, err = encodeLimits(*req.Limits); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	now := a.opts.Now().UTC()
	t := store.Team{Name: req.Name, Group: teamGroup(req.Name), Policy: policy, CreatedAt: now}
	var group *store.Group
	if req.FromGroup == "" {
		group = &store.Group{Name: t.Group, Limits: limits, CreatedAt: now}
	} else {
		t.Group = req.FromGroup
		if err := a.checkAdoption(r, t); err != nil {
			a.targetError(w, err)
			return
		}
	}
	err := a.opts.People.CreateTeam(ctx, t, group)
	switch {
	case errors.Is(err, store.ErrNoSuchGroup):
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("from_group: no group named %q; see keygate group list", req.FromGroup))
		return
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a team named %q, or a team of group %q, already exists", t.Name, t.Group))
		return
	case err != nil:
		a.internal(w, "create the team", err)
		return
	}
	if req.FromGroup != "" && req.Limits != nil {
		if err := a.opts.Store.UpdateGroupLimits(ctx, t.Group, limits); err != nil {
			a.internal(w, "set the team's limits", err)
			return
		}
	}
	a.opts.GroupsChanged(ctx)
	a.auditChange(r, "team "+t.Name, "created", "", fmt.Sprintf("group %s, policy %s, limits %s", t.Group, orNone(policy), orNone(limits)))
	a.opts.Log.Info("team created", "actor", principal(r).ID, "team", t.Name, "group", t.Group)
	a.writeTeam(w, r, t, http.StatusCreated)
}

// checkAdoption refuses to build a team on a group whose keys break the
// team's policy.
func (a *API) checkAdoption(r *http.Request, t store.Team) error {
	if t.Policy == nil {
		return nil
	}
	keys, err := a.opts.Store.ListKeys(r.Context())
	if err != nil {
		return err
	}
	var bad []string
	for _, k := range keys {
		if k.Group == t.Group && k.Team == "" && keyLive(k, a.opts.Now()) {
			if v := policyViolations(decodePolicy(t.Policy), k); len(v) > 0 {
				bad = append(bad, fmt.Sprintf("key %s: %s", k.Name, strings.Join(v, "; ")))
			}
		}
	}
	if len(bad) > 0 {
		return httpError{http.StatusConflict, "conflict", "the policy is stricter than keys already in the group allow; nothing was changed: " +
			strings.Join(bad, " | ") + "; change those keys first (keygate key update) or loosen the policy"}
	}
	return nil
}

func orNone(b []byte) string {
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// listTeams lists the teams the caller may see.
func (a *API) listTeams(w http.ResponseWriter, r *http.Request) {
	ts, err := a.opts.People.ListTeams(r.Context())
	if err != nil {
		a.internal(w, "list teams", err)
		return
	}
	out := adminapi.TeamList{Teams: []adminapi.Team{}}
	for _, t := range ts {
		if !a.can(r, rbac.TeamsRead, rbac.Resource{Team: t.Name}) {
			continue
		}
		v, err := a.teamView(r, t)
		if err != nil {
			a.internal(w, "list teams", err)
			return
		}
		out.Teams = append(out.Teams, v)
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) teamView(r *http.Request, t store.Team) (adminapi.Team, error) {
	v := adminapi.Team{Name: t.Name, Group: t.Group, Policy: decodePolicy(t.Policy), CreatedAt: t.CreatedAt}
	g, err := a.opts.Store.GetGroup(r.Context(), t.Group)
	if err != nil {
		return v, err
	}
	v.Limits = decodeLimits(g.Limits)
	keys, err := a.opts.People.ListTeamKeys(r.Context(), t.Name)
	if err != nil {
		return v, err
	}
	v.Keys = len(keys)
	ms, err := a.opts.People.ListTeamMembers(r.Context(), t.Name)
	if err != nil {
		return v, err
	}
	v.Members = len(ms)
	return v, nil
}

func (a *API) writeTeam(w http.ResponseWriter, r *http.Request, t store.Team, status int) {
	v, err := a.teamView(r, t)
	if err != nil {
		a.internal(w, "read the team", err)
		return
	}
	web.WriteJSON(w, status, v)
}

func (a *API) getTeam(w http.ResponseWriter, r *http.Request) {
	a.writeTeam(w, r, *state(r).team, http.StatusOK)
}

// updateTeam changes a team's policy or shared limits: PATCH /teams/{name}.
// A policy that a live key of the team breaks is refused, naming the keys.
func (a *API) updateTeam(w http.ResponseWriter, r *http.Request) {
	var req adminapi.UpdateTeamRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if req.Policy == nil && req.Limits == nil {
		writeError(w, http.StatusBadRequest, "bad_request", "nothing to change: send policy or limits")
		return
	}
	ctx := r.Context()
	t := *state(r).team
	var policy, limits []byte
	var err error
	if req.Policy != nil {
		if policy, err = a.encodePolicy(ctx, *req.Policy); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		keys, err := a.opts.People.ListTeamKeys(ctx, t.Name)
		if err != nil {
			a.internal(w, "read the team's keys", err)
			return
		}
		var bad []string
		for _, k := range keys {
			if !keyLive(k, a.opts.Now()) {
				continue
			}
			if v := policyViolations(decodePolicy(policy), k); len(v) > 0 {
				bad = append(bad, fmt.Sprintf("key %s: %s", k.Name, strings.Join(v, "; ")))
			}
		}
		if len(bad) > 0 {
			writeError(w, http.StatusConflict, "conflict", "the new policy is below what keys of team "+t.Name+" already have; nothing was changed: "+
				strings.Join(bad, " | ")+"; lower those keys first (keygate key update), revoke them, or raise the policy")
			return
		}
	}
	if req.Limits != nil {
		if limits, err = encodeLimits(*req.Limits); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	if req.Policy != nil {
		if err := a.opts.People.SetTeamPolicy(ctx, t.Name, policy); err != nil {
			a.lookupError(w, "team", t.Name, err)
			return
		}
		a.auditChange(r, "team "+t.Name, "policy", orNone(t.Policy), orNone(policy))
		t.Policy = policy
	}
	if req.Limits != nil {
		g, err := a.opts.Store.GetGroup(ctx, t.Group)
		if err != nil {
			a.internal(w, "read the team's limits", err)
			return
		}
		if err := a.opts.Store.UpdateGroupLimits(ctx, t.Group, limits); err != nil {
			a.internal(w, "set the team's limits", err)
			return
		}
		a.opts.GroupsChanged(ctx)
		a.auditChange(r, "team "+t.Name, "limits", orNone(g.Limits), orNone(limits))
	}
	a.opts.Log.Info("team updated", "actor", principal(r).ID, "team", t.Name)
	a.writeTeam(w, r, t, http.StatusOK)
}

// teamUsage sums what every key of the team used, per day and model.
func (a *API) teamUsage(w http.ResponseWriter, r *http.Request) {
	days, err := usageDays(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	t := *state(r).team
	keys, err := a.opts.People.ListTeamKeys(r.Context(), t.Name)
	if err != nil {
		a.internal(w, "read the team's keys", err)
		return
	}
	since := a.opts.Now().In(a.opts.UsageLocation).AddDate(0, 0, 1-days).Format(time.DateOnly)
	sum := map[[2]string]*adminapi.UsageRow{}
	for _, k := range keys {
		rows, err := a.opts.Store.ListUsage(r.Context(), k.ID, since)
		if err != nil {
			a.internal(w, "read the team's usage", err)
			return
		}
		for _, u := range rows {
			row := sum[[2]string{u.Day, u.Model}]
			if row == nil {
				row = &adminapi.UsageRow{Date: u.Day, Model: u.Model}
				sum[[2]string{u.Day, u.Model}] = row
			}
			row.Requests += u.Requests
			row.InputTokens += u.InputTokens
			row.OutputTokens += u.OutputTokens
			row.MicroUSD += u.MicroUSD
			row.Denials += u.Denials
		}
	}
	out := adminapi.TeamUsage{Team: t.Name, Rows: make([]adminapi.UsageRow, 0, len(sum))}
	for _, row := range sum {
		out.Rows = append(out.Rows, *row)
	}
	sort.Slice(out.Rows, func(i, j int) bool {
		if out.Rows[i].Date != out.Rows[j].Date {
			return out.Rows[i].Date > out.Rows[j].Date
		}
		return out.Rows[i].Model < out.Rows[j].Model
	})
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) listMembers(w http.ResponseWriter, r *http.Request) {
	t := *state(r).team
	ms, err := a.opts.People.ListTeamMembers(r.Context(), t.Name)
	if err != nil {
		a.internal(w, "list the team's members", err)
		return
	}
	out := adminapi.TeamMemberList{Members: make([]adminapi.TeamMember, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, memberView(m))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func memberView(m store.TeamMember) adminapi.TeamMember {
	return adminapi.TeamMember{Team: m.Team, User: m.UserName, Kind: m.UserKind, Role: m.Role, AddedAt: m.AddedAt}
}

// putMember adds a user to a team, or changes its role there:
// PUT /teams/{name}/members/{user}.
func (a *API) putMember(w http.ResponseWriter, r *http.Request) {
	var req adminapi.PutMemberRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	t := *state(r).team
	role := strings.TrimSpace(req.Role)
	if err := a.checkAssign(r, role, t.Name); err != nil {
		a.targetError(w, err)
		return
	}
	u, prev, ok := a.member(w, r, t)
	if !ok {
		return
	}
	if prev != "" {
		if missing := a.opts.Roles.MissingToGrant(principal(r), prev, t.Name); len(missing) > 0 {
			writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("%s is %s in team %s, which holds what you may not (%s)", u.Name, prev, t.Name, grantList(missing)))
			return
		}
	}
	m := store.TeamMember{Team: t.Name, UserID: u.ID, Role: role, AddedAt: a.opts.Now().UTC()}
	if _, err := a.opts.People.PutTeamMember(r.Context(), m); err != nil {
		a.internal(w, "add the team member", err)
		return
	}
	a.auditChange(r, "team "+t.Name, "member "+u.Name, prev, role)
	a.opts.Log.Info("team member set", "actor", principal(r).ID, "team", t.Name, "user_id", u.ID, "from", prev, "to", role)
	m.UserName, m.UserKind = u.Name, u.Kind
	web.WriteJSON(w, http.StatusOK, memberView(m))
}

// removeMember takes a user out of a team: DELETE /teams/{name}/members/{user}.
func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	t := *state(r).team
	u, prev, ok := a.member(w, r, t)
	if !ok {
		return
	}
	if prev == "" {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%s is not a member of team %s", u.Name, t.Name))
		return
	}
	if missing := a.opts.Roles.MissingToGrant(principal(r), prev, t.Name); len(missing) > 0 {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("%s is %s in team %s, which holds what you may not (%s)", u.Name, prev, t.Name, grantList(missing)))
		return
	}
	if err := a.opts.People.RemoveTeamMember(r.Context(), t.Name, u.ID); err != nil {
		a.lookupError(w, "member", u.Name, err)
		return
	}
	a.auditChange(r, "team "+t.Name, "member "+u.Name, prev, "")
	a.opts.Log.Info("team member removed", "actor", principal(r).ID, "team", t.Name, "user_id", u.ID)
	w.WriteHeader(http.StatusNoContent)
}

// member resolves {user} and its current role in team t ("" for none).
func (a *API) member(w http.ResponseWriter, r *http.Request, t store.Team) (store.User, string, bool) {
	name := r.PathValue("user")
	u, err := a.opts.People.GetUserByName(r.Context(), name)
	if err != nil {
		a.lookupError(w, "user", name, err)
		return store.User{}, "", false
	}
	ms, err := a.opts.People.ListMemberships(r.Context(), u.ID)
	if err != nil {
		a.internal(w, "read the user's teams", err)
		return store.User{}, "", false
	}
	for _, m := range ms {
		if m.Team == t.Name {
			return u, m.Role, true
		}
	}
	return u, "", true
}

// teamOfGroup returns the team a group backs, if any.
func (a *API) teamOfGroup(r *http.Request, group string) (string, error) {
	ts, err := a.opts.People.ListTeams(r.Context())
	if err != nil {
		return "", err
	}
	for _, t := range ts {
		if t.Group == group {
			return t.Name, nil
		}
	}
	return "", nil
}
