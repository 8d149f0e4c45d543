package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSignInSettings: signin: loads from the file, an empty mfa_roles
// list is kept apart from an unset one, and each mistake is refused with
// the field that holds it.
func TestSignInSettings(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) (Config, error) {
		p := filepath.Join(dir, "keygate.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, dir, func(string) string { return "" })
		if err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	c, err := load(`signin:
  session_idle: 10m
  session_max: 8h
  mfa_roles: []
  oidc:
    issuer: https://idp.example.test
    client_id: keygate
    redirect_url: https://keygate.example.test:8788/api/v1/auth/oidc/callback
    create_users: true
    groups:
      platform-admins: {role: admin}
      team-payments: {team: payments, team_role: developer}
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.SignIn.MFARoles == nil || len(c.SignIn.MFARoles) != 0 || c.SignIn.OIDC.Groups["team-payments"].Team != "payments" || !c.SignIn.OIDC.CreateUsers {
		t.Fatalf("signin read as %+v", c.SignIn)
	}
	if c, err := load("signin:\n  webauthn:\n    rp_id: keygate.test\n    origins: [\"https://keygate.test:8788\", \"https://console.keygate.test\"]\n"); err != nil || len(c.SignIn.WebAuthn.Origins) != 2 {
		t.Fatalf("passkeys on a relying party id and a subdomain origin: %+v, %v", c.SignIn.WebAuthn, err)
	}
	if c, _ := load("listen: 127.0.0.1:8787\n"); c.SignIn.MFARoles != nil {
		t.Fatal("an unset mfa_roles reads as a list: the default (roles that change keys) would be lost")
	}
	for body, field := range map[string]string{
		"signin:\n  session_idle: 13h\n":                      "signin.session_idle",
		"signin:\n  mfa_roles: [wizard]\n":                    "signin.mfa_roles",
		"signin:\n  invitation_ttl: 721h\n":                   "signin.invitation_ttl",
		"signin:\n  invitation_ttl: -1h\n":                    "signin.invitation_ttl",
		"signin:\n  admin_url: keygate.example\n":             "signin.admin_url",
		"signin:\n  admin_url: https://keygate.example/x?y\n": "signin.admin_url",
		"signin:\n  oidc:\n    issuer: http://idp.example.test\n    client_id: k\n    redirect_url: https://k.example/cb\n":                                        "signin.oidc.issuer",
		"signin:\n  oidc:\n    issuer: https://idp.example.test\n    redirect_url: https://k.example/cb\n":                                                         "signin.oidc.client_id",
		"signin:\n  oidc:\n    issuer: https://idp.example.test\n    client_id: k\n":                                                                               "signin.oidc.redirect_url",
		"signin:\n  oidc:\n    issuer: https://idp.example.test\n    client_id: k\n    redirect_url: https://k.example/cb\n    groups:\n      g: {role: wizard}\n": "signin.oidc.groups.g.role",
		"signin:\n  oidc:\n    issuer: https://idp.example.test\n    client_id: k\n    redirect_url: https://k.example/cb\n    groups:\n      g: {team: t}\n":      "signin.oidc.groups.g",
		"signin:\n  webauthn:\n    rp_id: keygate.test\n":                                                                                                          "signin.webauthn.origins",
		"signin:\n  webauthn:\n    origins: [\"https://keygate.test\"]\n":                                                                                          "signin.webauthn.rp_id",
		"signin:\n  webauthn:\n    rp_id: keygate.test\n    origins: [\"keygate.test:8788\"]\n":                                                                    "signin.webauthn.origins",
		"signin:\n  webauthn:\n    rp_id: keygate.test\n    origins: [\"https://keygate.test/login\"]\n":                                                           "signin.webauthn.origins",
		"signin:\n  webauthn:\n    rp_id: keygate.test\n    origins: [\"https://evil-keygate.test:8788\"]\n":                                                       "signin.webauthn.origins",
	} {
		if _, err := load(body); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", body, err, field)
		}
	}
}
