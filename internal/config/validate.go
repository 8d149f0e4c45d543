package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// validateMore checks the settings whose mistakes would otherwise show only
// after keygate has created its data directory and database (the OTP
// limits), or only when the first alert or audit batch is sent (the
// destinations). bad reports one problem.
func (c Config) validateMore(bad func(field, format string, args ...any)) {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"otp.window", c.OTP.Window}, {"otp.lockout", c.OTP.Lockout}} {
		if d.v > 0 && d.v < time.Second {
			bad(d.field, "%v is under a second; use a duration such as 15m", d.v)
		}
	}
	syslog := func(field, v string, schemes ...string) {
		if v == "" {
			return
		}
		if u, err := url.Parse(v); err != nil || u.Host == "" || !slices.Contains(schemes, u.Scheme) {
			bad(field, "must be %s://host:port", strings.Join(schemes, "://host:port or "))
		}
	}
	if e := c.Tracing.Endpoint; e != "" {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || !slices.Contains([]string{"http", "https", "grpc", "grpcs"}, u.Scheme) {
			bad("tracing.endpoint", "must be http(s)://host:4318 (OTLP/HTTP) or grpc(s)://host:4317 (OTLP/gRPC)")
		}
	}
	if r := c.Tracing.SampleRatio; r < 0 || r > 1 {
		bad("tracing.sample_ratio", "%v is not between 0 and 1", r)
	}
	syslog("audit.syslog", c.Audit.Syslog, "udp", "tcp", "tls")
	syslog("alerts.syslog", c.Alerts.Syslog, "udp", "tcp", "tls")
	if f := c.Syslog.Format; f != "" && f != "rfc5424" && f != "cef" {
		bad("syslog.format", "%q is not a format; use rfc5424 or cef", f)
	}
	if f := c.Syslog.Facility; f < 0 || f > 23 {
		bad("syslog.facility", "%d is out of range; use 0-23", f)
	}
	// Webhook URLs often carry a token in their path or query: an error
	// says what is wrong without repeating them.
	for _, w := range []struct{ field, v string }{
		{"audit.webhook", c.Audit.Webhook}, {"alerts.webhook", c.Alerts.Webhook}, {"alerts.slack", c.Alerts.Slack},
	} {
		if w.v == "" {
			continue
		}
		u, err := url.Parse(w.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(w.field, "must be an http:// or https:// URL with a host, such as https://siem.example.com/keygate (not shown: it may hold a token)")
		}
	}
}
