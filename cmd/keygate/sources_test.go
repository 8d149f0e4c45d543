package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/server"
)

// Tests of references (provider add --api-key-ref, secret put --ref)
// through keygate serve and the CLI. Every source is a local fake from
// internal/fakecloud speaking its service's wire format and checking
// keygate's SigV4 signatures and bearer tokens; keygate reaches them with
// the official SDKs, its identity read from its environment as in
// production. No real cloud is called.

// cloudEnv is keygate serve's environment: its own identity at each fake.
func cloudEnv(t *testing.T, c *fakecloud.Clouds) func(string) string {
	dir := t.TempDir()
	sa := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(sa, c.SAJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": c.AWSKey.AccessKeyID, "AWS_SECRET_ACCESS_KEY": c.AWSKey.SecretAccessKey,
		"AWS_ENDPOINT_URL_STS": c.STSURL,
		"AZURE_TENANT_ID":      c.Entra.TenantID, "AZURE_CLIENT_ID": c.Entra.ClientID, "AZURE_CLIENT_SECRET": c.Entra.ClientSecret,
		"AZURE_AUTHORITY_HOST":           c.EntraURL,
		"GOOGLE_APPLICATION_CREDENTIALS": sa,
		"VAULT_ADDR":                     c.VaultURL, "VAULT_TOKEN": c.Vault.Token,
	}
	return func(k string) string { return env[k] }
}

// sourcesConfig points a keygate configuration's sources at the fakes.
func sourcesConfig(t *testing.T, cfg *config.Config, c *fakecloud.Clouds) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, c.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Sources.CAFile = ca
	cfg.Sources.AWSEndpoint = c.SMURL
	cfg.Sources.AzureVaultURL = c.KVURL
	cfg.Sources.GCPEndpoint = c.GCPSMURL
	cfg.Sources.Poll = 200 * time.Millisecond
	cfg.ProviderRefresh = 300 * time.Millisecond
}

// keyedUpstream is a fake OpenAI that accepts whichever keys the test
// says are live at the source right now, and no other.
type keyedUpstream struct {
	mu   sync.Mutex
	live map[string]bool
	fake *fakeprovider.Server
	key  string // the inner fake's own key
	URL  string
}

func newKeyedUpstream(t *testing.T) *keyedUpstream {
	u := &keyedUpstream{live: map[string]bool{}, key: canary("inner")}
	u.fake = fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: u.key})
	srv := httptest.NewServer(u)
	t.Cleanup(func() { u.fake.Close(); srv.Close() })
	u.URL = srv.URL + "/v1"
	return u
}

func (u *keyedUpstream) set(old, cur string) {
	u.mu.Lock()
	delete(u.live, old)
	u.live[cur] = true
	u.mu.Unlock()
}

func (u *keyedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	ok := u.live[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	u.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`))
		return
	}
	r.Header.Set("Authorization", "Bearer "+u.key)
	u.fake.ServeHTTP(w, r)
}

// refSource is one kind of source as the test drives it.
type refSource struct {
	name, ref string
	put       func(string)
	fail      func(bool)
}

func refSources(c *fakecloud.Clouds) []refSource {
	return []refSource{
		{"aws", "awssm://team/openai", func(v string) { c.SM.Put("team/openai", v) }, func(on bool) {
			if on {
				c.SM.Fail("AccessDeniedException")
			} else {
				c.SM.Fail("")
			}
		}},
		{"azure", "azkv://teamvault/openai", func(v string) { c.KeyVault.Put("openai", v) }, c.KeyVault.Fail},
		{"gcp", "gcpsm://" + fakecloud.GCPProject + "/openai", func(v string) { c.GCPSM.Put(fakecloud.GCPProject, "openai", v) }, c.GCPSM.Fail},
		{"vault", "vault://kv/team/openai#api_key", func(v string) { c.Vault.Put("kv", "team/openai", map[string]any{"api_key": v}) }, c.Vault.Fail},
	}
}

// eventually polls check until it returns "" or the deadline passes, then
// fails with its last answer. Nodes pick up changes on their schedules
// (provider_refresh, the vault's read cache), so the test waits for them.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		last := check()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReferencesFollowTheirSourceOnTwoNodes: for each source (AWS Secrets
// Manager, Azure Key Vault, Google Secret Manager, Vault KV v2), a
// provider added with --api-key-ref serves through two keygate nodes on
// one database; a rotation at the source reaches both without a restart;
// when the sources fail, the cached keys are served through the grace with
// a source_unreadable alert, and past it the gateway answers 503
// provider_unavailable in the caller's dialect, raises
// source_grace_expired, and never sends the stale key; when the sources
// answer again, so does the gateway. No value reaches logs or answers.
func TestReferencesFollowTheirSourceOnTwoNodes(t *testing.T) {
	for dbName, db := range databases(t) {
		t.Run(dbName, func(t *testing.T) {
			c := fakecloud.Start(t)
			up := newKeyedUpstream(t)
			cfg := testConfig(t, t.TempDir())
			cfg.Database = db(t)
			sourcesConfig(t, &cfg, c)
			env := server.WithGetenv(cloudEnv(t, c))
			a := start(t, cfg, "", env)
			b := start(t, secondNode(t, cfg), a.admin, env)

			srcs := refSources(c)
			values := map[string][]string{}
			for _, s := range srcs {
				v := canary("ref-" + s.name + "-one")
				values[s.name] = append(values[s.name], v)
				s.put(v)
				up.set("", v)
				out := a.mustCLI(nil, "", "--json", "provider", "add", "up-"+s.name, "--base-url", up.URL, "--api-key-ref", s.ref,
					"--ref-refresh", "10s", "--ref-grace", "2s")
				var p adminapi.Provider
				decodeJSON(t, out, &p)
				if p.Source == nil || p.Source.Ref != s.ref || p.Source.State != "ok" || strings.Contains(out, v) {
					t.Fatalf("provider add --api-key-ref %s: %s", s.ref, out)
				}
			}
			// A reference that cannot be read stores nothing.
			if _, errb, err := a.cli(nil, "", "provider", "add", "up-missing", "--base-url", up.URL, "--api-key-ref", "awssm://team/absent"); err == nil ||
				!strings.Contains(errb+err.Error(), "awssm://team/absent") {
				t.Fatalf("a reference to a missing secret: %v %s", err, errb)
			}
			if _, _, err := a.cli(nil, "", "provider", "show", "up-missing"); err == nil {
				t.Fatal("a provider whose source could not be read was stored")
			}
			if _, _, err := a.cli(nil, "", "provider", "add", "up-bad", "--base-url", up.URL, "--api-key-ref", "s3://bucket/key"); err == nil {
				t.Fatal("an unknown scheme was accepted")
			}

			key := a.createKey("--name", "ref-app")
			chat := func(in *instance, provider string) (int, string) {
				return postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"up-`+provider+`/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
			}
			for _, s := range srcs {
				for _, in := range []*instance{a, b} {
					s := s
					eventually(t, "serve the referenced key of "+s.name, func() string {
						if code, body := chat(in, s.name); code != 200 {
							return body
						}
						return ""
					})
				}
			}

			// Rotation at the source: on demand through node a, then both
			// nodes send only the new key.
			for _, s := range srcs {
				old := values[s.name][0]
				v := canary("ref-" + s.name + "-two")
				values[s.name] = append(values[s.name], v)
				s.put(v)
				up.set(old, v)
				a.mustCLI(nil, "", "source", "refresh", "provider:up-"+s.name)
				for _, in := range []*instance{a, b} {
					s := s
					eventually(t, "the rotation at "+s.name+" reaches every node", func() string {
						if code, body := chat(in, s.name); code != 200 {
							return body
						}
						return ""
					})
				}
			}

			// The sources fail: served through the grace, alerted.
			for _, s := range srcs {
				s.fail(true)
				_, errb, err := a.cli(nil, "", "source", "refresh", "provider:up-"+s.name)
				if err == nil || !strings.Contains(errb+err.Error(), "source_unreadable") && !strings.Contains(errb+err.Error(), s.ref) {
					t.Fatalf("refresh of a failing source: %v %s", err, errb)
				}
				if code, body := chat(b, s.name); code != 200 {
					t.Fatalf("within the grace the last key read is served (%s): %d %s", s.name, code, body)
				}
			}
			alerts := func() string { return a.mustCLI(nil, "", "--json", "audit", "search", "--type", "alert") }
			eventually(t, "source_unreadable alerts", func() string {
				if all := alerts(); strings.Count(all, "source_unreadable") < len(srcs) {
					return all
				}
				return ""
			})

			// Past the grace: refused on both nodes, in the caller's dialect.
			for _, s := range srcs {
				for _, in := range []*instance{a, b} {
					s := s
					eventually(t, "past the grace "+s.name+" is refused", func() string {
						code, body := chat(in, s.name)
						var e struct {
							Error struct{ Code, Message string }
						}
						_ = json.Unmarshal([]byte(body), &e)
						if code != http.StatusServiceUnavailable || e.Error.Code != "provider_unavailable" {
							return body
						}
						if strings.Contains(body, s.ref) || strings.Contains(body, "127.0.0.1") {
							t.Fatalf("the refusal names the source: %s", body)
						}
						return ""
					})
				}
			}
			code, body := postJSON(t, b.addrs.Gateway+"/v1/messages", key, `{"model":"up-aws/gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`,
				"Anthropic-Version", "2023-06-01")
			var ae struct {
				Type  string
				Error struct{ Type, Message string }
			}
			if err := json.Unmarshal([]byte(body), &ae); err != nil || code != 503 || ae.Type != "error" || !strings.Contains(ae.Error.Message, "unavailable") {
				t.Fatalf("an Anthropic client is refused in its dialect: %d %s", code, body)
			}
			eventually(t, "source_grace_expired alerts", func() string {
				if all := alerts(); !strings.Contains(all, "source_grace_expired") {
					return all
				}
				return ""
			})
			var list adminapi.SourceRefList
			decodeJSON(t, b.mustCLI(nil, "", "--json", "source", "list"), &list)
			if len(list.Refs) != len(srcs) {
				t.Fatalf("source list: %+v", list)
			}
			for _, r := range list.Refs {
				if r.State != "unavailable" || r.LastError == "" {
					t.Fatalf("a reference past its grace: %+v", r)
				}
			}

			// The sources answer again: served again, recovery alerted.
			for _, s := range srcs {
				s.fail(false)
				b.mustCLI(nil, "", "source", "refresh", "provider:up-"+s.name)
				for _, in := range []*instance{a, b} {
					s := s
					eventually(t, "after recovery "+s.name+" serves", func() string {
						if code, body := chat(in, s.name); code != 200 {
							return body
						}
						return ""
					})
				}
			}
			if all := alerts(); !strings.Contains(all, "source_recovered") {
				t.Fatalf("no recovery alert: %s", all)
			}

			// No referenced value in logs, the database or CLI output.
			data := databaseBytes(t, cfg)
			out := a.stderr.String() + b.stderr.String() + a.stdout.String() + b.stdout.String() + alerts() + a.mustCLI(nil, "", "--json", "source", "list")
			for _, vs := range values {
				for _, v := range vs {
					if strings.Contains(out, v) || strings.Contains(string(data), v) {
						t.Fatal("a referenced value leaked into logs, output or the database in clear")
					}
				}
			}
		})
	}
}

// TestSecretReference: secret put --ref follows a secret in Vault; a value
// stored by hand replaces the reference; a rotation at the source is read
// on demand.
func TestSecretReference(t *testing.T) {
	c := fakecloud.Start(t)
	cfg := testConfig(t, t.TempDir())
	sourcesConfig(t, &cfg, c)
	in := start(t, cfg, "", server.WithGetenv(cloudEnv(t, c)))
	one, two := canary("db-one"), canary("db-two")
	c.Vault.Put("kv", "team/db", map[string]any{"password": one, "user": "app"})

	out := in.mustCLI(nil, "", "--json", "secret", "put", "team/db", "--ref", "vault://kv/team/db#password")
	if strings.Contains(out, one) || !strings.Contains(out, `"ref": "vault://kv/team/db#password"`) {
		t.Fatalf("secret put --ref: %s", out)
	}
	if got := strings.TrimSpace(in.mustCLI(nil, "", "secret", "get", "team/db")); got != one {
		t.Fatal("the referenced secret does not read as its source's value")
	}
	c.Vault.Put("kv", "team/db", map[string]any{"password": two, "user": "app"})
	in.mustCLI(nil, "", "source", "refresh", "secret:team/db")
	if got := strings.TrimSpace(in.mustCLI(nil, "", "secret", "get", "team/db")); got != two {
		t.Fatal("a rotation at the source was not read on demand")
	}
	// A field the secret lacks: refused, naming the fields, never a value.
	_, errb, err := in.cli(nil, "", "secret", "put", "team/other", "--ref", "vault://kv/team/db#pass")
	if err == nil || !strings.Contains(errb+err.Error(), "password") || strings.Contains(errb+err.Error(), two) {
		t.Fatalf("a missing field: %v %s", err, errb)
	}
	if _, _, err := in.cli(nil, "", "secret", "get", "team/other"); err == nil {
		t.Fatal("a secret whose source could not be read was stored")
	}
	// A value put by hand ends the reference.
	in.mustCLI(map[string]string{"V": canary("by-hand")}, "", "secret", "put", "team/db", "--from-env", "V")
	var list adminapi.SourceRefList
	decodeJSON(t, in.mustCLI(nil, "", "--json", "source", "list"), &list)
	if len(list.Refs) != 0 {
		t.Fatalf("a secret stored by hand still follows its source: %+v", list.Refs)
	}
}

// secondNode is the configuration of another node of the installation
// cfg belongs to: its own data directory (and so its own audit chain), the
// same database and key-encryption key.
func secondNode(t *testing.T, cfg config.Config) config.Config {
	b := cfg
	b.Database, b.MasterKeyFile = cfg.DatabaseURL(), cfg.MasterKeyPath()
	b.DataDir = filepath.Join(t.TempDir(), "node-b")
	return b
}
