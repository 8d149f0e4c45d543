package adminapi

import "time"

// Invitations to join a team. Whoever may manage a team's invitations
// invites an e-mail address with a role no higher than their own; keygate
// answers with a one-time link, shown once. The invitee opens it in the
// console, sets a password (or signs in with single sign-on), and is a
// member of the team with that role.
//
//	POST /api/v1/teams/{name}/invitations  CreateInvitationRequest -> 201 CreatedInvitation
//	GET  /api/v1/teams/{name}/invitations  -> InvitationList (pending; ?all=true for every one)
//	GET  /api/v1/invitations               -> InvitationList of every team the caller may see
//	POST /api/v1/invitations/{id}/revoke   -> Invitation
//	POST /api/v1/auth/invitations/lookup   InvitationToken -> InvitationInfo
//	POST /api/v1/auth/invitations/accept   AcceptInvitationRequest -> LoginResponse
//	POST /api/v1/auth/invitations/sso      form field token -> 302 to the provider
//
// The token travels only in request bodies and in a link's fragment
// (/invite#kg_invite_...), which browsers never send to a server: no
// access log, proxy or Referer header sees it.

// Invitation statuses.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationRevoked  = "revoked"
	InvitationExpired  = "expired"
)

// CreateInvitationRequest invites Email to a team with Role: POST
// /teams/{name}/invitations.
type CreateInvitationRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
	// TTL is how long the link works, such as 3d; empty is the server's
	// default (signin.invitation_ttl, 7 days unless configured).
	TTL string `json:"ttl,omitempty"`
}

// Invitation is an invitation as the admin API shows it: never its token.
type Invitation struct {
	ID         string     `json:"id"`
	Email      string     `json:"email"`
	Team       string     `json:"team"`
	Role       string     `json:"role"`
	Status     string     `json:"status"` // pending, accepted, revoked or expired
	InvitedBy  string     `json:"invited_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	// User is the user who accepted it.
	User string `json:"user,omitempty"`
}

// CreatedInvitation answers a new invitation. Token and Link are shown
// this once; keygate keeps only a hash of the token.
type CreatedInvitation struct {
	Invitation Invitation `json:"invitation"`
	Token      string     `json:"token"`
	// Link opens the invitation in the console: the admin URL this
	// request reached, /invite, and the token in the fragment.
	Link string `json:"link"`
}

// InvitationList answers GET /invitations and /teams/{name}/invitations.
type InvitationList struct {
	Invitations []Invitation `json:"invitations"`
}

// InvitationToken carries an invitation's token: POST
// /auth/invitations/lookup.
type InvitationToken struct {
	Token string `json:"token"`
}

// InvitationInfo tells the holder of a pending invitation what it is for.
type InvitationInfo struct {
	Email     string    `json:"email"`
	Team      string    `json:"team"`
	Role      string    `json:"role"`
	InvitedBy string    `json:"invited_by"`
	ExpiresAt time.Time `json:"expires_at"`
	// SSO names the single-sign-on provider the invitee may accept with
	// instead of a password; empty when none is configured.
	SSO string `json:"sso,omitempty"`
}

// AcceptInvitationRequest accepts an invitation with a new password: POST
// /auth/invitations/accept. The user made is named after the invited
// e-mail address. A browser may post the same fields as a form (token,
// password); it then gets the session cookie and a redirect to /.
type AcceptInvitationRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
	// Cookie asks for the session in the keygate_session cookie instead
	// of the response body.
	Cookie *bool `json:"cookie,omitempty"`
}
