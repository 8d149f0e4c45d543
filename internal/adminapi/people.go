package adminapi

import "time"

// People on the admin plane: users, service accounts, their admin
// credentials, teams, roles and approvals.
//
//	GET    /api/v1/users                         -> UserList
//	POST   /api/v1/users                         CreateUserRequest -> 201 CreatedUser
//	GET    /api/v1/users/{name}                  -> User
//	PUT    /api/v1/users/{name}/role             SetRoleRequest -> User
//	POST   /api/v1/users/{name}/disable          -> User
//	POST   /api/v1/users/{name}/enable           IssueTokenRequest -> CreatedUser
//	POST   /api/v1/me/tokens                     CreateTokenRequest -> 201 CreatedToken
//	GET    /api/v1/service-accounts              -> UserList
//	POST   /api/v1/service-accounts              CreateUserRequest -> 201 CreatedUser
//	POST   /api/v1/service-accounts/{name}/tokens CreateTokenRequest -> 201 CreatedToken
//	GET    /api/v1/admin-tokens                  -> AdminTokenList
//	POST   /api/v1/admin-tokens/{id}/revoke      -> AdminToken
//	GET    /api/v1/teams                         -> TeamList
//	POST   /api/v1/teams                         CreateTeamRequest -> 201 Team
//	GET    /api/v1/teams/{name}                  -> Team
//	PATCH  /api/v1/teams/{name}                  UpdateTeamRequest -> Team
//	GET    /api/v1/teams/{name}/usage            -> TeamUsage
//	GET    /api/v1/teams/{name}/members          -> TeamMemberList
//	PUT    /api/v1/teams/{name}/members/{user}   PutMemberRequest -> TeamMember
//	DELETE /api/v1/teams/{name}/members/{user}   -> 204
//	(team invitations: see invitations.go)
//	GET    /api/v1/roles                         -> RoleList
//	GET    /api/v1/approvals                     -> ApprovalList
//	GET    /api/v1/approvals/{id}                -> Approval
//	POST   /api/v1/approvals/{id}/approve        -> Approval
//	POST   /api/v1/approvals/{id}/deny           -> Approval
//
// A request that needs a second person's approval is answered 202 with an
// ApprovalPending; once approved, the requester sends the same request
// again with the header ApprovalHeader naming the approval, and it runs once.

// ApprovalHeader carries the id of an approved request when it is sent again.
const ApprovalHeader = "Keygate-Approval"

// WhoAmI describes who made the request and with what credential.
type WhoAmI struct {
	TokenID string `json:"token_id"` // the credential's id (adm_...)
	Name    string `json:"name"`     // the user's or service account's name; for a credential of no user, its name
	Role    string `json:"role"`     // the user's role, or the credential's for one of no user
	// Kind is user, service or token (a credential of no user: bootstrap,
	// made offline, or from before users existed).
	Kind   string       `json:"kind"`
	UserID string       `json:"user_id,omitempty"`
	Teams  []Membership `json:"teams"`
	// CredentialRole is the role the credential is capped at, "" for none.
	CredentialRole string     `json:"credential_role,omitempty"`
	Via            string     `json:"via"` // how it signed in, such as "personal access token"
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	// Permissions lists what the caller holds everywhere, and what only
	// on its own resources or in its teams.
	Permissions []string `json:"permissions"`
}

// Membership is a role in a team.
type Membership struct {
	Team string `json:"team"`
	Role string `json:"role"`
}

// User is a person or service account as the admin API shows it.
type User struct {
	ID         string       `json:"id"`
	Name       string       `json:"name"`
	Kind       string       `json:"kind"` // user or service
	Role       string       `json:"role"`
	Teams      []Membership `json:"teams"`
	Status     string       `json:"status"` // active or disabled
	CreatedAt  time.Time    `json:"created_at"`
	DisabledAt *time.Time   `json:"disabled_at,omitempty"`
	Tokens     []AdminToken `json:"tokens,omitempty"` // on GET /users/{name}: its admin credentials
}

// UserList answers GET /users and GET /service-accounts.
type UserList struct {
	Users []User `json:"users"`
}

// CreateUserRequest adds a user (POST /users) or a service account (POST
// /service-accounts). With Team, the user is made a member of it with Role,
// which must then be a role usable in a team. A first admin credential is
// issued unless NoToken is set (for a user who will sign in instead).
type CreateUserRequest struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Team    string `json:"team,omitempty"`
	TTL     string `json:"ttl,omitempty"` // the first credential's life, such as 90d; default 90d
	NoToken bool   `json:"no_token,omitempty"`
}

// CreatedUser answers a new user or service account, with its first admin
// credential, shown only this once.
type CreatedUser struct {
	User   User        `json:"user"`
	Token  *AdminToken `json:"token,omitempty"`
	Secret string      `json:"secret,omitempty"`
}

// SetRoleRequest changes a user's role: PUT /users/{name}/role.
type SetRoleRequest struct {
	Role string `json:"role"`
}

// IssueTokenRequest asks for a new credential when a user is enabled again.
type IssueTokenRequest struct {
	TTL     string `json:"ttl,omitempty"`
	NoToken bool   `json:"no_token,omitempty"`
}

// CreateTokenRequest issues an admin credential: POST /me/tokens for the
// caller's own personal access token, or POST
// /service-accounts/{name}/tokens. Role caps it below its user's role
// ("" for no cap); it can never do more than its user.
type CreateTokenRequest struct {
	Name string `json:"name,omitempty"`
	TTL  string `json:"ttl,omitempty"` // such as 90d; default 90d, at most 365d
	Role string `json:"role,omitempty"`
}

// CreatedToken answers a new admin credential: the only time its secret is shown.
type CreatedToken struct {
	Token  AdminToken `json:"token"`
	Secret string     `json:"secret"`
}

// AdminToken is an admin credential as the admin API shows it: never its secret.
type AdminToken struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Kind         string     `json:"kind"`  // bootstrap, admin, personal or service
	Owner        string     `json:"owner"` // the user's or service account's name; "" for a credential of no user
	OwnerID      string     `json:"owner_id,omitempty"`
	Role         string     `json:"role"` // the role it acts with: its cap, or its owner's role
	Prefix       string     `json:"prefix,omitempty"`
	Status       string     `json:"status"` // active, expired or revoked
	CreatedAt    time.Time  `json:"created_at"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"` // absent: never (a credential from before expiry existed)
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"`
	LastUsedFrom string     `json:"last_used_from,omitempty"` // the client address of that use
}

// AdminTokenList answers GET /admin-tokens: every credential the caller may
// manage (all, or only its own).
type AdminTokenList struct {
	Tokens []AdminToken `json:"tokens"`
}

// TeamPolicy is what the keys of a team may be given by anyone without a
// global grant (below admin). Empty fields allow anything, but for
// AllowServices, where empty allows none.
type TeamPolicy struct {
	AllowModels    []string `json:"allow_models,omitempty"`    // model patterns a key may allow; a key's patterns must lie within them
	AllowProviders []string `json:"allow_providers,omitempty"` // providers a key may allow
	// AllowServices lists the passthrough services a key may be given;
	// none when empty: a service's credential is often worth more than
	// a model key, so only an admin grants one a team has not been given.
	AllowServices []string `json:"allow_services,omitempty"`
	MaxKeyTTL     string   `json:"max_key_ttl,omitempty"` // the longest life of a key, such as 30d
	MaxLimits     Limits   `json:"max_limits"`            // the highest limits and budgets of each key
	// LeakAction is the team's keys' leak action (block, redact or
	// alert): given to each new key, and the only one a caller without a
	// global grant may give; "" follows the global leaks: policy.
	LeakAction string `json:"leak_action,omitempty"`
}

// Team is a team as the admin API shows it.
type Team struct {
	Name      string     `json:"name"`
	Group     string     `json:"group"`  // the key group holding the shared limits
	Policy    TeamPolicy `json:"policy"` // what its keys may be given
	Limits    Limits     `json:"limits"` // the budget and limits every key of the team shares
	Keys      int        `json:"keys"`
	Members   int        `json:"members"`
	CreatedAt time.Time  `json:"created_at"`
}

// TeamList answers GET /teams: the teams the caller may see.
type TeamList struct {
	Teams []Team `json:"teams"`
}

// CreateTeamRequest creates a team. Its shared limits live in a new key
// group, or, with FromGroup, in that existing group, whose keys join the team.
type CreateTeamRequest struct {
	Name      string      `json:"name"`
	FromGroup string      `json:"from_group,omitempty"`
	Policy    *TeamPolicy `json:"policy,omitempty"`
	Limits    *Limits     `json:"limits,omitempty"`
}

// UpdateTeamRequest changes a team's policy or shared limits. A policy
// that some existing key of the team breaks is refused, naming the keys.
type UpdateTeamRequest struct {
	Policy *TeamPolicy `json:"policy,omitempty"`
	Limits *Limits     `json:"limits,omitempty"`
}

// TeamMember is one member of a team.
type TeamMember struct {
	Team    string    `json:"team"`
	User    string    `json:"user"`
	Kind    string    `json:"kind"`
	Role    string    `json:"role"`
	AddedAt time.Time `json:"added_at"`
}

// TeamMemberList answers GET /teams/{name}/members.
type TeamMemberList struct {
	Members []TeamMember `json:"members"`
}

// PutMemberRequest adds a member or changes its role.
type PutMemberRequest struct {
	Role string `json:"role"`
}

// TeamUsage answers GET /teams/{name}/usage?days=N: what every key of the
// team used, per day and model.
type TeamUsage struct {
	Team string     `json:"team"`
	Rows []UsageRow `json:"rows"`
}

// Role is one role of the role table.
type Role struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Team        bool     `json:"team"`   // applies only within the teams of its holder
	Custom      bool     `json:"custom"` // defined in the configuration
	Permissions []string `json:"permissions"`
}

// RoleList answers GET /roles.
type RoleList struct {
	Roles []Role `json:"roles"`
	// Everyone lists what every user and service account may do with its own resources.
	Everyone []string `json:"everyone"`
	// ApprovalsRequiredFor lists the permissions that need a second person's approval.
	ApprovalsRequiredFor []string `json:"approvals_required_for"`
}

// Approval is a request waiting for, or decided by, a second person.
type Approval struct {
	ID         string     `json:"id"`
	Permission string     `json:"permission"`
	Method     string     `json:"method"`
	Path       string     `json:"path"` // secret names appear as their references
	Requester  string     `json:"requester"`
	Status     string     `json:"status"` // pending, approved, denied, used or expired
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	DecidedBy  string     `json:"decided_by,omitempty"`
	DecidedAt  *time.Time `json:"decided_at,omitempty"`
	UsedAt     *time.Time `json:"used_at,omitempty"`
}

// ApprovalList answers GET /approvals.
type ApprovalList struct {
	Approvals []Approval `json:"approvals"`
}

// ApprovalPending answers, with 202, a request that waits for approval.
type ApprovalPending struct {
	Approval Approval `json:"approval"`
	Message  string   `json:"message"`
}
