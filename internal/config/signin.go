package config

import (
	"net/url"
	"strings"
	"time"
)

// SignIn configures how people sign in to the admin plane: sessions,
// second factors, single sign-on and passkeys (docs/signin.md).
type SignIn struct {
	// SessionIdle ends a session unused this long (default 30m);
	// SessionMax ends it this long after sign-in whatever its use
	// (default 12h).
	SessionIdle time.Duration `yaml:"session_idle"`
	SessionMax  time.Duration `yaml:"session_max"`
	// MFARoles are the roles whose users need a second factor with a
	// password. Unset means every role that can change keys, providers
	// or secrets; an empty list means none.
	MFARoles []string `yaml:"mfa_roles"`
	// InvitationTTL is how long a new team invitation works unless its
	// request says (default 168h, 7 days; at most 720h, 30 days).
	InvitationTTL time.Duration `yaml:"invitation_ttl"`
	// AdminURL is the admin listener's URL as people's browsers reach it
	// (behind a proxy, say), such as https://keygate.example.com: MCP
	// clients that sign people in through keygate send them to its
	// /oauth/authorize. Unset means the address keygate listens on.
	AdminURL string `yaml:"admin_url"`
	// OIDC signs people in with an OpenID provider.
	OIDC OIDC `yaml:"oidc"`
	// WebAuthn lets users register passkeys and sign in with them.
	WebAuthn WebAuthn `yaml:"webauthn"`
}

// OIDC is the OpenID provider people sign in with (Okta, Entra ID,
// Google, Keycloak, Dex, Authentik...). Unset Issuer turns it off.
type OIDC struct {
	// Name is what the sign-in button says (default "single sign-on").
	Name string `yaml:"name"`
	// Issuer is the provider's issuer URL; its discovery document is
	// read from Issuer/.well-known/openid-configuration.
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecret are keygate's client at the provider
	// (the secret may be empty for a public client: PKCE is always used).
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// RedirectURL is this admin plane's callback as registered at the
	// provider: https://keygate.example:8788/api/v1/auth/oidc/callback.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes are asked for besides openid (default profile, email, groups).
	Scopes []string `yaml:"scopes"`
	// UsernameClaim names the user (default preferred_username, then
	// email); GroupsClaim lists the groups (default groups).
	UsernameClaim string `yaml:"username_claim"`
	GroupsClaim   string `yaml:"groups_claim"`
	// Groups maps a provider group to a role and/or a team membership:
	// {"platform-admins": {"role": "admin"}, "team-payments": {"team":
	// "payments", "team_role": "developer"}}.
	Groups map[string]GroupMapping `yaml:"groups"`
	// DefaultRole is the role of a user no group gives one (default
	// none: such a user cannot sign in).
	DefaultRole string `yaml:"default_role"`
	// CreateUsers creates a user on first sign-in (just in time) when
	// the mapping gives a role; otherwise only existing users sign in.
	CreateUsers bool `yaml:"create_users"`
	// SyncRoles sets an existing user's role and team memberships from
	// the mapping at each sign-in (default: only at creation).
	SyncRoles bool `yaml:"sync_roles"`
	// RequireProviderMFA refuses a user of an MFA role (mfa_roles) unless
	// the provider's ID token says a second factor was used (its amr
	// claim, RFC 8176: mfa, otp, hwk...). Off, keygate trusts the
	// provider's own sign-in policy, and records the factor when it is
	// reported.
	RequireProviderMFA bool `yaml:"require_provider_mfa"`
}

// GroupMapping is what one provider group gives a user.
type GroupMapping struct {
	Role     string `yaml:"role"`
	Team     string `yaml:"team"`
	TeamRole string `yaml:"team_role"`
}

// WebAuthn configures passkeys. They are on with sign-in; unset RPID
// and Origins take the admin URL each request reached (its host name and
// scheme://host).
type WebAuthn struct {
	// Disabled turns passkeys off.
	Disabled bool `yaml:"disabled"`
	// RPID is the relying party id: the admin plane's host name, such as
	// keygate.example (passkeys are bound to it).
	RPID string `yaml:"rp_id"`
	// RPName is shown by the authenticator (default keygate).
	RPName string `yaml:"rp_name"`
	// Origins are the admin plane's origins as the browser sees them:
	// https://keygate.example:8788.
	Origins []string `yaml:"origins"`
}

// validateSignIn checks signin:, naming the field at fault.
func (c Config) validateSignIn(bad func(field, format string, args ...any)) {
	s := c.SignIn
	if s.SessionIdle < 0 || s.SessionMax < 0 {
		bad("signin.session_idle", "durations must not be negative")
	}
	idle, maxAge := s.SessionIdle, s.SessionMax
	if idle == 0 {
		idle = 30 * time.Minute
	}
	if maxAge == 0 {
		maxAge = 12 * time.Hour
	}
	if idle > maxAge {
		bad("signin.session_idle", "%s is longer than signin.session_max (%s)", idle, maxAge)
	}
	if s.InvitationTTL < 0 || s.InvitationTTL > 30*24*time.Hour {
		bad("signin.invitation_ttl", "must be between 0 (the default, 168h) and 720h (30 days)")
	}
	if s.AdminURL != "" {
		u, err := url.Parse(s.AdminURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
			bad("signin.admin_url", "must be an http(s) URL with a host and no path, query or fragment, such as https://keygate.example.com")
		}
	}
	roles, err := c.RoleTable()
	if err != nil {
		return // reported by validatePeople
	}
	known := func(r string) bool { _, ok := roles.Role(r); return ok }
	for _, r := range s.MFARoles {
		if !known(r) {
			bad("signin.mfa_roles", "unknown role %q (keygate roles lists them)", r)
		}
	}
	o := s.OIDC
	if o.Issuer != "" {
		if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname()))) {
			bad("signin.oidc.issuer", "must be an https:// URL (http:// only on a loopback address)")
		}
		if o.ClientID == "" {
			bad("signin.oidc.client_id", "is required with signin.oidc.issuer")
		}
		if u, err := url.Parse(o.RedirectURL); err != nil || o.RedirectURL == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("signin.oidc.redirect_url", "must be this admin plane's callback URL, such as https://keygate.example:8788/api/v1/auth/oidc/callback")
		}
		for g, m := range o.Groups {
			if m.Role == "" && m.Team == "" {
				bad("signin.oidc.groups."+g, "gives nothing: set role, or team and team_role")
			}
			if m.Role != "" && !known(m.Role) {
				bad("signin.oidc.groups."+g+".role", "unknown role %q", m.Role)
			}
			if (m.Team == "") != (m.TeamRole == "") {
				bad("signin.oidc.groups."+g, "team and team_role go together")
			}
			if m.TeamRole != "" && !known(m.TeamRole) {
				bad("signin.oidc.groups."+g+".team_role", "unknown role %q", m.TeamRole)
			}
		}
		if o.DefaultRole != "" && !known(o.DefaultRole) {
			bad("signin.oidc.default_role", "unknown role %q", o.DefaultRole)
		}
	}
	w := s.WebAuthn
	if w.RPID != "" && len(w.Origins) == 0 {
		bad("signin.webauthn.origins", "is required with signin.webauthn.rp_id: the admin plane's origin, such as https://%s:8788", w.RPID)
	}
	if w.RPID == "" && len(w.Origins) > 0 {
		bad("signin.webauthn.rp_id", "is required with signin.webauthn.origins")
	}
	for _, o := range w.Origins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("signin.webauthn.origins", "%q is not an origin: write scheme://host[:port], such as https://keygate.example:8788", o)
		} else if h := u.Hostname(); w.RPID != "" && h != w.RPID && !strings.HasSuffix(h, "."+w.RPID) {
			bad("signin.webauthn.origins", "%q is not on signin.webauthn.rp_id %q or a subdomain of it", o, w.RPID)
		}
	}
}
