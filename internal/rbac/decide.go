package rbac

import "time"

// Kind says what sort of identity a principal is.
type Kind string

// Principal kinds.
const (
	// KindUser is a person.
	KindUser Kind = "user"
	// KindService is a service account: an identity for automation
	// (Terraform, CI) that holds tokens and never signs in.
	KindService Kind = "service"
	// KindToken is an admin credential tied to no user: the bootstrap
	// credential, one made offline with `keygate admin token create`, or an
	// admin or operator token from before users existed.
	KindToken Kind = "token"
)

// Membership is a principal's role in one team.
type Membership struct {
	Team string
	Role string
}

// Principal is whoever makes an admin request, however it authenticated.
// Every way in (an admin token, a personal access token, a service token,
// and sign-in sessions) yields one, and every decision is made on it alone.
type Principal struct {
	// ID is the stable identity the audit trail records: the user's or
	// service account's id, or the credential's id for a KindToken.
	ID string
	// UserID is the user or service account, "" for a KindToken.
	UserID string
	Name   string
	Kind   Kind
	// Role is the user's role, or the credential's for a KindToken. A team
	// role (such as developer) grants nothing outside Teams.
	Role  string
	Teams []Membership
	// Cap is the role the credential is limited to, "" for none: a
	// personal access token made with --role viewer can do only what both
	// its user and a viewer may.
	Cap string
	// Via says how the principal authenticated, as whoami shows it:
	// "bootstrap admin token", "admin token", "personal access token",
	// "service account token"; sign-in adds its own.
	Via string
	// Credential is the id of the credential (or session) used.
	Credential string
	// Expires is when the credential stops working; nil for never.
	Expires *time.Time
}

// Resource is what a request acts on, as far as permissions go.
type Resource struct {
	// Team is the team the resource belongs to, "" for none: only a
	// global grant reaches a resource of no team.
	Team string
	// Owner is the user id owning the resource, "" for none: a grant
	// limited to owned resources (keys.update:own) reaches it only when
	// this is the principal's user.
	Owner string
}

// Allowed reports whether p may use perm on res. A grant applies when it
// comes from p's role (unless that is a team role), from the role of p's
// membership in res's team, or from the grants every user holds on its own
// resources; a grant limited to owned resources applies only when res is
// p's. A capped credential additionally needs its cap role's grant.
func (t *Table) Allowed(p Principal, perm Permission, res Resource) bool {
	own := p.UserID != "" && res.Owner == p.UserID
	if !t.capAllows(p, perm, own) {
		return false
	}
	applies := func(role string) bool {
		r, ok := t.roles[role]
		if !ok {
			return false
		}
		g, ok := r.grants[perm]
		return ok && (!g.OwnOnly || own)
	}
	if r, ok := t.roles[p.Role]; ok && !r.Team && applies(p.Role) {
		return true
	}
	if own && isEveryone(perm) {
		return true
	}
	if res.Team != "" {
		for _, m := range p.Teams {
			if m.Team == res.Team && applies(m.Role) {
				return true
			}
		}
	}
	return false
}

// AllowedGlobally reports whether p holds perm in full everywhere: from a
// role that is not a team role, with no cap limiting it to owned resources.
func (t *Table) AllowedGlobally(p Principal, perm Permission) bool {
	return t.Allowed(p, perm, Resource{})
}

// AllowedSomewhere reports whether p may use perm on at least some
// resource: globally, in one of its teams, or on its own. List routes are
// let through on this, and list only what Allowed allows.
func (t *Table) AllowedSomewhere(p Principal, perm Permission) bool {
	return t.holds(p, perm, false)
}

// holds reports whether p holds perm somewhere; with full, only a grant
// not limited to owned resources counts.
func (t *Table) holds(p Principal, perm Permission, full bool) bool {
	if p.Cap != "" {
		c, ok := t.roles[p.Cap]
		if !ok {
			return false
		}
		g, ok := c.grants[perm]
		if !ok || (full && g.OwnOnly) {
			return false
		}
	}
	has := func(role string) bool {
		r, ok := t.roles[role]
		if !ok {
			return false
		}
		g, ok := r.grants[perm]
		return ok && (!full || !g.OwnOnly)
	}
	if r, ok := t.roles[p.Role]; ok && !r.Team && has(p.Role) {
		return true
	}
	if !full && p.UserID != "" && isEveryone(perm) {
		return true
	}
	for _, m := range p.Teams {
		if has(m.Role) {
			return true
		}
	}
	return false
}

// capAllows applies a credential's cap: its role must grant perm, and a
// cap limited to owned resources lets through only p's own.
func (t *Table) capAllows(p Principal, perm Permission, own bool) bool {
	if p.Cap == "" {
		return true
	}
	c, ok := t.roles[p.Cap]
	if !ok {
		return false
	}
	g, ok := c.grants[perm]
	return ok && (!g.OwnOnly || own)
}

func isEveryone(perm Permission) bool {
	for _, p := range everyone() {
		if p == perm {
			return true
		}
	}
	return false
}

// MissingToGrant returns the grants of role that p does not hold itself
// where role would apply: in team, or (team "") everywhere. Nobody gives
// another principal, or a credential, more than it holds: a non-empty
// answer refuses the grant.
func (t *Table) MissingToGrant(p Principal, role, team string) []Grant {
	r, ok := t.roles[role]
	if !ok {
		return nil
	}
	var missing []Grant
	for _, g := range r.Grants() {
		// Someone else's resource for a full grant; p's own for one
		// limited to owned resources.
		res := Resource{Team: team, Owner: "\x00another"}
		if g.OwnOnly && p.UserID != "" {
			res.Owner = p.UserID
		}
		if !t.Allowed(p, g.Permission, res) {
			missing = append(missing, g)
		}
	}
	return missing
}

// MissingToCap returns the grants of role that p does not hold anywhere:
// a credential p creates may be capped at role only when this is empty,
// so a token is never stronger than its user.
func (t *Table) MissingToCap(p Principal, role string) []Grant {
	r, ok := t.roles[role]
	if !ok {
		return nil
	}
	var missing []Grant
	for _, g := range r.Grants() {
		if !t.holds(p, g.Permission, !g.OwnOnly) {
			missing = append(missing, g)
		}
	}
	return missing
}
