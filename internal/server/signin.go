package server

import (
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/store"
)

// newSignIn builds how people sign in to the admin plane: sessions in the
// shared store, passwords and TOTP (checked with the verifier keys step up
// with, under the subject user/<id>), single sign-on and passkeys when
// configured.
func newSignIn(cfg config.Config, st *store.Store, hasher *apikey.Hasher, codes *otp.Verifier) (*admin.SignIn, error) {
	sessions, err := session.New(st, hasher, session.Options{Idle: cfg.SignIn.SessionIdle, Absolute: cfg.SignIn.SessionMax})
	if err != nil {
		return nil, fmt.Errorf("config: signin: %w", err)
	}
	si := &admin.SignIn{Sessions: sessions, Store: st, TLS: cfg.TLS.Enabled(), MFARoles: cfg.SignIn.MFARoles, OTP: codes}
	return si, nil
}

// sessionsKeptFor is how long an ended session stays in the store.
const sessionsKeptFor = 24 * time.Hour
