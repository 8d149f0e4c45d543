// Package sso signs people in with an OpenID Connect provider: the
// authorization code flow with PKCE (S256), the provider found by
// discovery, the ID token verified (signature with the provider's
// published keys, issuer, audience, expiry, and the nonce of the sign-in
// it answers), and the token's groups mapped to a keygate role and team
// memberships by configuration. For machines without a browser it also runs
// the device authorization grant (RFC 8628) on the CLI's behalf: keygate,
// not the CLI, holds the device code and receives the ID token.
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
	"time"

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
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config
}

// Identity is who the provider says signed in.
type Identity struct {
	Issuer, Subject string
	Username        string
	Email           string
	Groups          []string
	// AMR is how the provider says the person authenticated (RFC 8176:
	// pwd, otp, hwk, mfa...), when it says.
	AMR []string
}

// SecondFactor reports whether the provider says the person used more
// than a password: an RFC 8176 method that is a second factor, or "mfa".
func (id Identity) SecondFactor() bool {
	for _, m := range id.AMR {
		switch m {
		case "mfa", "otp", "hwk", "swk", "sms", "tel", "sc", "fpt", "face", "iris", "retina", "vbm":
			return true
		}
	}
	return false
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
		provider: p,
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
	return p.identity(ctx, tok, &nonce)
}

// identity verifies the ID token in tok: signature, issuer, audience,
// expiry and, when nonce is not nil, that it answers that sign-in.
func (p *Provider) identity(ctx context.Context, tok *oauth2.Token, nonce *string) (Identity, error) {
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: the provider sent no ID token", ErrVerify)
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %s", ErrVerify, reason(err))
	}
	if nonce != nil && (subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(*nonce)) != 1 || *nonce == "") {
		return Identity{}, fmt.Errorf("%w: the ID token answers another sign-in (nonce mismatch)", ErrVerify)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: unreadable claims", ErrVerify)
	}
	if claims[p.cfg.UsernameClaim] == nil && claims["email"] == nil || claims[p.cfg.GroupsClaim] == nil {
		// Providers may keep profile claims out of an ID token issued
		// with an access token (OpenID Connect Core 5.4) and answer them
		// at the userinfo endpoint instead, for the same subject.
		p.userinfo(ctx, tok, idt.Subject, claims)
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
	if amr, ok := claims["amr"].([]any); ok {
		for _, v := range amr {
			if m, ok := v.(string); ok {
				id.AMR = append(id.AMR, m)
			}
		}
	}
	return id, nil
}

// DeviceAuth is a device sign-in the provider has begun: the person opens
// VerificationURI (or VerificationURIComplete) anywhere and enters
// UserCode; DeviceCode, which only keygate holds, fetches the answer.
type DeviceAuth struct {
	DeviceCode              string
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	Expiry                  time.Time
	Interval                time.Duration
}

// ErrDevicePending says the person has not answered a device sign-in yet.
var ErrDevicePending = errors.New("the device sign-in is not answered yet")

// DeviceSupported reports whether the provider offers the device
// authorization grant (a device_authorization_endpoint in its discovery).
func (p *Provider) DeviceSupported() bool { return p.oauth.Endpoint.DeviceAuthURL != "" }

// DeviceStart asks the provider for a device sign-in (RFC 8628 section
// 3.1), with keygate's client and scopes.
func (p *Provider) DeviceStart(ctx context.Context) (DeviceAuth, error) {
	if p.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, p.cfg.HTTPClient)
	}
	da, err := p.oauth.DeviceAuth(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return DeviceAuth{}, fmt.Errorf("%w: the provider refused a device sign-in (%s); is the device grant enabled for keygate's client?", ErrVerify, re.ErrorCode)
		}
		return DeviceAuth{}, fmt.Errorf("sso: start a device sign-in at the provider: %w", err)
	}
	if da.Expiry.IsZero() {
		da.Expiry = time.Now().Add(10 * time.Minute) // expires_in is required; be safe without it
	}
	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second // RFC 8628 section 3.2
	}
	return DeviceAuth{DeviceCode: da.DeviceCode, UserCode: da.UserCode, VerificationURI: da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete, Expiry: da.Expiry, Interval: interval}, nil
}

// DeviceWait polls the provider for the answer to a device sign-in, at
// the interval it asked for, until ctx ends (ErrDevicePending: ask again)
// or it answers: an identity from its verified ID token, or a refusal
// wrapping ErrVerify (denied, expired).
func (p *Provider) DeviceWait(ctx context.Context, d DeviceAuth) (Identity, error) {
	if p.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, p.cfg.HTTPClient)
	}
	tok, err := p.oauth.DeviceAccessToken(ctx, &oauth2.DeviceAuthResponse{DeviceCode: d.DeviceCode,
		Expiry: d.Expiry, Interval: int64(d.Interval / time.Second)})
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.ErrorCode == "access_denied":
			return Identity{}, fmt.Errorf("%w: the sign-in was denied at the provider", ErrVerify)
		case errors.As(err, &re) && re.ErrorCode == "expired_token":
			return Identity{}, fmt.Errorf("%w: the device code expired before the sign-in was approved", ErrVerify)
		case errors.As(err, &re):
			return Identity{}, fmt.Errorf("%w: the provider refused the device sign-in (%s)", ErrVerify, re.ErrorCode)
		case ctx.Err() != nil && time.Now().Before(d.Expiry):
			return Identity{}, ErrDevicePending
		case ctx.Err() != nil:
			return Identity{}, fmt.Errorf("%w: the device code expired before the sign-in was approved", ErrVerify)
		}
		return Identity{}, fmt.Errorf("sso: poll the provider for the device sign-in: %w", err)
	}
	// A device sign-in has no nonce: the device code, which never left
	// keygate, ties the token to it.
	return p.identity(ctx, tok, nil)
}

// userinfo adds to claims what the provider's userinfo endpoint says of
// subject (never replacing a claim the signed ID token carries). A
// provider without the endpoint, or an answer for another subject, adds
// nothing.
func (p *Provider) userinfo(ctx context.Context, tok *oauth2.Token, subject string, claims map[string]any) {
	if tok.AccessToken == "" {
		return
	}
	ui, err := p.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != subject {
		return
	}
	var more map[string]any
	if ui.Claims(&more) != nil {
		return
	}
	for k, v := range more {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
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
