package admin

import (
	"context"

	"github.com/keygate/keygate/internal/sso"
)

// SSO signs people in with an OpenID provider; *sso.Provider is one.
type SSO interface {
	// Name is what to call the provider on a sign-in button.
	Name() string
	// AuthURL is where the browser signs in, for this state, nonce and
	// PKCE verifier.
	AuthURL(state, nonce, verifier string) string
	// Exchange trades the provider's code for a verified identity;
	// refusals wrap sso.ErrVerify.
	Exchange(ctx context.Context, code, verifier, nonce string) (sso.Identity, error)
}

// SSOPolicy says what a single-sign-on identity becomes in keygate.
type SSOPolicy struct {
	// Mapping turns the provider's groups into a role and teams.
	Mapping sso.Mapping
	// CreateUsers creates a user at first sign-in (just in time).
	CreateUsers bool
	// SyncRoles sets a linked user's role and adds the mapped team
	// memberships at every sign-in.
	SyncRoles bool
	// RequireProviderMFA refuses a user of an MFA role whose ID token's
	// amr claim names no second factor; otherwise the provider's own
	// policy decides.
	RequireProviderMFA bool
}
