package adminapi

import (
	"encoding/json"
	"time"
)

// LoginRequest signs a local user in: POST /api/v1/auth/login. A browser
// may post the same fields as a form (user, password, otp); it then gets
// the session cookie and a redirect to /.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	OTP      string `json:"otp,omitempty"` // the TOTP code, when the user has enrolled one
	// Cookie asks for the session in the keygate_session cookie instead
	// of the response body (a browser); the default is the body (the CLI).
	Cookie *bool `json:"cookie,omitempty"`
}

// TokenLoginRequest exchanges an admin token (a personal, service or
// bootstrap one) for a session: POST /api/v1/auth/token-login. The token
// may also come as Authorization: Bearer.
type TokenLoginRequest struct {
	Token string `json:"token,omitempty"`
	// Cookie: the default here is the cookie (the console's token
	// sign-in); false returns the session token in the body.
	Cookie *bool `json:"cookie,omitempty"`
}

// LoginResponse is a new session. Token is the session token, present
// only when it was not set as a cookie; it is shown once.
type LoginResponse struct {
	Token   string      `json:"token,omitempty"`
	Session SessionInfo `json:"session"`
}

// SessionInfo describes a session: GET /api/v1/auth/session.
type SessionInfo struct {
	ID     string       `json:"id"` // ses_...: safe to show
	Name   string       `json:"name"`
	UserID string       `json:"user_id,omitempty"`
	Kind   string       `json:"kind"` // user, service, or token
	Role   string       `json:"role"`
	Teams  []Membership `json:"teams"`
	// Method is how it signed in: password, oidc, webauthn or token; MFA
	// the second factor used (totp, webauthn), "" for none.
	Method string `json:"method"`
	MFA    string `json:"mfa,omitempty"`
	// MFAEnrolmentRequired: the role needs a second factor the user has
	// not enrolled; until it is, only enrolment and sign-out work.
	MFAEnrolmentRequired bool      `json:"mfa_enrolment_required,omitempty"`
	CredentialRole       string    `json:"credential_role,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
	IdleExpiresAt        time.Time `json:"idle_expires_at"` // moves on with each use
	ExpiresAt            time.Time `json:"expires_at"`      // the absolute end
}

// SignInMethods says how people can sign in here: GET /api/v1/auth/methods
// (no credential needed).
type SignInMethods struct {
	Password bool `json:"password"`
	// OIDC is set when single sign-on is configured.
	OIDC     *OIDCMethod `json:"oidc,omitempty"`
	WebAuthn bool        `json:"webauthn"`
	Token    bool        `json:"token"` // an admin token can be exchanged for a session
}

// OIDCMethod describes the single-sign-on provider.
type OIDCMethod struct {
	Name     string `json:"name"`      // what to call it on a button
	StartURL string `json:"start_url"` // where the browser goes to sign in
}

// PasswordRequest sets a password: PUT /api/v1/users/{name}/password
// (an admin, for another user) or PUT /api/v1/me/password (oneself, with
// the current one).
type PasswordRequest struct {
	Password string `json:"password"`
	Current  string `json:"current,omitempty"`
}

// TOTPRequest carries a TOTP code: enrolling again while one is
// confirmed, and confirming an enrolment.
type TOTPRequest struct {
	OTP string `json:"otp,omitempty"`
}

// UserTOTPEnrollment is a new TOTP secret for the caller, shown once: add
// it to an authenticator app, then confirm with a code.
type UserTOTPEnrollment struct {
	Secret string `json:"secret"`
	URL    string `json:"url"` // otpauth:// URL, for a QR code
}

// SSOExchangeRequest trades the one-time code a single-sign-on callback
// handed the CLI's loopback listener for the session: POST
// /api/v1/auth/oidc/exchange. Verifier is the secret the CLI made when it
// started (its SHA-256 went in the start URL as cli_challenge), so the
// code alone, were it seen, is worth nothing.
type SSOExchangeRequest struct {
	Code     string `json:"code"`
	Verifier string `json:"verifier"`
}

// PasskeyBeginRequest starts registering a passkey: POST
// /api/v1/me/passkeys/begin. Name is what the list calls it.
type PasskeyBeginRequest struct {
	Name string `json:"name,omitempty"`
}

// PasskeyFinishRequest finishes registering a passkey: POST
// /api/v1/me/passkeys/finish. Credential is the browser's
// PublicKeyCredential (navigator.credentials.create) as JSON.
type PasskeyFinishRequest struct {
	Credential json.RawMessage `json:"credential"`
}

// PasskeyLoginBeginRequest starts a passkey sign-in: POST
// /api/v1/auth/passkey/begin.
type PasskeyLoginBeginRequest struct {
	User string `json:"user"`
}

// PasskeyLoginFinishRequest finishes a passkey sign-in: POST
// /api/v1/auth/passkey/finish. Credential is the browser's
// PublicKeyCredential (navigator.credentials.get) as JSON. Password is
// needed when the authenticator did not verify the user (no PIN or
// biometric): the passkey is then the second factor to the password.
type PasskeyLoginFinishRequest struct {
	Credential json.RawMessage `json:"credential"`
	Password   string          `json:"password,omitempty"`
	Cookie     *bool           `json:"cookie,omitempty"`
}

// Passkey is one of a user's passkeys as listed: GET /api/v1/me/passkeys.
type Passkey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// DeviceSignIn is a single sign-on begun for a machine without a browser
// (the device authorization grant): POST /api/v1/auth/oidc/device. The
// person opens VerificationURI anywhere and enters UserCode (or opens
// VerificationURIComplete); the CLI meanwhile asks for the outcome with
// Handle, which only it holds, at POST /api/v1/auth/oidc/device/token.
type DeviceSignIn struct {
	Handle                  string    `json:"handle"`
	UserCode                string    `json:"user_code"`
	VerificationURI         string    `json:"verification_uri"`
	VerificationURIComplete string    `json:"verification_uri_complete,omitempty"`
	ExpiresAt               time.Time `json:"expires_at"`
	IntervalSeconds         int       `json:"interval_seconds"`
}

// DeviceTokenRequest asks for the outcome of a device sign-in: POST
// /api/v1/auth/oidc/device/token. keygate waits up to about 20 seconds
// for the person to answer, then says 202 with DevicePending (ask
// again) or 200 with a LoginResponse.
type DeviceTokenRequest struct {
	Handle string `json:"handle"`
}

// DevicePending is the answer while a device sign-in waits for its person.
type DevicePending struct {
	Status string `json:"status"` // "authorization_pending"
}
