package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load("", "/home/u", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
	if c.DatabaseURL() != "sqlite:///home/u/.keygate/keygate.db" || c.MasterKeyPath() != "/home/u/.keygate/master.key" {
		t.Fatalf("derived paths: %s %s", c.DatabaseURL(), c.MasterKeyPath())
	}
}

func TestFileThenEnvPrecedence(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keygate.yaml")
	os.WriteFile(p, []byte("listen: 127.0.0.1:9000\nmax_body_bytes: 1MiB\nupstream:\n  dial_timeout: 3s\ntrusted_proxies: [10.0.0.0/8]\nlog:\n  level: debug\n"), 0o600)
	c, err := Load(p, dir, env(map[string]string{
		"KEYGATE_LISTEN": "127.0.0.1:9100",
		"KEYGATE_UPSTREAM_MAX_IDLE_CONNS_PER_HOST": "7",
		"KEYGATE_TRUSTED_PROXIES":                  "192.0.2.1, 2001:db8::/32",
		"KEYGATE_LOG_REQUESTS":                     "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9100" || c.MaxBodyBytes != 1<<20 || c.Upstream.DialTimeout != 3*time.Second ||
		c.Upstream.MaxIdleConnsPerHost != 7 || c.Log.Level != "debug" || c.Log.Requests {
		t.Fatalf("unexpected config %+v", c)
	}
	if got := c.TrustedProxyPrefixes(); len(got) != 2 || got[0].String() != "192.0.2.1/32" {
		t.Fatalf("trusted proxies %v", got)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownFileFieldIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(p, []byte("lisen: 127.0.0.1:1\n"), 0o600)
	if _, err := Load(p, "/h", env(nil)); err == nil || !strings.Contains(err.Error(), "lisen") {
		t.Fatalf("want an error naming the unknown field, got %v", err)
	}
}

func TestEnvErrorNamesVariable(t *testing.T) {
	_, err := Load("", "/h", env(map[string]string{"KEYGATE_SHUTDOWN_GRACE": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "KEYGATE_SHUTDOWN_GRACE") || !strings.Contains(err.Error(), "shutdown_grace") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateNamesEachField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"bad listen", func(c *Config) { c.Listen = "8787" }, "listen:"},
		{"public plain http", func(c *Config) { c.Listen = "0.0.0.0:8787" }, "tls.cert"},
		{"public admin plain http", func(c *Config) { c.AdminListen = "[::]:8788" }, "admin_listen:"},
		{"same listeners", func(c *Config) { c.AdminListen = c.Listen }, "admin_listen"},
		{"half tls", func(c *Config) { c.TLS.Cert = "a.pem" }, "tls:"},
		{"self signed and cert", func(c *Config) { c.TLS = TLS{Cert: "a", Key: "b", SelfSigned: true} }, "tls.self_signed"},
		{"body", func(c *Config) { c.MaxBodyBytes = 0 }, "max_body_bytes"},
		{"memory limit too small", func(c *Config) { c.MemoryLimit = 16 << 20 }, "memory_limit"},
		{"memory limit negative", func(c *Config) { c.MemoryLimit = -1 }, "memory_limit"},
		{"sockets per key", func(c *Config) { c.Client.WebSocket.MaxPerKey = 0 }, "client.websocket.max_per_key"},
		{"socket lifetime", func(c *Config) { c.Client.WebSocket.MaxLifetime = -time.Second }, "client.websocket.max_lifetime"},
		{"grace", func(c *Config) { c.ShutdownGrace = 0 }, "shutdown_grace"},
		{"proxies", func(c *Config) { c.TrustedProxies = []string{"nope"} }, "trusted_proxies"},
		{"level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
		{"log output", func(c *Config) { c.Log.Output = "syslog" }, "log.output"},
		{"bootstrap credential", func(c *Config) { c.BootstrapCredential = "email" }, "bootstrap_credential"},
		{"db", func(c *Config) { c.Database = "mysql://x" }, "database"},
		{"audit deadline", func(c *Config) { c.Audit.Deadline = 0 }, "audit.deadline"},
		{"audit checkpoint interval", func(c *Config) { c.Audit.CheckpointInterval = -time.Second }, "audit.checkpoint_interval"},
		{"otp window under a second", func(c *Config) { c.OTP.Window = 500 * time.Millisecond }, "otp.window"},
		{"otp lockout under a second", func(c *Config) { c.OTP.Lockout = time.Millisecond }, "otp.lockout"},
		{"audit syslog scheme", func(c *Config) { c.Audit.Syslog = "http://127.0.0.1:514" }, "audit.syslog"},
		{"audit syslog host", func(c *Config) { c.Audit.Syslog = "udp://" }, "audit.syslog"},
		{"alerts syslog over a unix socket", func(c *Config) { c.Alerts.Syslog = "unix:///dev/log" }, "alerts.syslog"},
		{"syslog format", func(c *Config) { c.Syslog.Format = "leef" }, "syslog.format"},
		{"syslog facility", func(c *Config) { c.Syslog.Facility = 24 }, "syslog.facility"},
		{"tracing endpoint", func(c *Config) { c.Tracing.Endpoint = "collector:4318" }, "tracing.endpoint"},
		{"tracing sample ratio", func(c *Config) { c.Tracing.SampleRatio = 1.5 }, "tracing.sample_ratio"},
		{"outage lease above half", func(c *Config) { c.Limits.OutageLease = 0.75 }, "limits.outage_lease"},
		{"negative outage lease", func(c *Config) { c.Limits.OutageLease = -0.1 }, "limits.outage_lease"},
		{"leaks stream text", func(c *Config) { c.Leaks.StreamText = "buffer" }, "leaks.stream_text"},
		{"audit webhook scheme", func(c *Config) { c.Audit.Webhook = "ftp://siem.example/in" }, "audit.webhook"},
		{"alerts webhook relative", func(c *Config) { c.Alerts.Webhook = "/hooks/keygate" }, "alerts.webhook"},
		{"slack not a url", func(c *Config) { c.Alerts.Slack = "hooks.slack.example/T000/B000/placeholder" }, "alerts.slack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default("/h")
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("want error naming %q, got %v", tc.field, err)
			}
			// Webhook URLs can carry a token: an error never repeats them.
			for _, u := range []string{c.Audit.Webhook, c.Alerts.Webhook, c.Alerts.Slack} {
				if u != "" && strings.Contains(err.Error(), u) {
					t.Fatalf("the error repeats a webhook URL: %v", err)
				}
			}
		})
	}
	ok := Default("/h")
	ok.Listen = "0.0.0.0:8787"
	ok.AllowPlainHTTP = true
	if err := ok.Validate(); err != nil {
		t.Fatalf("allow_plain_http should permit a public address: %v", err)
	}
	ok.AllowPlainHTTP = false
	ok.TLS.SelfSigned = true
	if err := ok.Validate(); err != nil {
		t.Fatalf("TLS should permit a public address: %v", err)
	}
}

func TestEnvVarsCoversNestedFields(t *testing.T) {
	var names []string
	for _, e := range EnvVars() {
		names = append(names, e[0])
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"KEYGATE_TLS_CERT", "KEYGATE_UPSTREAM_RESPONSE_HEADER_TIMEOUT", "KEYGATE_LOG_FORMAT", "KEYGATE_DATABASE"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %s in %s", want, all)
		}
	}
}
