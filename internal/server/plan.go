package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/buildinfo"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/geoip"
	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/pricing"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/web"
	"github.com/keygate/keygate/internal/workload"
)

// plan is the configuration checked and parsed into the values the parts
// are built from. Build makes it before anything else: a configuration it
// refuses creates nothing, neither the data directory nor the master key
// nor the database, and binds no port. It reads files the configuration
// names (TLS certificate and key, client CAs, the GeoIP database) but
// writes none.
type plan struct {
	cfg      config.Config
	services map[string]*route.Service
	prices   *pricing.Table
	redis    *redis.Options // nil: rate limits, quotas and budgets are kept in this process
	risk     policy.RiskRules
	geoip    *geoip.DB     // nil without risk.geoip_database; released by close
	detect   detect.Config // the detectors' settings; Build adds the actions' callback
	// auditSyslog and alertsSyslog are the parsed syslog destinations; nil when unset.
	auditSyslog, alertsSyslog *url.URL
	// syslogs opens the syslog writers the audit trail and alerts share;
	// closed by close.
	syslogs *syslogWriters
	// cert is the certificate tls.cert and tls.key name; nil for a
	// self-signed certificate (made once the data directory exists) or
	// plain HTTP.
	cert *tls.Certificate
	// clientCAs verifies gateway clients' certificates (tls.client_ca); nil: none asked for.
	clientCAs *x509.CertPool
	// workloads are the trust policies of workloads.trust, checked; nil: none.
	workloads *workload.Options
}

// checkConfig validates cfg completely: config.Validate, then every check
// that needs another package's rules (routing, services, prices, Redis,
// risk, alerts, TLS files). It returns every problem at once, each naming
// its field.
func checkConfig(cfg config.Config) (*plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &plan{cfg: cfg}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	check(route.ValidateRouting(cfg.Routing))
	var err error
	p.services, err = route.ParseServices(cfg.Services)
	check(err)
	overrides := make(map[string]pricing.Price, len(cfg.Prices))
	for name, pr := range cfg.Prices {
		overrides[name] = pricing.USD(pr.Input, pr.Output)
	}
	if p.prices, err = pricing.NewTable(overrides); err != nil {
		check(fmt.Errorf("config: prices: %w", err))
	}
	if cfg.Limits.Redis != "" {
		if p.redis, err = redis.ParseURL(cfg.Limits.Redis); err != nil {
			// The URL may hold a password: it is not repeated.
			check(errors.New("config: limits.redis is not a valid redis:// URL (redis://[user:password@]host:port/db)"))
		}
	}
	p.risk, err = riskRules(cfg)
	check(err)
	p.detect = detectConfig(cfg)
	if err := p.detect.Validate(); err != nil {
		check(fmt.Errorf("config: alerts: %w", err))
	}
	// config.Validate checked their form.
	if cfg.Alerts.Syslog != "" {
		p.alertsSyslog, _ = url.Parse(cfg.Alerts.Syslog)
	}
	if cfg.Audit.Syslog != "" {
		p.auditSyslog, _ = url.Parse(cfg.Audit.Syslog)
	}
	if p.auditSyslog != nil || p.alertsSyslog != nil {
		p.syslogs, err = newSyslogWriters(p, buildinfo.Read("").Version)
		check(err)
	}
	check(checkAuditFile(cfg))
	p.workloads, err = workloadOptions(cfg)
	check(err)
	if cfg.TLS.Cert != "" {
		cert, err := web.LoadCertificate(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			check(fmt.Errorf("config: tls.cert and tls.key: %w", err))
		}
		p.cert = &cert
	}
	if cfg.TLS.ClientCA != "" {
		p.clientCAs, err = loadClientCAs(cfg.TLS.ClientCA)
		check(err)
	}
	// Last: the GeoIP database is the one thing the plan holds open.
	if len(errs) == 0 && cfg.Risk.GeoIPDatabase != "" {
		if p.geoip, err = geoip.Open(cfg.Risk.GeoIPDatabase); err != nil {
			check(fmt.Errorf("config: risk.geoip_database: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// close releases what the plan holds open.
func (p *plan) close() {
	if p != nil {
		p.syslogs.close()
	}
	if p != nil && p.geoip != nil {
		_ = p.geoip.Close()
		p.geoip = nil
	}
}

// riskRules parses the zero-trust rules.
func riskRules(cfg config.Config) (policy.RiskRules, error) {
	var rules policy.RiskRules
	for _, a := range []struct {
		field string
		v     string
		dst   *policy.Action
	}{
		{"risk.country_action", cfg.Risk.CountryAction, &rules.CountryAction},
		{"risk.impossible_travel", cfg.Risk.ImpossibleTravel, &rules.ImpossibleTravel},
		{"risk.unusual_hour", cfg.Risk.UnusualHour, &rules.UnusualHour},
		{"risk.new_network", cfg.Risk.NewNetwork, &rules.NewNetwork},
	} {
		act, err := policy.ParseAction(a.v)
		if err != nil {
			return rules, fmt.Errorf("config: %s: %w", a.field, err)
		}
		*a.dst = act
	}
	rules.AllowCountries, rules.DenyCountries = cfg.Risk.AllowCountries, cfg.Risk.DenyCountries
	rules.Location = cfg.Limits.Location()
	if err := rules.Validate(); err != nil {
		return rules, fmt.Errorf("config: risk: %w", err)
	}
	return rules, nil
}

// detectConfig is the detectors' configuration: the defaults, with every
// alerts setting that is set.
func detectConfig(cfg config.Config) detect.Config {
	dc := detect.DefaultConfig()
	a := cfg.Alerts
	if a.AuthFailures > 0 {
		dc.Auth.Max = a.AuthFailures
	}
	setF := func(dst *float64, v float64) {
		if v > 0 {
			*dst = v
		}
	}
	setD := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setF(&dc.Rate.Factor, a.Rate.Factor)
	setD(&dc.Rate.Window, a.Rate.Window)
	setD(&dc.Rate.ShortWindow, a.Rate.ShortWindow)
	setD(&dc.Rate.History, a.Rate.History)
	setF(&dc.Rate.LimitShare, a.Rate.LimitShare)
	setD(&dc.Rate.BaselineWindow, a.Rate.Baseline)
	setD(&dc.Rate.Forming, a.Rate.Forming)
	setF(&dc.Shift.Threshold, a.ShiftThreshold)
	setF(&dc.Spend.Factor, a.SpendFactor)
	if a.PerMinute > 0 {
		dc.Limits.PerMinute = a.PerMinute
	}
	if a.Loop.Repeats != 0 {
		dc.Loop.Repeats = a.Loop.Repeats
	}
	setD(&dc.Loop.Window, a.Loop.Window)
	if a.Loop.ContextTokens != 0 {
		dc.Loop.ContextTokens = a.Loop.ContextTokens
	}
	if a.Loop.Growing > 0 {
		dc.Loop.Growing = a.Loop.Growing
	}
	dc.Actions = a.Actions
	return dc
}

// checkAuditFile makes sure the audit file can be created where it is
// configured: its directory must exist, unless it is the data directory,
// which Build creates.
func checkAuditFile(cfg config.Config) error {
	if cfg.Audit.File == "" {
		return nil
	}
	dir := filepath.Dir(filepath.Clean(cfg.Audit.File))
	if dir == filepath.Clean(cfg.DataDir) {
		return nil
	}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("config: audit.file: its directory %s cannot be used (%w); create it, or choose another path", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("config: audit.file: %s is not a directory; choose another path", dir)
	}
	return nil
}

// loadClientCAs reads the PEM CAs whose client certificates the gateway accepts.
func loadClientCAs(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("config: tls.client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("config: tls.client_ca: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}
