// Package sso signs people in with an OpenID Connect provider: the
// authorization code flow with PKCE (S256), the provider found by
// discovery, the ID token verified (signature with the provider's
// published keys, issuer, audience, expiry, and the nonce of the sign-in
// it answers), and the token's groups mapped to a keygate role and team
// memberships by configuration.
package sso

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config describes the provider and keygate's client at it.
type Config struct {
	Name         string // on the sign-in button
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string   // keygate's callback, as registered at the provider
	Scopes       []string // besides openid; nil means profile, email, groups
	// UsernameClaim names the user (default preferred_username, then
	// email); GroupsClaim lists the groups (default groups).
	UsernameClaim, GroupsClaim string
	// HTTPClient reaches the provider; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Provider is a discovered OpenID provider.
type Provider struct {
	cfg      Config
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
}

// Identity is who the provider says signed in.
type Identity struct {
	Issuer, Subject string
	Username        string
	Email           string
	Groups          []string
}

// ErrVerify wraps every reason an answer from the provider is refused;
// its message is safe to show.
var ErrVerify = errors.New("the single sign-on answer was refused")

// New discovers the provider at cfg.Issuer.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("sso: discover the OpenID provider at %s: %w", cfg.Issuer, err)
	}
	scopes := cfg.Scopes
	if scopes == nil {
		scopes = []string{"profile", "email", "groups"}
	}
	if cfg.Name == "" {
		cfg.Name = "single sign-on"
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	return &Provider{
		cfg:      cfg,
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, scopes...)},
	}, nil
}

// Name is what to call the provider on a button.
func (p *Provider) Name() string { return p.cfg.Name }

// AuthURL is where to send the browser to sign in: state and nonce tie the
// answer to this sign-in, verifier is the PKCE secret (only its S256
// challenge goes in the URL).
func (p *Provider) AuthURL(state, nonce, verifier string) string {
	return p.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
}

// Exchange trades the provider's code for tokens (with the PKCE verifier)
// and verifies the ID token: signature, issuer, audience, expiry, and that
// its nonce is this sign-in's. Refusals wrap ErrVerify.
func (p *Provider) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	if p.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, p.cfg.HTTPClient)
	}
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Identity{}, fmt.Errorf("%w: the provider did not accept the sign-in code (%s)", ErrVerify, re.ErrorCode)
		}
		return Identity{}, fmt.Errorf("sso: exchange the code at the provider: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: the provider sent no ID token", ErrVerify)
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %s", ErrVerify, reason(err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 || nonce == "" {
		return Identity{}, fmt.Errorf("%w: the ID token answers another sign-in (nonce mismatch)", ErrVerify)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: unreadable claims", ErrVerify)
	}
	id := Identity{Issuer: idt.Issuer, Subject: idt.Subject}
	id.Email, _ = claims["email"].(string)
	id.Username, _ = claims[p.cfg.UsernameClaim].(string)
	if id.Username == "" {
		id.Username = id.Email
	}
	switch g := claims[p.cfg.GroupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok {
				id.Groups = append(id.Groups, s)
			}
		}
	case string:
		id.Groups = []string{g}
	}
	return id, nil
}

// reason says why go-oidc refused a token, without echoing it.
func reason(err error) string {
	var exp *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return "the ID token has expired"
	case strings.Contains(msg, "audience"):
		return "the ID token is for another client (audience)"
	case strings.Contains(msg, "issuer"):
		return "the ID token is from another issuer"
	case strings.Contains(msg, "signature"):
		return "the ID token's signature does not verify with the provider's keys"
	}
	return "the ID token does not verify"
}

// S256 is the PKCE-style challenge of a verifier: base64url(SHA-256).
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// GroupMapping is what one provider group gives a user.
type GroupMapping struct {
	Role, Team, TeamRole string
}

// Mapping turns a provider's groups into a keygate role and teams.
type Mapping struct {
	Groups      map[string]GroupMapping
	DefaultRole string
	// RolePrecedence orders roles strongest first, so a user in two
	// groups gets the stronger role.
	RolePrecedence []string
}

// Membership is one team role a mapping gives.
type Membership struct{ Team, Role string }

// Map returns the role and team memberships groups give; ok is false when
// no group gives a role and there is no default one.
func (m Mapping) Map(groups []string) (role string, teams []Membership, ok bool) {
	rank := func(r string) int {
		if i := slices.Index(m.RolePrecedence, r); i >= 0 {
			return i
		}
		return len(m.RolePrecedence)
	}
	seen := map[string]bool{}
	for _, g := range slices.Sorted(slices.Values(groups)) {
		gm, found := m.Groups[g]
		if !found {
			continue
		}
		if gm.Role != "" && (role == "" || rank(gm.Role) < rank(role)) {
			role = gm.Role
		}
		if gm.Team != "" && !seen[gm.Team] {
			seen[gm.Team] = true
			teams = append(teams, Membership{Team: gm.Team, Role: gm.TeamRole})
		}
	}
	if role == "" {
		role = m.DefaultRole
	}
	if role == "" && len(teams) > 0 {
		// A team membership alone makes a user whose global role is the
		// team role's; team roles apply only within the team.
		role = teams[0].Role
	}
	return role, teams, role != ""
}
