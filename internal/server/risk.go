package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// totpRecord is the vault record of a key's one-time-password secret.
func totpRecord(keyID string) string { return "totp/" + keyID }

// keySubject is the one-time-password subject of a key.
func keySubject(keyID string) string { return "key/" + keyID }

// newStepUp builds the one-time-password verifier keys step up with: codes
// are used once and wrong ones counted in the shared store, so both hold
// across every node. A lockout raises an otp-brute-force alert and goes on
// the audit trail, and so does every refused code.
func newStepUp(cfg config.Config, st *store.Store, v *vault.Vault, det *detection, trail *auditTrail, log *slog.Logger) (
	func(ctx context.Context, keyID, code, client string, now time.Time) error, *otp.Verifier, error) {
	ver, err := otp.New(st, otp.Options{
		Limits: otp.Limits{MaxFailures: cfg.OTP.MaxFailures, MaxClientFailures: cfg.OTP.MaxClientFailures,
			Window: cfg.OTP.Window, Lockout: cfg.OTP.Lockout},
		Log: log,
		OnLockout: func(l otp.Lockout) {
			var keyID string
			if id, ok := strings.CutPrefix(l.Subject, "key/"); ok {
				keyID = id
			}
			who := "subject"
			if l.ByClient {
				who = "client"
			}
			_ = trail.w.Record(audit.Event{Type: "otp.locked_out", Actor: "otp", KeyID: keyID, Client: l.Client, Decision: "deny",
				Reasons: []string{fmt.Sprintf("%d wrong one-time passwords within %v (limit %d)", l.Failures, l.Window, l.Max)},
				Fields:  map[string]string{"scope": who, "until": l.Until.UTC().Format(time.RFC3339)}})
			det.engine.OTPLockout(detect.OTPLockout{At: l.At, Until: l.Until, Subject: l.Subject, KeyID: keyID, Client: l.Client,
				ByClient: l.ByClient, Failures: l.Failures, Max: l.Max, Window: l.Window})
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("config: otp: %w", err)
	}
	verify := func(ctx context.Context, keyID, code, client string, now time.Time) error {
		err := ver.Verify(ctx, otp.Attempt{Subject: keySubject(keyID), Client: client, Code: code, Now: now,
			Secret: func(ctx context.Context) (secret.String, error) {
				sec, _, err := v.Get(ctx, totpRecord(keyID))
				if errors.Is(err, store.ErrNotFound) {
					return secret.String{}, fmt.Errorf("%w for this key (keygate key totp KEY)", otp.ErrNotEnrolled)
				}
				return sec, err
			}})
		if err != nil {
			_ = trail.w.Record(audit.Event{Type: "otp.refused", KeyID: keyID, Client: client, Resource: "POST /oauth/token",
				Decision: "deny", Reasons: []string{err.Error()}})
		}
		return err
	}
	return verify, ver, nil
}
