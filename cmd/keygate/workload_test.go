package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/workload/workloadtest"
)

// keyID creates a key through the CLI and returns its id and secret.
func (in *instance) keyID(args ...string) (id, raw string) {
	in.t.Helper()
	out := in.mustCLI(nil, "", append([]string{"key", "create", "--json"}, args...)...)
	var created struct {
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Key.ID == "" || created.Secret == "" {
		in.t.Fatalf("key create --json printed %q (%v)", out, err)
	}
	return created.Key.ID, created.Secret
}

// restart stops keygate and starts it again with cfg, the same data and
// admin credential.
func (in *instance) restart(cfg config.Config) *instance {
	in.t.Helper()
	in.stop()
	return start(in.t, cfg, in.admin)
}

// TestAgentSignsInAsItsWorkload: keygate serve trusts a Kubernetes-style
// issuer by policy; `keygate agent --once` reads the pod's projected
// service-account token, exchanges it and writes the keygate token and the
// secret its policy grants to an env file and a JSON file (0600); the
// token works at the gateway, another pod's token is refused, and both
// exchanges are on the audit trail with the workload's subject.
func TestAgentSignsInAsItsWorkload(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	in := start(t, cfg, "")
	payID, _ := in.keyID("--name", "payments-workload")
	in.mustCLI(nil, "db-password-made-by-the-test\n", "secret", "put", "payments/db", "--stdin")
	in.mustCLI(nil, "not-for-payments\n", "secret", "put", "search/db", "--stdin")

	cluster := workloadtest.Start(t, "keygate")
	cfg.Workloads = config.Workloads{
		Trust: []config.TrustPolicy{{
			Name: "payments-pods", Issuer: cluster.Issuer(), Audience: "keygate",
			Claims: map[string]config.Patterns{"kubernetes.io/namespace": {"payments"}},
			Key:    payID, Scope: "secret:payments/db",
		}},
		SecretGrants: map[string][]string{payID: {"payments/*"}},
	}
	in = in.restart(cfg)
	gw := in.addrs.Gateway

	tokenFile := filepath.Join(dir, "sa-token")
	sub, claims := workloadtest.KubernetesClaims("payments", "api")
	if err := os.WriteFile(tokenFile, []byte(cluster.Mint(t, sub, claims)), 0o600); err != nil {
		t.Fatal(err)
	}
	envFile, jsonFile := filepath.Join(dir, "out", "app.env"), filepath.Join(dir, "out", "secrets.json")
	if err := os.MkdirAll(filepath.Dir(envFile), 0o700); err != nil {
		t.Fatal(err)
	}
	agentCfg := filepath.Join(dir, "agent.yaml")
	writeAgentConfig(t, agentCfg, gw, tokenFile, envFile, jsonFile)
	if out, errb, err := in.cli(nil, "", "agent", "--config", agentCfg, "--once"); err != nil {
		t.Fatalf("keygate agent --once: %v\n%s%s", err, out, errb)
	}
	env := readPrivate(t, envFile)
	if !strings.Contains(env, "DB_PASSWORD=db-password-made-by-the-test\n") || !strings.Contains(env, "OPENAI_BASE_URL="+gw+"/v1\n") {
		t.Fatalf("env file:\n%s", env)
	}
	var js map[string]string
	if err := json.Unmarshal([]byte(readPrivate(t, jsonFile)), &js); err != nil || js["db"] != "db-password-made-by-the-test" {
		t.Fatalf("json file: %v %v", js, err)
	}
	// The token the agent wrote is a keygate token: it reads its secret,
	// and nothing else.
	tok := regexp.MustCompile(`OPENAI_API_KEY=(\S+)`).FindStringSubmatch(env)[1]
	if status, body := getSecret(t, gw, tok, "payments/db"); status != 200 || !strings.Contains(body, "db-password-made-by-the-test") {
		t.Fatalf("the agent's token: %d %s", status, body)
	}
	if status, _ := getSecret(t, gw, tok, "search/db"); status != 403 {
		t.Fatalf("the agent's token read another secret: %d", status)
	}

	// A pod of another namespace is refused, in the OAuth error shape.
	sub, claims = workloadtest.KubernetesClaims("search", "api")
	resp, err := http.PostForm(gw+"/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {cluster.Mint(t, sub, claims)}, "subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}})
	if err != nil {
		t.Fatal(err)
	}
	var refused struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&refused)
	resp.Body.Close()
	if resp.StatusCode != 400 || refused.Error != "invalid_request" {
		t.Fatalf("another namespace: %d %+v", resp.StatusCode, refused)
	}

	// The trail is written in batches: wait for both exchanges.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := in.mustCLI(nil, "", "--json", "audit", "search", "--type", "token.workload")
		if strings.Contains(out, "system:serviceaccount:payments:api") && strings.Contains(out, "system:serviceaccount:search:api") &&
			strings.Contains(out, `"allow"`) && strings.Contains(out, `"deny"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit trail lacks the exchanges:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeAgentConfig(t *testing.T, path, gw, tokenFile, envFile, jsonFile string) {
	t.Helper()
	body := `gateway: ` + gw + `
identity:
  token_file: ` + tokenFile + `
outputs:
  - path: ` + envFile + `
    format: env
    values:
      OPENAI_API_KEY: "{{ .Token }}"
      OPENAI_BASE_URL: "{{ .Gateway }}/v1"
      DB_PASSWORD: '{{ secret "payments/db" }}'
  - path: ` + jsonFile + `
    format: json
    values:
      db: '{{ secret "payments/db" }}'
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readPrivate(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func getSecret(t *testing.T, gw, cred, name string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, gw+"/secrets?name="+url.QueryEscape(name), nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// esoStore is the part of docs/external-secrets/secretstore.yaml that the
// External Secrets Operator's webhook provider reads.
type esoStore struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Provider struct {
			Webhook struct {
				URL     string            `yaml:"url"`
				Method  string            `yaml:"method"`
				Headers map[string]string `yaml:"headers"`
				Body    string            `yaml:"body"`
				Result  struct {
					JSONPath string `yaml:"jsonPath"`
				} `yaml:"result"`
			} `yaml:"webhook"`
		} `yaml:"provider"`
	} `yaml:"spec"`
}

// esoRequest is the request the External Secrets Operator's webhook
// provider sends for remoteRef key (pkg/common/webhook): the URL template
// filled with the remote reference's fields query-escaped, the headers and
// body templates with them raw, the store's secrets as named objects, and
// an empty body for GET.
func esoRequest(t *testing.T, store esoStore, key, version string, auth map[string]string) *http.Request {
	t.Helper()
	wh := store.Spec.Provider.Webhook
	exec := func(src string, remote map[string]string) string {
		tp, err := template.New("webhooktemplate").Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := tp.Execute(&b, map[string]map[string]string{"remoteRef": remote, "auth": auth}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	escaped := map[string]string{"key": url.QueryEscape(key), "version": url.QueryEscape(version), "property": ""}
	raw := map[string]string{"key": key, "version": version, "property": ""}
	method := wh.Method
	if method == "" {
		method = http.MethodGet
	}
	body := bytes.NewBufferString(exec(wh.Body, raw))
	req, err := http.NewRequest(method, exec(wh.URL, escaped), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range wh.Headers {
		req.Header.Add(k, exec(v, raw))
	}
	return req
}

// TestExternalSecretsWebhook: the request the External Secrets Operator
// sends with the SecretStore of docs/external-secrets reads the secret its
// key is granted ($.value), is refused (403, not ESO's "deleted" 404) for
// one it is not, gets 404 for a granted name that holds nothing, and the
// key, made for ESO alone, calls no model.
func TestExternalSecretsWebhook(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	in := start(t, cfg, "")
	esoID, esoKey := in.keyID("--name", "eso-payments", "--allow-path", "GET /secrets")
	in.mustCLI(nil, "db-password-made-by-the-test\n", "secret", "put", "payments/db", "--stdin")
	in.mustCLI(nil, "not-for-eso\n", "secret", "put", "search/db", "--stdin")
	cfg.Workloads.SecretGrants = map[string][]string{esoID: {"payments/*"}}
	in = in.restart(cfg)
	gw := in.addrs.Gateway

	f, err := os.ReadFile(filepath.Join("..", "..", "docs", "external-secrets", "secretstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var store esoStore
	d := yaml.NewDecoder(bytes.NewReader(f))
	for {
		var doc esoStore
		if err := d.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "SecretStore" {
			store = doc
		}
	}
	wh := &store.Spec.Provider.Webhook
	if wh.URL == "" || wh.Result.JSONPath != "$.value" {
		t.Fatalf("the example SecretStore: %+v", store)
	}
	wh.URL = strings.Replace(wh.URL, "https://keygate.keygate.svc:8787", gw, 1)

	do := func(key string) (int, map[string]any) {
		resp, err := http.DefaultClient.Do(esoRequest(t, store, key, "", map[string]string{"key": esoKey}))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	status, v := do("payments/db")
	if status != 200 || v[strings.TrimPrefix(wh.Result.JSONPath, "$.")] != "db-password-made-by-the-test" {
		t.Fatalf("ESO's read: %d %v", status, v)
	}
	if status, v := do("search/db"); status != 403 {
		t.Fatalf("a secret outside the grant: %d %v", status, v)
	}
	if status, _ := do("payments/none"); status != 404 {
		t.Fatalf("a granted name holding nothing: %d", status)
	}
	if status, _ := postJSON(t, gw+"/v1/chat/completions", esoKey, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); status != 403 {
		t.Fatalf("ESO's key called a model: %d", status)
	}
	if strings.Contains(in.stderr.String(), "payments/db") || strings.Contains(in.stderr.String(), "db-password-made-by-the-test") {
		t.Fatal("keygate's log names the secret or holds its value")
	}
}
