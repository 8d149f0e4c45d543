package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/config"
)

// badConfigs are configurations keygate cannot run with, each with the
// field its refusal must name. None of them may create anything.
func badConfigs(t *testing.T) []struct {
	name, field string
	mod         func(*config.Config)
} {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-a-ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []struct {
		name, field string
		mod         func(*config.Config)
	}{
		{"routing: a deployment without a model", "routing", func(c *config.Config) {
			c.Routing.Deployments = []config.Deployment{{Name: "d1", Provider: "openai"}}
		}},
		{"routing: an alias of an unknown deployment", "routing", func(c *config.Config) {
			c.Routing.Aliases = map[string]config.Alias{"fast": {Deployments: []string{"nowhere"}}}
		}},
		{"services: no secret", "services.stripe", func(c *config.Config) {
			c.Services = map[string]config.Service{"stripe": {BaseURL: "https://api.stripe.example"}}
		}},
		{"services: a base URL that is not one", "services.stripe", func(c *config.Config) {
			c.Services = map[string]config.Service{"stripe": {BaseURL: "api.stripe.example", Secret: "stripe"}}
		}},
		{"prices: a wildcard in the middle", "prices", func(c *config.Config) {
			c.Prices = map[string]config.ModelPrice{"gpt-*-mini": {Input: 1, Output: 2}}
		}},
		{"limits: a Redis URL with no valid port", "limits.redis", func(c *config.Config) { c.Limits.Redis = "redis://127.0.0.1:notaport/0" }},
		{"limits: an unknown time zone", "limits.timezone", func(c *config.Config) { c.Limits.Timezone = "Mars/Olympus" }},
		{"risk: a country code that is not one", "risk", func(c *config.Config) { c.Risk.DenyCountries = []string{"Narnia"} }},
		{"risk: a GeoIP database that is not there", "risk.geoip_database", func(c *config.Config) {
			c.Risk.GeoIPDatabase = filepath.Join(dir, "missing.mmdb")
		}},
		{"alerts: an unknown action", "alerts", func(c *config.Config) { c.Alerts.Actions = map[string]string{"rate-spike": "explode"} }},
		{"alerts: syslog over a unix socket", "alerts.syslog", func(c *config.Config) { c.Alerts.Syslog = "unix:///dev/log" }},
		{"syslog: an unknown format", "syslog.format", func(c *config.Config) { c.Syslog.Format = "leef" }},
		{"syslog: a CA file that is not there", "syslog.ca_file", func(c *config.Config) {
			c.Audit.Syslog, c.Syslog.CAFile = "tls://127.0.0.1:6514", filepath.Join(dir, "missing-ca.pem")
		}},
		{"tracing: an endpoint that is not OTLP", "tracing.endpoint", func(c *config.Config) { c.Tracing.Endpoint = "ftp://collector:4318" }},
		{"tls: certificate files that are not there", "tls", func(c *config.Config) {
			c.TLS.Cert, c.TLS.Key = filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key")
		}},
		{"tls: a client CA file that holds no certificate", "tls.client_ca", func(c *config.Config) {
			c.TLS.SelfSigned, c.TLS.ClientCA = true, notPEM
		}},
		{"audit: a file in a directory that does not exist", "audit.file", func(c *config.Config) {
			c.Audit.File = filepath.Join(dir, "no-such-dir", "audit.jsonl")
		}},
		{"audit: a webhook that is not a URL", "audit.webhook", func(c *config.Config) { c.Audit.Webhook = "siem.example/in" }},
		{"otp: a window under a second", "otp.window", func(c *config.Config) { c.OTP.Window = 10 * time.Millisecond }},
		{"workloads: a trust policy without an audience", "workloads.trust[0].audience", func(c *config.Config) {
			c.Workloads.Trust = []config.TrustPolicy{{Name: "ci", Issuer: "https://token.actions.githubusercontent.com", Subject: "repo:acme/*", Key: "key_x"}}
		}},
		{"workloads: a scope outside the grammar", "workloads.trust[0].scope", func(c *config.Config) {
			c.Workloads.Trust = []config.TrustPolicy{{Name: "ci", Issuer: "https://token.actions.githubusercontent.com", Audience: "keygate", Subject: "repo:acme/*", Key: "key_x", Scope: "models:${repository}"}}
		}},
		{"workloads: an issuer CA file that holds no certificate", "workloads.issuers", func(c *config.Config) {
			c.Workloads.Trust = []config.TrustPolicy{{Name: "pods", Issuer: "https://kubernetes.default.svc", Audience: "keygate", Subject: "system:serviceaccount:*", Key: "key_x"}}
			c.Workloads.Issuers = map[string]config.Issuer{"https://kubernetes.default.svc": {CAFile: notPEM}}
		}},
	}
}

// snapshot describes every file under dir (path, size, mode, content
// hash), or "absent" when dir does not exist.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return "absent"
	}
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s %v %d", rel, fi.Mode(), fi.Size())
		if !d.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBadConfigurationCreatesNothing: a configuration keygate cannot run
// with is refused with an error naming the field, before anything exists:
// on a first start no data directory (so no master key or database), and
// against an existing installation not one byte of its data directory
// changes.
func TestBadConfigurationCreatesNothing(t *testing.T) {
	existing := filepath.Join(t.TempDir(), "data")
	tn := startNode(t, testConfig(existing, ""), nil)
	if err := tn.shutdown(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, existing)

	for _, tc := range badConfigs(t) {
		t.Run(tc.name, func(t *testing.T) {
			for _, dataDir := range []string{filepath.Join(t.TempDir(), "data"), existing} {
				cfg := testConfig(dataDir, "")
				tc.mod(&cfg)
				want := snapshot(t, dataDir)
				var out, errb syncBuffer
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := Run(ctx, cfg, &out, &errb, func(Listening) { t.Error("keygate started with a bad configuration") })
				cancel()
				if err == nil {
					t.Fatal("keygate started with a bad configuration")
				}
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("the refusal does not name %s: %v", tc.field, err)
				}
				if got := snapshot(t, dataDir); got != want {
					t.Fatalf("a refused start changed the data directory %s:\nbefore:\n%s\nafter:\n%s", dataDir, want, got)
				}
				if strings.Contains(out.String(), "kg_admin_") || strings.Contains(out.String(), "listening") {
					t.Fatalf("a refused start printed:\n%s", out.String())
				}
			}
		})
	}
	if got := snapshot(t, existing); got != before {
		t.Fatalf("the existing data directory changed:\nbefore:\n%s\nafter:\n%s", before, got)
	}
}

// TestPortInUseCreatesNothing: a start whose gateway or admin port is taken
// fails, naming the listener, the address and the setting to change, and
// creates no data directory; both ports are free again afterwards.
func TestPortInUseCreatesNothing(t *testing.T) {
	for _, which := range []string{"gateway", "admin"} {
		t.Run(which, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			free, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			freeAddr := free.Addr().String()
			free.Close()
			cfg := testConfig(filepath.Join(t.TempDir(), "data"), "")
			cfg.Listen, cfg.AdminListen = freeAddr, busy.Addr().String()
			setting := "--admin-listen"
			if which == "gateway" {
				cfg.Listen, cfg.AdminListen = busy.Addr().String(), freeAddr
				setting = "--listen"
			}
			_, err = Build(context.Background(), cfg, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("built a node on a port in use")
			}
			for _, want := range []string{which + " listener", busy.Addr().String(), "in use", setting} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error lacks %q: %v", want, err)
				}
			}
			if got := snapshot(t, cfg.DataDir); got != "absent" {
				t.Fatalf("a start on a port in use created:\n%s", got)
			}
			ln, err := net.Listen("tcp", freeAddr)
			if err != nil {
				t.Fatalf("the other port stayed bound: %v", err)
			}
			ln.Close()
		})
	}
}
