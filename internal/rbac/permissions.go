// Package rbac decides what a person or a program may do on keygate's admin
// plane: the permission names, the built-in roles (named sets of
// permissions), custom roles from the configuration, and the one decision
// every admin route asks for, Allowed(principal, permission, resource).
//
// A principal is whoever makes an admin request, however it authenticated:
// an admin token, a personal access token, a service account's token, and
// later a single-sign-on or password session. Each becomes the same
// Principal: a user (or none), a role, the teams it belongs to with a role
// in each, and the role its credential is capped at.
//
// The package is pure: it reads no store and no clock, so the decision can
// be tested exhaustively (see the admin package's permission matrix).
package rbac

import (
	"slices"
	"strings"
)

// Permission names one thing a principal may do, such as keys.create. A
// role grants a permission in full, or only on resources the principal owns
// (written "keys.update:own" in a role's list).
type Permission string

// The permissions every admin route is decided with. docs/people.md documents
// them in one table with the roles that hold them.
const (
	MetricsRead Permission = "metrics.read" // GET /metrics

	AuditRead   Permission = "audit.read"   // search and page the audit trail
	AuditVerify Permission = "audit.verify" // verify the trail's hash chain and checkpoints

	AlertsRead    Permission = "alerts.read"    // read alerts (reserved for the alert routes)
	AlertsResolve Permission = "alerts.resolve" // resolve alerts (reserved for the alert routes)

	WebhookKeys Permission = "webhooks.keys" // read or rotate a webhook signing key (returned in clear)

	SecretsList      Permission = "secrets.list"       // list secrets and their versions, never values
	SecretsWrite     Permission = "secrets.write"      // store, roll back, delete and restore secrets
	SecretsReadValue Permission = "secrets.read_value" // read a secret's value in clear

	ProvidersRead  Permission = "providers.read"  // list and show providers, routing and services
	ProvidersWrite Permission = "providers.write" // add, remove and rotate providers' keys; change routing and services

	VaultStatus    Permission = "vault.status"     // the vault's KEK and rotation state
	VaultRotateKEK Permission = "vault.rotate_kek" // start a key-encryption key rotation
	BackupExport   Permission = "backup.export"    // export an encrypted backup of everything

	KeysRead      Permission = "keys.read"       // list and show keygate keys
	KeysCreate    Permission = "keys.create"     // create keygate keys
	KeysUpdate    Permission = "keys.update"     // change a key's scopes, limits, group or rotation
	KeysRevoke    Permission = "keys.revoke"     // revoke keys
	KeysSuspend   Permission = "keys.suspend"    // suspend and resume keys
	KeysRotate    Permission = "keys.rotate"     // rotate keys now (the successor's secret is shown once)
	KeysEnrollOTP Permission = "keys.enroll_otp" // give a key a one-time-password secret (shown once)

	UsageRead Permission = "usage.read" // read keys' and teams' usage

	GroupsRead   Permission = "groups.read"   // list and show key groups
	GroupsManage Permission = "groups.manage" // create, change and delete key groups

	UsersRead    Permission = "users.read"    // list and show users and service accounts
	UsersManage  Permission = "users.manage"  // add users and service accounts, change roles, enable, issue service tokens
	UsersDisable Permission = "users.disable" // disable a user: every credential of theirs stops

	TeamsRead    Permission = "teams.read"    // show a team, its policy, budget, members and usage
	TeamsManage  Permission = "teams.manage"  // create teams, set their policy and shared limits
	TeamsMembers Permission = "teams.members" // add and remove a team's members

	InvitationsRead   Permission = "invitations.read"   // list a team's pending invitations, never their links
	InvitationsManage Permission = "invitations.manage" // invite someone to a team with a role, and revoke an invitation

	AdminTokensManage Permission = "admin_tokens.manage" // list and revoke admin credentials; create one's own

	ApprovalsRead   Permission = "approvals.read"   // list and show approval requests
	ApprovalsDecide Permission = "approvals.decide" // approve or deny another person's request

	ConfigRead Permission = "config.read" // read the role table and approval policy
)

// info describes a permission for people.
type info struct {
	p    Permission
	what string
}

// catalogue lists every permission in the order docs/people.md shows them.
var catalogue = []info{
	{MetricsRead, "read Prometheus metrics"},
	{AuditRead, "search and page the audit trail"},
	{AuditVerify, "verify the audit trail's hash chain and signed checkpoints"},
	{AlertsRead, "read alerts"},
	{AlertsResolve, "resolve alerts"},
	{WebhookKeys, "read or rotate a webhook signing key (shown in clear)"},
	{SecretsList, "list secrets and their versions, never values"},
	{SecretsWrite, "store, roll back, delete and restore secrets"},
	{SecretsReadValue, "read a secret's value in clear"},
	{ProvidersRead, "list and show providers, model routing and passthrough services"},
	{ProvidersWrite, "add, remove and rotate providers and their keys; change model routing and passthrough services"},
	{VaultStatus, "read the vault's key-encryption key and rotation state"},
	{VaultRotateKEK, "start a key-encryption key rotation"},
	{BackupExport, "export an encrypted backup of everything"},
	{KeysRead, "list and show keygate keys"},
	{KeysCreate, "create keygate keys"},
	{KeysUpdate, "change a key's scopes, limits, group or rotation"},
	{KeysRevoke, "revoke keys"},
	{KeysSuspend, "suspend and resume keys"},
	{KeysRotate, "rotate keys now"},
	{KeysEnrollOTP, "give a key a one-time-password secret"},
	{UsageRead, "read keys' and teams' usage"},
	{GroupsRead, "list and show key groups"},
	{GroupsManage, "create, change and delete key groups"},
	{UsersRead, "list and show users and service accounts"},
	{UsersManage, "add users and service accounts, change roles, enable users, issue service tokens"},
	{UsersDisable, "disable a user, stopping every credential of theirs"},
	{TeamsRead, "show a team, its policy, budget, members and usage"},
	{TeamsManage, "create teams, set their policy and shared limits"},
	{TeamsMembers, "add and remove a team's members"},
	{InvitationsRead, "list a team's pending invitations (never their links)"},
	{InvitationsManage, "invite someone to a team with a role no higher than one's own, and revoke invitations"},
	{AdminTokensManage, "list and revoke admin credentials; create one's own"},
	{ApprovalsRead, "list and show approval requests"},
	{ApprovalsDecide, "approve or deny another person's request"},
	{ConfigRead, "read the role table and the approval policy"},
}

// All returns every permission, in docs/people.md's order.
func All() []Permission {
	out := make([]Permission, len(catalogue))
	for i, c := range catalogue {
		out[i] = c.p
	}
	return out
}

// Describe says what a permission allows, or "" for an unknown one.
func Describe(p Permission) string {
	for _, c := range catalogue {
		if c.p == p {
			return c.what
		}
	}
	return ""
}

// Known reports whether p is one of keygate's permissions.
func Known(p Permission) bool { return Describe(p) != "" }

// knownList names every permission, for error messages.
func knownList() string {
	names := make([]string, len(catalogue))
	for i, c := range catalogue {
		names[i] = string(c.p)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
