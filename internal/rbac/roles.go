package rbac

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Built-in role names.
const (
	Owner     = "owner"
	Admin     = "admin"
	Security  = "security"
	Auditor   = "auditor"
	Operator  = "operator"
	TeamAdmin = "team-admin"
	Developer = "developer"
	Viewer    = "viewer"
)

// Grant is one permission a role holds, in full or only on resources the
// principal owns.
type Grant struct {
	Permission Permission
	OwnOnly    bool
}

// String writes the grant as role lists in the configuration take it:
// "keys.read" or "keys.read:own".
func (g Grant) String() string {
	if g.OwnOnly {
		return string(g.Permission) + ":own"
	}
	return string(g.Permission)
}

// Role is a named set of grants.
type Role struct {
	Name        string
	Description string
	// Team marks a role that applies only within a team: given to a user
	// (as with `keygate user add --role developer --team payments`) it
	// grants nothing outside the teams the user is a member of.
	Team bool
	// Custom marks a role defined in the configuration.
	Custom bool
	grants map[Permission]Grant
}

// Grant returns the role's grant of p, if any.
func (r Role) Grant(p Permission) (Grant, bool) {
	g, ok := r.grants[p]
	return g, ok
}

// Grants returns the role's grants in docs/people.md's permission order.
func (r Role) Grants() []Grant {
	out := make([]Grant, 0, len(r.grants))
	for _, p := range All() {
		if g, ok := r.grants[p]; ok {
			out = append(out, g)
		}
	}
	return out
}

// builtin is one row of the built-in role table: full grants, and grants
// on owned resources only.
type builtin struct {
	name, description string
	team              bool
	full, own         []Permission
}

// builtins returns the built-in role table. It is the one definition of
// what each built-in role may do; docs/people.md shows it as a table, and the
// admin package's permission matrix test holds every admin route to it.
func builtins() []builtin {
	keysAll := []Permission{KeysRead, KeysCreate, KeysUpdate, KeysRevoke, KeysSuspend, KeysRotate}
	return []builtin{
		{Owner, "everything, including secret values, the vault, KEK rotation, backups and user management", false, All(), nil},
		{Admin, "users, teams, providers, keys, groups and routing; never secret values, backups or KEK rotation", false,
			without(All(), SecretsReadValue, BackupExport, VaultRotateKEK, WebhookKeys), nil},
		{Security, "the audit trail and alerts; suspend, revoke and rotate any key; disable users; never secret values or new keys", false,
			[]Permission{MetricsRead, AuditRead, AuditVerify, AlertsRead, AlertsResolve, SecretsList, ProvidersRead, VaultStatus,
				KeysRead, KeysRevoke, KeysSuspend, KeysRotate, UsageRead, GroupsRead, UsersRead, UsersDisable, TeamsRead,
				InvitationsRead, AdminTokensManage, ApprovalsRead, ApprovalsDecide, ConfigRead}, nil},
		{Auditor, "read-only: the audit trail and its verification, usage and configuration", false,
			[]Permission{MetricsRead, AuditRead, AuditVerify, AlertsRead, SecretsList, ProvidersRead, VaultStatus,
				KeysRead, UsageRead, GroupsRead, UsersRead, TeamsRead, InvitationsRead, ConfigRead}, nil},
		{Operator, "what an operator admin token could do before users existed: everything but secret values, one-time-password enrolment, webhook keys, KEK rotation, backups and people", false,
			append([]Permission{MetricsRead, AuditRead, AuditVerify, SecretsList, SecretsWrite, ProvidersRead, ProvidersWrite, VaultStatus,
				UsageRead, GroupsRead, GroupsManage, ConfigRead}, keysAll...), nil},
		{TeamAdmin, "within their teams: every key, the members and their invitations, the team's budget and usage, within the team's policy", true,
			append([]Permission{UsageRead, TeamsRead, TeamsMembers, InvitationsRead, InvitationsManage}, keysAll...), nil},
		{Developer, "within their teams: create keys, and manage and see the usage of their own, within the team's policy", true,
			[]Permission{KeysCreate, TeamsRead}, []Permission{KeysRead, KeysUpdate, KeysRevoke, KeysSuspend, KeysRotate, UsageRead}},
		{Viewer, "read-only on their teams: keys, budget and usage", true,
			[]Permission{KeysRead, UsageRead, TeamsRead}, nil},
	}
}

// everyone are the grants every user and service account holds whatever
// its role: its own admin credentials and its own approval requests.
func everyone() []Permission { return []Permission{AdminTokensManage, ApprovalsRead} }

func without(ps []Permission, drop ...Permission) []Permission {
	return slices.DeleteFunc(slices.Clone(ps), func(p Permission) bool { return slices.Contains(drop, p) })
}

// Table is the roles keygate knows: the built-in ones and those the
// configuration defines. It is immutable once built.
type Table struct {
	roles map[string]Role
	order []string
}

var roleName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// NewTable builds the role table from the built-in roles and custom ones,
// each a role name and the grants it holds ("keys.read", or
// "keys.update:own" for the principal's own keys only). An unknown
// permission, a malformed or built-in name is an error naming it.
func NewTable(custom map[string][]string) (*Table, error) {
	t := &Table{roles: map[string]Role{}}
	for _, b := range builtins() {
		r := Role{Name: b.name, Description: b.description, Team: b.team, grants: map[Permission]Grant{}}
		for _, p := range b.full {
			r.grants[p] = Grant{Permission: p}
		}
		for _, p := range b.own {
			r.grants[p] = Grant{Permission: p, OwnOnly: true}
		}
		t.roles[r.Name] = r
		t.order = append(t.order, r.Name)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(custom)) {
		if err := t.addCustom(name, custom[name]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Table) addCustom(name string, grants []string) error {
	if _, ok := t.roles[name]; ok {
		return fmt.Errorf("roles.%s: %q is a built-in role; give the custom role another name", name, name)
	}
	if !roleName.MatchString(name) {
		return fmt.Errorf("roles.%s: a role name is 1-40 lower-case letters, digits or '-', starting with a letter", name)
	}
	if len(grants) == 0 {
		return fmt.Errorf("roles.%s: list at least one permission, such as keys.read", name)
	}
	r := Role{Name: name, Description: "custom role from the configuration", Custom: true, grants: map[Permission]Grant{}}
	for _, s := range grants {
		g, err := ParseGrant(s)
		if err != nil {
			return fmt.Errorf("roles.%s: %w", name, err)
		}
		if prev, ok := r.grants[g.Permission]; ok && !prev.OwnOnly {
			continue // a full grant covers an :own one
		}
		r.grants[g.Permission] = g
	}
	t.roles[name] = r
	t.order = append(t.order, name)
	return nil
}

// ParseGrant reads "keys.read" or "keys.update:own", refusing a permission
// keygate does not know.
func ParseGrant(s string) (Grant, error) {
	s = strings.TrimSpace(s)
	name, own := strings.CutSuffix(s, ":own")
	p := Permission(name)
	if !Known(p) {
		return Grant{}, fmt.Errorf("unknown permission %q; the permissions are: %s", s, knownList())
	}
	return Grant{Permission: p, OwnOnly: own}, nil
}

// Role returns the named role.
func (t *Table) Role(name string) (Role, bool) {
	r, ok := t.roles[name]
	return r, ok
}

// Roles returns every role: the built-in ones in docs/people.md's order, then
// the custom ones by name.
func (t *Table) Roles() []Role {
	out := make([]Role, len(t.order))
	for i, n := range t.order {
		out[i] = t.roles[n]
	}
	return out
}

// CheckRole returns an error naming the known roles when name is not one.
func (t *Table) CheckRole(name string) error {
	if _, ok := t.roles[name]; ok {
		return nil
	}
	return fmt.Errorf("unknown role %q; the roles are: %s", name, strings.Join(t.order, ", "))
}

// Everyone returns the grants every user and service account holds on its
// own resources, whatever its role.
func Everyone() []Grant {
	var out []Grant
	for _, p := range everyone() {
		out = append(out, Grant{Permission: p, OwnOnly: true})
	}
	return out
}
