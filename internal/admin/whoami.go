package admin

import (
	"net/http"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/web"
)

// whoAmI describes the caller: user, role, teams, how it signed in, and
// what it may do.
func (a *API) whoAmI(w http.ResponseWriter, r *http.Request) {
	st := state(r)
	p := st.principal
	out := adminapi.WhoAmI{TokenID: p.Credential, Name: p.Name, Role: p.Role, Kind: string(p.Kind), UserID: p.UserID,
		Teams: []adminapi.Membership{}, CredentialRole: p.Cap, Via: p.Via, ExpiresAt: p.Expires, Permissions: a.permissionsOf(p)}
	for _, m := range p.Teams {
		out.Teams = append(out.Teams, adminapi.Membership{Team: m.Team, Role: m.Role})
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// permissionsOf lists what p may do: "keys.read" everywhere,
// "keys.read@payments" in a team, "keys.read:own" on its own resources.
func (a *API) permissionsOf(p rbac.Principal) []string {
	roles := a.opts.Roles
	out := []string{}
	for _, perm := range rbac.All() {
		if roles.AllowedGlobally(p, perm) {
			out = append(out, string(perm))
			continue
		}
		inTeam := false
		for _, m := range p.Teams {
			if roles.Allowed(p, perm, rbac.Resource{Team: m.Team, Owner: "\x00another"}) {
				out = append(out, string(perm)+"@"+m.Team)
				inTeam = true
			}
		}
		if !inTeam && roles.AllowedSomewhere(p, perm) {
			out = append(out, string(perm)+":own")
		}
	}
	return out
}

// listRoles shows the role table: GET /roles.
func (a *API) listRoles(w http.ResponseWriter, r *http.Request) {
	out := adminapi.RoleList{Everyone: []string{}, ApprovalsRequiredFor: []string{}}
	for _, rl := range a.opts.Roles.Roles() {
		v := adminapi.Role{Name: rl.Name, Description: rl.Description, Team: rl.Team, Custom: rl.Custom, Permissions: []string{}}
		for _, g := range rl.Grants() {
			v.Permissions = append(v.Permissions, g.String())
		}
		out.Roles = append(out.Roles, v)
	}
	for _, g := range rbac.Everyone() {
		out.Everyone = append(out.Everyone, g.String())
	}
	for _, p := range a.opts.Approval.RequiredFor {
		out.ApprovalsRequiredFor = append(out.ApprovalsRequiredFor, string(p))
	}
	web.WriteJSON(w, http.StatusOK, out)
}
