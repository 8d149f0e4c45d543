package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/geoip"
	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// newRisk builds the zero-trust rules from the configuration, opening the
// GeoIP database when one is configured. close releases it.
func newRisk(cfg config.Config) (*gateway.RiskOptions, func(), error) {
	parse := func(field, v string) (policy.Action, error) {
		a, err := policy.ParseAction(v)
		if err != nil {
			return 0, fmt.Errorf("config: %s: %w", field, err)
		}
		return a, nil
	}
	var rules policy.RiskRules
	var err error
	if rules.CountryAction, err = parse("risk.country_action", cfg.Risk.CountryAction); err != nil {
		return nil, nil, err
	}
	if rules.ImpossibleTravel, err = parse("risk.impossible_travel", cfg.Risk.ImpossibleTravel); err != nil {
		return nil, nil, err
	}
	if rules.UnusualHour, err = parse("risk.unusual_hour", cfg.Risk.UnusualHour); err != nil {
		return nil, nil, err
	}
	if rules.NewNetwork, err = parse("risk.new_network", cfg.Risk.NewNetwork); err != nil {
		return nil, nil, err
	}
	rules.AllowCountries, rules.DenyCountries = cfg.Risk.AllowCountries, cfg.Risk.DenyCountries
	rules.Location = cfg.Limits.Location()
	if err := rules.Validate(); err != nil {
		return nil, nil, fmt.Errorf("config: risk: %w", err)
	}
	ro := &gateway.RiskOptions{Rules: rules}
	closeDB := func() {}
	if cfg.Risk.GeoIPDatabase != "" {
		db, err := geoip.Open(cfg.Risk.GeoIPDatabase)
		if err != nil {
			return nil, nil, fmt.Errorf("config: risk.geoip_database: %w", err)
		}
		ro.GeoIP = db
		closeDB = func() { _ = db.Close() }
	}
	return ro, closeDB, nil
}

// totpRecord is the vault record of a key's one-time-password secret.
func totpRecord(keyID string) string { return "totp/" + keyID }

// totpOpts are the parameters authenticator apps use by default.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpVerifier checks a key's one-time password against the secret enrolled
// in the vault, accepting each time step once per node (replay protection).
func totpVerifier(v *vault.Vault) func(ctx context.Context, keyID, code string, now time.Time) error {
	var mu sync.Mutex
	last := map[string]int64{}
	return func(ctx context.Context, keyID, code string, now time.Time) error {
		sec, _, err := v.Get(ctx, totpRecord(keyID))
		if errors.Is(err, store.ErrNotFound) {
			return errors.New("no one-time password is enrolled for this key (keygate key totp KEY)")
		}
		if err != nil {
			return err
		}
		step := now.Unix() / 30
		for _, s := range []int64{step, step - 1, step + 1} {
			want, err := totp.GenerateCodeCustom(sec.Reveal(), time.Unix(s*30, 0), totpOpts)
			if err != nil {
				return err
			}
			if subtle.ConstantTimeCompare([]byte(code), []byte(want)) != 1 {
				continue
			}
			mu.Lock()
			defer mu.Unlock()
			if s <= last[keyID] {
				return errors.New("this one-time password was already used")
			}
			last[keyID] = s
			return nil
		}
		return errors.New("wrong one-time password")
	}
}
