// Package mcpoauth is keygate as an OAuth client of the MCP servers it
// fronts, as the MCP authorization specification asks of a client:
//
//	Discover  the server's protected resource metadata (RFC 9728: the
//	          resource_metadata of its 401's WWW-Authenticate, else its
//	          well-known URLs), then its authorization server's metadata
//	          (RFC 8414, or OpenID Connect discovery)
//	Register  keygate as a client (dynamic registration, RFC 7591), unless
//	          the operator configured a client id
//	AuthURL   the authorization-code request: PKCE S256 and the resource
//	          parameter (RFC 8707) naming the MCP server
//	Exchange  the code for the user's Grant, with the PKCE verifier and
//	          the resource again
//
// A Grant is what keygate keeps, sealed in the vault, for one user at one
// server: the tokens and what refreshing them needs. The flows use
// golang.org/x/oauth2 and the MCP SDK's oauthex; every request goes
// through the *http.Client the caller gives, which is keygate's egress
// guard, so a discovered URL reaches no address a registered one could
// not.
package mcpoauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
)

// Metadata is what discovery learnt of an MCP server's authorization.
type Metadata struct {
	// Resource is the server's resource identifier, sent as RFC 8707's
	// resource parameter.
	Resource string `json:"resource"`
	Issuer   string `json:"issuer"`
	AuthURL  string `json:"authorization_endpoint"`
	TokenURL string `json:"token_endpoint"`
	// RegistrationURL is the dynamic registration endpoint, "" for none.
	RegistrationURL string `json:"registration_endpoint,omitempty"`
	// Scopes are the scopes to ask for: the 401's, else the resource's.
	Scopes []string `json:"scopes,omitempty"`
	// AuthMethods are the token endpoint's client authentication methods.
	AuthMethods []string `json:"auth_methods,omitempty"`
}

// Client is keygate's registration at an authorization server.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret,omitempty"`
	// AuthStyle is how the client authenticates at the token endpoint.
	AuthStyle oauth2.AuthStyle `json:"auth_style"`
	// RedirectURL is the callback the registration named.
	RedirectURL string `json:"redirect_url"`
	// Issuer is the authorization server it is registered at.
	Issuer string `json:"issuer"`
}

// Grant is one user's authorization at one MCP server: its tokens and what
// refreshing them needs. keygate keeps it sealed in the vault.
type Grant struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`

	ClientID     string           `json:"client_id"`
	ClientSecret string           `json:"client_secret,omitempty"`
	AuthStyle    oauth2.AuthStyle `json:"auth_style"`
	TokenURL     string           `json:"token_url"`
	Resource     string           `json:"resource"`
	// Server is the ID of the MCP server registration the grant is for:
	// a server removed and added again under the same name needs a new
	// authorization.
	Server  string    `json:"server"`
	Created time.Time `json:"created"`
}

// Token returns the grant's tokens for golang.org/x/oauth2.
func (g *Grant) Token() *oauth2.Token {
	return &oauth2.Token{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: g.TokenType, Expiry: g.Expiry}
}

// Config returns the oauth2 configuration that refreshes the grant.
func (g *Grant) Config() *oauth2.Config {
	return &oauth2.Config{ClientID: g.ClientID, ClientSecret: g.ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: g.TokenURL, AuthStyle: g.AuthStyle}}
}

// SetToken takes a new token from the server, keeping the refresh token
// when the server did not rotate it.
func (g *Grant) SetToken(t *oauth2.Token) {
	g.AccessToken, g.TokenType, g.Expiry = t.AccessToken, t.TokenType, t.Expiry
	if t.RefreshToken != "" {
		g.RefreshToken = t.RefreshToken
	}
}

// maxProbeBody bounds what keygate reads of the server's 401.
const maxProbeBody = 64 << 10

// Discover finds how to authorize at the MCP server at serverURL: it asks
// the server (an unauthenticated initialize, whose 401 names the resource
// metadata), reads the protected resource metadata, and then the first
// authorization server's metadata. Every request goes through hc.
func Discover(ctx context.Context, hc *http.Client, serverURL string) (*Metadata, error) {
	var challenges []oauthex.Challenge
	body := strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"keygate","version":"discovery"}}}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, body)
	if err != nil {
		return nil, fmt.Errorf("the server URL is not usable: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching the MCP server: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		challenges, _ = oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	}
	prm, err := resourceMetadata(ctx, hc, challenges, serverURL)
	if err != nil {
		return nil, err
	}
	issuer := prm.AuthorizationServers[0]
	asm, err := auth.GetAuthServerMetadata(ctx, issuer, hc)
	if err != nil {
		return nil, fmt.Errorf("reading the authorization server's metadata at %s: %w", issuer, err)
	}
	if asm == nil {
		return nil, fmt.Errorf("the authorization server %s publishes no metadata (RFC 8414 or OpenID Connect discovery); keygate needs it to find its endpoints", issuer)
	}
	if !slices.Contains(asm.CodeChallengeMethodsSupported, "S256") {
		return nil, fmt.Errorf("the authorization server %s does not support PKCE with S256, which MCP authorization requires", issuer)
	}
	if asm.AuthorizationEndpoint == "" || asm.TokenEndpoint == "" {
		return nil, fmt.Errorf("the authorization server %s names no authorization or token endpoint", issuer)
	}
	md := &Metadata{Resource: prm.Resource, Issuer: asm.Issuer, AuthURL: asm.AuthorizationEndpoint, TokenURL: asm.TokenEndpoint,
		RegistrationURL: asm.RegistrationEndpoint, Scopes: scopesOf(challenges), AuthMethods: asm.TokenEndpointAuthMethodsSupported}
	if len(md.Scopes) == 0 {
		md.Scopes = prm.ScopesSupported
	}
	return md, nil
}

// resourceMetadata reads the protected resource metadata: first where the
// 401 said, then at the well-known URLs for the server's path and root.
func resourceMetadata(ctx context.Context, hc *http.Client, cs []oauthex.Challenge, serverURL string) (*oauthex.ProtectedResourceMetadata, error) {
	type try struct{ url, resource string }
	var tries []try
	for _, c := range cs {
		if u := c.Params["resource_metadata"]; u != "" {
			tries = append(tries, try{u, serverURL})
			break
		}
	}
	su, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("the server URL is not usable: %w", err)
	}
	mu := *su
	mu.RawQuery = ""
	mu.Path = "/.well-known/oauth-protected-resource/" + strings.TrimLeft(su.Path, "/")
	tries = append(tries, try{mu.String(), serverURL})
	mu.Path = "/.well-known/oauth-protected-resource"
	root := *su
	root.Path, root.RawQuery = "", ""
	tries = append(tries, try{mu.String(), root.String()})
	var errs []error
	for _, t := range tries {
		prm, err := oauthex.GetProtectedResourceMetadata(ctx, t.url, t.resource, hc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(prm.AuthorizationServers) == 0 {
			return nil, fmt.Errorf("the MCP server's protected resource metadata (%s) names no authorization server", t.url)
		}
		return prm, nil
	}
	return nil, fmt.Errorf("the MCP server publishes no usable protected resource metadata (RFC 9728); is it OAuth-protected? %w", errors.Join(errs...))
}

func scopesOf(cs []oauthex.Challenge) []string {
	for _, c := range cs {
		if c.Scheme == "bearer" && c.Params["scope"] != "" {
			return strings.Fields(c.Params["scope"])
		}
	}
	return nil
}

// Register registers keygate at the authorization server as a confidential
// web client whose one redirect URI is redirectURL (RFC 7591).
func Register(ctx context.Context, hc *http.Client, md *Metadata, redirectURL, version string) (Client, error) {
	if md.RegistrationURL == "" {
		return Client{}, fmt.Errorf("the authorization server %s offers no dynamic client registration; register keygate there with redirect URI %s and give the server --client-id and --client-secret-secret", md.Issuer, redirectURL)
	}
	method := "client_secret_basic"
	if len(md.AuthMethods) > 0 && !slices.Contains(md.AuthMethods, method) && slices.Contains(md.AuthMethods, "client_secret_post") {
		method = "client_secret_post"
	}
	resp, err := oauthex.RegisterClient(ctx, md.RegistrationURL, &oauthex.ClientRegistrationMetadata{
		RedirectURIs: []string{redirectURL}, TokenEndpointAuthMethod: method,
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		ClientName: "keygate", SoftwareID: "keygate", SoftwareVersion: version, ApplicationType: "web",
		Scope: strings.Join(md.Scopes, " "),
	}, hc)
	if err != nil {
		var re *oauthex.ClientRegistrationError
		if errors.As(err, &re) {
			return Client{}, fmt.Errorf("the authorization server refused keygate's registration: %s", re.ErrorCode)
		}
		// The SDK's other errors may quote the server's answer, which can
		// hold a client secret: say only what failed.
		return Client{}, fmt.Errorf("registering keygate at the authorization server %s failed; check that it is reachable and accepts dynamic registration", md.Issuer)
	}
	return Client{ID: resp.ClientID, Secret: resp.ClientSecret, AuthStyle: AuthStyle(resp.TokenEndpointAuthMethod),
		RedirectURL: redirectURL, Issuer: md.Issuer}, nil
}

// AuthStyle maps a token_endpoint_auth_method to oauth2's style.
func AuthStyle(method string) oauth2.AuthStyle {
	switch method {
	case "client_secret_post", "none":
		return oauth2.AuthStyleInParams
	case "client_secret_basic":
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleAutoDetect
}

// config is the oauth2 configuration of an authorization-code flow.
func config(md *Metadata, c Client) *oauth2.Config {
	return &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, RedirectURL: c.RedirectURL, Scopes: md.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: md.AuthURL, TokenURL: md.TokenURL, AuthStyle: c.AuthStyle}}
}

// AuthURL is where the user's browser goes to authorize keygate: the
// authorization request with state, the PKCE S256 challenge of verifier
// (from oauth2.GenerateVerifier) and the server as resource.
func AuthURL(md *Metadata, c Client, state, verifier string) string {
	return config(md, c).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", md.Resource))
}

// Exchange trades the authorization code for the user's grant.
func Exchange(ctx context.Context, hc *http.Client, md *Metadata, c Client, code, verifier string) (*Grant, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	t, err := config(md, c).Exchange(ctx, code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", md.Resource))
	if err != nil {
		return nil, TokenError("exchanging the authorization code", err)
	}
	if t.AccessToken == "" {
		return nil, errors.New("the authorization server answered without an access token")
	}
	g := &Grant{ClientID: c.ID, ClientSecret: c.Secret, AuthStyle: c.AuthStyle, TokenURL: md.TokenURL, Resource: md.Resource}
	g.SetToken(t)
	return g, nil
}

// TokenError describes a failed token request without the server's
// answer, which may echo what keygate sent.
func TokenError(what string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = "HTTP " + fmt.Sprint(re.Response.StatusCode)
		}
		return &RefusedError{What: what, Code: code}
	}
	return fmt.Errorf("%s: the authorization server could not be reached: %w", what, err)
}

// RefusedError is an authorization server's refusal of a token request.
type RefusedError struct {
	What string
	Code string // the OAuth error code, such as invalid_grant
}

func (e *RefusedError) Error() string {
	return e.What + ": the authorization server refused it (" + e.Code + ")"
}

// Marshal encodes g for the vault.
func (g *Grant) Marshal() ([]byte, error) { return json.Marshal(g) }

// UnmarshalGrant decodes a grant the vault kept.
func UnmarshalGrant(b []byte) (*Grant, error) {
	var g Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("the stored MCP authorization is not readable: %w", err)
	}
	return &g, nil
}

// ErrNoGrant means the user has not authorized keygate at the server, or
// revoked it.
var ErrNoGrant = errors.New("no authorization for this user at this MCP server")
