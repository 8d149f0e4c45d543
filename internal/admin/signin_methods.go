package admin

import "net/http"

// SSO signs people in with an OpenID provider (internal/sso is one).
type SSO interface {
	// Name is what to call the provider on a sign-in button.
	Name() string
	// Start begins a sign-in and returns where to send the browser.
	// returnTo is a loopback URL of the CLI's listener to send the
	// result to, or "" for the browser's own session.
	Start(r *http.Request, returnTo string) (string, error)
}

// Passkeys registers and checks WebAuthn passkeys.
type Passkeys interface{}
