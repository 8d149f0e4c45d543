package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/sources"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// sourceParts follows provider keys and secrets kept in a cloud secret
// manager or Vault (references), and serves cloud-identity upstreams.
// Both reach the clouds with this node's own identity, read from the
// environment as each cloud's SDK reads it.
type sourceParts struct {
	refresher *sources.Refresher
	guard     sources.Guard
	cloud     *cloudauth.Cache
	cloudOpts cloudauth.Options
}

// newSourceParts builds the reference refresher and the cloud identity
// cache. Nothing is read from a cloud until a reference or upstream needs it.
func newSourceParts(cfg config.Config, getenv func(string) string, st *store.Store, v *vault.Vault, log *slog.Logger) (*sourceParts, error) {
	hc, err := caClient(cfg.Sources.CAFile)
	if err != nil {
		return nil, fmt.Errorf("config: sources.ca_file: %w", err)
	}
	scfg, err := sources.ConfigFromEnv(getenv, hc, os.ReadFile)
	if err != nil {
		return nil, fmt.Errorf("sources: keygate's own cloud identity: %w", err)
	}
	if e := cfg.Sources.AWSEndpoint; e != "" {
		scfg.AWS.Endpoint = e
	}
	if e := cfg.Sources.GCPEndpoint; e != "" {
		scfg.GCP.Endpoint = e
	}
	if tmpl := cfg.Sources.AzureVaultURL; tmpl != "" {
		scfg.Azure.VaultURL = func(name string) string { return strings.ReplaceAll(tmpl, "{vault}", name) }
		scfg.Azure.AnyResourceDomain = !strings.Contains(tmpl, ".vault.azure.net")
	}
	return &sourceParts{
		refresher: &sources.Refresher{Store: st, Vault: v, Reader: sources.New(scfg), Log: log},
		guard:     sources.Guard{Opener: cachedReads{v}, Refs: st},
		cloud:     &cloudauth.Cache{},
		cloudOpts: cloudauth.Options{HTTP: hc},
	}, nil
}

// raiseTo sends the refresher's alerts to the detection engine, which
// logs them, puts them on the audit trail and delivers them like any
// other alert. They carry no value.
func (s *sourceParts) raiseTo(e *detect.Engine) {
	s.refresher.Alert = func(a sources.Alert) {
		al := detect.Alert{Rule: a.Kind, Severity: detect.SeverityMedium,
			Numbers: map[string]float64{"grace_until_unix": float64(a.GraceUntil.Unix())}}
		switch a.Kind {
		case sources.AlertUnreadable:
			al.Summary = fmt.Sprintf("%s: its source %s cannot be read (%s); keygate serves the value it last read until %s, then refuses it",
				a.Target, a.Ref, a.Reason, a.GraceUntil.UTC().Format(time.RFC3339))
		case sources.AlertGraceExpired:
			al.Severity = detect.SeverityHigh
			al.Summary = fmt.Sprintf("%s: its source %s has not been readable since %s and its grace ended at %s (%s); it is refused until the source answers",
				a.Target, a.Ref, a.Since.UTC().Format(time.RFC3339), a.GraceUntil.UTC().Format(time.RFC3339), a.Reason)
		default:
			al.Severity, al.Recovered, al.Numbers = detect.SeverityInfo, true, nil
			al.Summary = fmt.Sprintf("%s: its source %s can be read again", a.Target, a.Ref)
		}
		e.Raise(al, a.Target)
	}
}

// loadOptions are the provider table's: cloud-identity upstreams are
// served, their credentials and tokens kept across reloads.
func (s *sourceParts) loadOptions() []route.LoadOption {
	return []route.LoadOption{route.WithCloudAuth(s.cloud, s.cloudOpts)}
}

// refreshDue reads the references due on this node's schedule.
func (s *sourceParts) refreshDue(ctx context.Context) {
	if _, err := s.refresher.RefreshDue(ctx); err != nil && ctx.Err() == nil && s.refresher.Log != nil {
		s.refresher.Log.Warn("sources: could not look for references due to be read; will retry", "err", err)
	}
}

// guardedVault is the vault as readers of served values see it: a
// referenced record opens only while keygate can vouch for it (see
// sources.Guard).
type guardedVault struct {
	*vault.Vault
	guard sources.Guard
}

// Get opens record id through the guard.
func (g guardedVault) Get(ctx context.Context, id string) (secret.String, int, error) {
	v, ver, err := g.guard.Get(ctx, id)
	var un *route.UnavailableError
	if errors.As(err, &un) {
		return secret.String{}, 0, fmt.Errorf("its value cannot be served now: %w", err)
	}
	return v, ver, err
}

// caClient returns the client sources and cloud token endpoints are reached
// with: caFile's authorities trusted besides the system's, or nil (each
// SDK's default) without one.
func caClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New(caFile + " holds no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}
