package server

import (
	"context"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/sso"
	"github.com/keygate/keygate/internal/store"
)

// newSignIn builds how people sign in to the admin plane: sessions in the
// shared store, passwords and TOTP (checked with the verifier keys step up
// with, under the subject user/<id>), single sign-on and passkeys when
// configured.
func newSignIn(ctx context.Context, cfg config.Config, roles *rbac.Table, st *store.Store, hasher *apikey.Hasher, codes *otp.Verifier) (*admin.SignIn, error) {
	sessions, err := session.New(st, hasher, session.Options{Idle: cfg.SignIn.SessionIdle, Absolute: cfg.SignIn.SessionMax})
	if err != nil {
		return nil, fmt.Errorf("config: signin: %w", err)
	}
	si := &admin.SignIn{Sessions: sessions, Store: st, TLS: cfg.TLS.Enabled(), MFARoles: cfg.SignIn.MFARoles, OTP: codes}
	w := cfg.SignIn.WebAuthn
	si.WebAuthn = admin.WebAuthnConfig{Disabled: w.Disabled, RPID: w.RPID, RPName: w.RPName, Origins: w.Origins}
	if o := cfg.SignIn.OIDC; o.Issuer != "" {
		p, err := sso.New(ctx, sso.Config{Name: o.Name, Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			RedirectURL: o.RedirectURL, Scopes: o.Scopes, UsernameClaim: o.UsernameClaim, GroupsClaim: o.GroupsClaim})
		if err != nil {
			return nil, fmt.Errorf("config: signin.oidc: %w", err)
		}
		m := sso.Mapping{Groups: map[string]sso.GroupMapping{}, DefaultRole: o.DefaultRole}
		for g, gm := range o.Groups {
			m.Groups[g] = sso.GroupMapping{Role: gm.Role, Team: gm.Team, TeamRole: gm.TeamRole}
		}
		for _, r := range roles.Roles() {
			m.RolePrecedence = append(m.RolePrecedence, r.Name)
		}
		si.SSO, si.SSOPolicy = p, admin.SSOPolicy{Mapping: m, CreateUsers: o.CreateUsers, SyncRoles: o.SyncRoles, RequireProviderMFA: o.RequireProviderMFA}
	}
	return si, nil
}

// sessionsKeptFor is how long an ended session stays in the store.
const sessionsKeptFor = 24 * time.Hour
