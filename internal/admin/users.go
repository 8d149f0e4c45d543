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
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// userName is what a user or service account may be called: letters,
// digits and '.', '_', '-', '@', so an e-mail address from an identity
// provider fits.
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// listUsers lists the users (or, with services, the service accounts).
func (a *API) listUsers(services bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		us, err := a.opts.People.ListUsers(r.Context())
		if err != nil {
			a.internal(w, "list users", err)
			return
		}
		out := adminapi.UserList{Users: []adminapi.User{}}
		for _, u := range us {
			if (u.Kind == store.UserService) != services {
				continue
			}
			v, err := a.userView(r.Context(), u, false)
			if err != nil {
				a.internal(w, "list users", err)
				return
			}
			out.Users = append(out.Users, v)
		}
		web.WriteJSON(w, http.StatusOK, out)
	}
}

// userView shows a user with its teams and, with tokens, its credentials.
func (a *API) userView(ctx context.Context, u store.User, tokens bool) (adminapi.User, error) {
	v := adminapi.User{ID: u.ID, Name: u.Name, Kind: u.Kind, Role: u.Role, Status: "active", CreatedAt: u.CreatedAt, DisabledAt: u.DisabledAt, Teams: []adminapi.Membership{}}
	if u.DisabledAt != nil {
		v.Status = "disabled"
	}
	ms, err := a.opts.People.ListMemberships(ctx, u.ID)
	if err != nil {
		return v, err
	}
	for _, m := range ms {
		v.Teams = append(v.Teams, adminapi.Membership{Team: m.Team, Role: m.Role})
	}
	if tokens {
		all, err := a.opts.Credentials.ListAdminTokens(ctx)
		if err != nil {
			return v, err
		}
		now := a.opts.Now()
		for _, t := range all {
			if t.UserID == u.ID {
				v.Tokens = append(v.Tokens, tokenView(t, map[string]store.User{u.ID: u}, now))
			}
		}
	}
	return v, nil
}

// createUser adds a user (or a service account), optionally in a team,
// and issues its first admin credential, shown once.
func (a *API) createUser(service bool) http.HandlerFunc {
	kind, what := store.UserPerson, "user"
	if service {
		kind, what = store.UserService, "service account"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.CreateUserRequest
		if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		req.Name, req.Role, req.Team = strings.TrimSpace(req.Name), strings.TrimSpace(req.Role), strings.TrimSpace(req.Team)
		if !userName.MatchString(req.Name) {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("name %q must be 1-128 letters, digits, '.', '_', '-' or '@', starting with a letter or digit", req.Name))
			return
		}
		if err := a.checkAssign(r, req.Role, req.Team); err != nil {
			a.targetError(w, err)
			return
		}
		ttl, err := tokenTTL(req.TTL)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		now := a.opts.Now().UTC()
		u := store.User{ID: newID("usr_"), Name: req.Name, Kind: kind, Role: req.Role, CreatedAt: now, CreatedBy: principal(r).ID}
		if err := a.opts.People.CreateUser(r.Context(), u); err != nil {
			if errors.Is(err, store.ErrConflict) {
				writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("a user or service account named %q already exists", req.Name))
				return
			}
			a.internal(w, "add the "+what, err)
			return
		}
		a.auditChange(r, what+" "+u.Name, "role", "", u.Role)
		if req.Team != "" {
			if _, err := a.opts.People.PutTeamMember(r.Context(), store.TeamMember{Team: req.Team, UserID: u.ID, Role: req.Role, AddedAt: now}); err != nil {
				a.internal(w, "add the "+what+" to team "+req.Team, err)
				return
			}
			a.auditChange(r, "team "+req.Team, "member "+u.Name, "", req.Role)
		}
		out := adminapi.CreatedUser{}
		if !req.NoToken {
			tk := store.AdminTokenPersonal
			if service {
				tk = store.AdminTokenService
			}
			raw, tok, err := NewToken(r.Context(), a.opts.Credentials, a.opts.Hasher, TokenSpec{Name: "first", Kind: tk, UserID: u.ID, TTL: ttl}, now)
			if err != nil {
				a.internal(w, "issue the "+what+"'s first admin credential", err)
				return
			}
			tv := tokenView(tok, map[string]store.User{u.ID: u}, now)
			out.Token, out.Secret = &tv, raw.Reveal()
		}
		if out.User, err = a.userView(r.Context(), u, false); err != nil {
			a.internal(w, "read the "+what, err)
			return
		}
		a.opts.Log.Info(what+" added", "actor", principal(r).ID, "user_id", u.ID, "role", u.Role, "team", req.Team)
		web.WriteJSON(w, http.StatusCreated, out)
	}
}

// checkAssign checks that the caller may give role (in team, when one is
// named): the role exists, fits where it is given, and holds nothing the
// caller does not hold there itself.
func (a *API) checkAssign(r *http.Request, role, team string) error {
	if err := a.opts.Roles.CheckRole(role); err != nil {
		return badRequestf("role: %v", err)
	}
	rl, _ := a.opts.Roles.Role(role)
	if team != "" {
		if !rl.Team && !rl.Custom {
			return badRequestf("role %s applies everywhere, not in one team; give --team only with a team role (%s) or a custom role", role, strings.Join(a.teamRoles(), ", "))
		}
		if _, err := a.opts.People.GetTeam(r.Context(), team); errors.Is(err, store.ErrNotFound) {
			return badRequestf("team: no team named %q; create it with keygate team add %s", team, team)
		} else if err != nil {
			return err
		}
	}
	scopeTeam := team
	if !rl.Team {
		scopeTeam = "" // a role given to a user applies everywhere
	}
	if rl.Team && team == "" {
		return nil // a team role given to a user grants nothing until a team does
	}
	if missing := a.opts.Roles.MissingToGrant(principal(r), role, scopeTeam); len(missing) > 0 {
		return httpError{http.StatusForbidden, "forbidden", fmt.Sprintf("role %s holds what %s may not do itself: %s; nobody gives more than they hold",
			role, describe(principal(r)), grantList(missing))}
	}
	return nil
}

func (a *API) teamRoles() []string {
	var out []string
	for _, r := range a.opts.Roles.Roles() {
		if r.Team {
			out = append(out, r.Name)
		}
	}
	return out
}

// checkActOn refuses to change a user who holds anything the caller does
// not: an admin cannot disable an owner, nor issue an owner's service
// account a token.
func (a *API) checkActOn(r *http.Request, u store.User) error {
	p := principal(r)
	check := func(role, team string) error {
		rl, ok := a.opts.Roles.Role(role)
		if !ok || (rl.Team && team == "") {
			return nil
		}
		if !rl.Team && team != "" && !rl.Custom {
			team = ""
		}
		if missing := a.opts.Roles.MissingToGrant(p, role, team); len(missing) > 0 {
			return httpError{http.StatusForbidden, "forbidden", fmt.Sprintf("%s %s holds what %s may not do itself (%s); only someone who holds all of it may change it",
				u.Kind, u.Name, describe(p), grantList(missing))}
		}
		return nil
	}
	if err := check(u.Role, ""); err != nil {
		return err
	}
	ms, err := a.opts.People.ListMemberships(r.Context(), u.ID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := check(m.Role, m.Team); err != nil {
			return err
		}
	}
	return nil
}

// findUser resolves {name} to a user, answering 404 itself.
func (a *API) findUser(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	name := r.PathValue("name")
	u, err := a.opts.People.GetUserByName(r.Context(), name)
	if err != nil {
		a.lookupError(w, "user", name, err)
		return store.User{}, false
	}
	return u, true
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	u, ok := a.findUser(w, r)
	if !ok {
		return
	}
	v, err := a.userView(r.Context(), u, true)
	if err != nil {
		a.internal(w, "read the user", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, v)
}

// setUserRole changes a user's role: PUT /users/{name}/role.
func (a *API) setUserRole(w http.ResponseWriter, r *http.Request) {
	var req adminapi.SetRoleRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	u, ok := a.findUser(w, r)
	if !ok {
		return
	}
	role := strings.TrimSpace(req.Role)
	if err := a.checkAssign(r, role, ""); err != nil {
		a.targetError(w, err)
		return
	}
	if err := a.checkActOn(r, u); err != nil {
		a.targetError(w, err)
		return
	}
	before := u.Role
	u, err := a.opts.People.SetUserRole(r.Context(), u.ID, role)
	if err != nil {
		a.lookupError(w, "user", r.PathValue("name"), err)
		return
	}
	a.auditChange(r, u.Kind+" "+u.Name, "role", before, u.Role)
	a.opts.Log.Info("user role changed", "actor", principal(r).ID, "user_id", u.ID, "from", before, "to", u.Role)
	a.writeUser(w, r, u)
}

// disableUser disables a user and revokes every admin credential of
// theirs: they stop on the next request on every node, since credentials
// are checked against the database on each request. A revocation record
// tells other nodes' caches (sign-in sessions) at once.
func (a *API) disableUser(w http.ResponseWriter, r *http.Request) {
	u, ok := a.findUser(w, r)
	if !ok {
		return
	}
	if u.ID == principal(r).UserID {
		writeError(w, http.StatusBadRequest, "bad_request", "you cannot disable yourself; ask another admin")
		return
	}
	if err := a.checkActOn(r, u); err != nil {
		a.targetError(w, err)
		return
	}
	now := a.opts.Now().UTC()
	at := now
	if u.DisabledAt != nil {
		at = *u.DisabledAt
	}
	u, err := a.opts.People.SetUserDisabled(r.Context(), u.ID, &at)
	if err != nil {
		a.lookupError(w, "user", r.PathValue("name"), err)
		return
	}
	n, err := a.opts.Credentials.RevokeUserAdminTokens(r.Context(), u.ID, now)
	if err != nil {
		a.internal(w, "revoke the user's admin credentials", err)
		return
	}
	if a.opts.SignIn != nil && a.opts.SignIn.Sessions != nil {
		// Every node refuses them anyway (a session reads its user on
		// each request); revoked, they stay ended if the user is enabled.
		if _, err := a.opts.SignIn.Sessions.RevokeUser(r.Context(), u.ID); err != nil {
			a.internal(w, "end the user's sessions", err)
			return
		}
	}
	if _, err := a.opts.Store.AddRevocation(r.Context(), store.Revocation{Kind: "user", Subject: u.ID, At: now, Until: now.Add(MaxTokenTTL)}); err != nil {
		a.opts.Log.Error("user disabled but other nodes could not be told at once", "user_id", u.ID, "err", err)
	}
	a.auditChange(r, u.Kind+" "+u.Name, "status", "active", fmt.Sprintf("disabled (%d admin credentials revoked)", n))
	a.opts.Log.Info("user disabled", "actor", principal(r).ID, "user_id", u.ID, "credentials_revoked", n)
	a.writeUser(w, r, u)
}

// enableUser enables a disabled user again and issues a new first
// credential (its old ones stay revoked).
func (a *API) enableUser(w http.ResponseWriter, r *http.Request) {
	var req adminapi.IssueTokenRequest
	if err := decodeOptional(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	ttl, err := tokenTTL(req.TTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	u, ok := a.findUser(w, r)
	if !ok {
		return
	}
	if err := a.checkActOn(r, u); err != nil {
		a.targetError(w, err)
		return
	}
	if u, err = a.opts.People.SetUserDisabled(r.Context(), u.ID, nil); err != nil {
		a.lookupError(w, "user", r.PathValue("name"), err)
		return
	}
	a.auditChange(r, u.Kind+" "+u.Name, "status", "disabled", "active")
	out := adminapi.CreatedUser{}
	if !req.NoToken {
		kind := store.AdminTokenPersonal
		if u.Kind == store.UserService {
			kind = store.AdminTokenService
		}
		raw, tok, err := NewToken(r.Context(), a.opts.Credentials, a.opts.Hasher, TokenSpec{Name: "enabled", Kind: kind, UserID: u.ID, TTL: ttl}, a.opts.Now())
		if err != nil {
			a.internal(w, "issue the user's admin credential", err)
			return
		}
		tv := tokenView(tok, map[string]store.User{u.ID: u}, a.opts.Now())
		out.Token, out.Secret = &tv, raw.Reveal()
	}
	if out.User, err = a.userView(r.Context(), u, false); err != nil {
		a.internal(w, "read the user", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) writeUser(w http.ResponseWriter, r *http.Request, u store.User) {
	v, err := a.userView(r.Context(), u, false)
	if err != nil {
		a.internal(w, "read the user", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, v)
}

// BootstrapStillValid returns a bootstrap credential that still works
// while a user exists: it was meant only to add the first user, and
// keygate serve warns about it.
func BootstrapStillValid(ctx context.Context, creds interface {
	ListAdminTokens(ctx context.Context) ([]store.AdminToken, error)
}, people interface {
	CountPeople(ctx context.Context) (int, error)
}, now time.Time) (store.AdminToken, bool, error) {
	n, err := people.CountPeople(ctx)
	if err != nil || n == 0 {
		return store.AdminToken{}, false, err
	}
	toks, err := creds.ListAdminTokens(ctx)
	if err != nil {
		return store.AdminToken{}, false, err
	}
	for _, t := range toks {
		if t.Kind == store.AdminTokenBootstrap && t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt)) {
			return t, true, nil
		}
	}
	return store.AdminToken{}, false, nil
}
