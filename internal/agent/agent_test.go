package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gateway is a keygate gateway as the agent sees it: /oauth/token
// exchanging identity tokens and refresh tokens in the wire format, and
// /secrets serving values to the tokens it issued.
type gateway struct {
	*httptest.Server
	mu        sync.Mutex
	n         int
	grants    []string // the grant of each /oauth/token request
	subjects  []string // the identity tokens exchanged
	refreshes map[string]bool
	issued    map[string]bool
	secrets   map[string]string
	refuse    string // when set, /oauth/token refuses with this error
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{refreshes: map[string]bool{}, issued: map[string]bool{}, secrets: map[string]string{}}
	g.Server = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/oauth/token":
		_ = r.ParseForm()
		grant := r.PostForm.Get("grant_type")
		g.grants = append(g.grants, grant)
		fail := func(code, desc string) {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
		}
		switch {
		case g.refuse != "":
			fail(g.refuse, "refused by the test")
			return
		case grant == grantExchange && r.PostForm.Get("subject_token_type") == subjectTypeJWT && r.PostForm.Get("subject_token") != "":
			g.subjects = append(g.subjects, r.PostForm.Get("subject_token"))
		case grant == "refresh_token" && g.refreshes[r.PostForm.Get("refresh_token")]:
			delete(g.refreshes, r.PostForm.Get("refresh_token"))
		default:
			fail("invalid_grant", "unknown grant or refresh token")
			return
		}
		g.n++
		at, rt := fmt.Sprintf("access-%d", g.n), fmt.Sprintf("refresh-%d", g.n)
		g.issued[at], g.refreshes[rt] = true, true
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "refresh_token": rt, "token_type": "Bearer", "expires_in": 900})
	case "/secrets":
		if !g.issued[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"invalid access token"}}`))
			return
		}
		v, ok := g.secrets[r.URL.Query().Get("name")]
		if !ok {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":{"message":"this access token may not read that secret"}}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": r.URL.Query().Get("name"), "version": 1, "value": v})
	default:
		http.NotFound(w, r)
	}
}

func (g *gateway) record() (grants, subjects []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.grants...), append([]string(nil), g.subjects...)
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	return string(b)
}

// TestOnceWritesFiles: one round exchanges the projected token, reads the
// secrets the templates name, and writes env, JSON and text files, 0600.
func TestOnceWritesFiles(t *testing.T) {
	g := newGateway(t)
	g.secrets["payments/db"] = `pa$$ "word"`
	g.secrets["payments/config"] = "{\"pool\": 5}\nline two"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "sa-token")
	writeToken(t, tokenFile, "identity-1")
	cfg := Config{
		Gateway:  g.URL,
		Identity: Identity{TokenFile: tokenFile},
		Outputs: []Output{
			{Path: filepath.Join(dir, "token"), Format: FormatText, Template: "{{ .Token }}"},
			{Path: filepath.Join(dir, "app.env"), Format: FormatEnv, Values: map[string]string{
				"OPENAI_API_KEY": "{{ .Token }}", "OPENAI_BASE_URL": "{{ .Gateway }}/v1", "DB_PASSWORD": `{{ secret "payments/db" }}`,
			}},
			{Path: filepath.Join(dir, "secrets.json"), Format: FormatJSON, Values: map[string]string{
				"db": `{{ secret "payments/db" }}`, "config": `{{ secret "payments/config" }}`,
			}},
		},
	}
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wait, err := a.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if wait < 9*time.Minute || wait > 10*time.Minute {
		t.Fatalf("next renewal in %v, want two thirds of 15 minutes", wait)
	}
	if got := readFile(t, filepath.Join(dir, "token")); got != "access-1" {
		t.Fatalf("token file %q", got)
	}
	want := "DB_PASSWORD=\"pa\\$\\$ \\\"word\\\"\"\nOPENAI_API_KEY=access-1\nOPENAI_BASE_URL=" + g.URL + "/v1\n"
	if got := readFile(t, filepath.Join(dir, "app.env")); got != want {
		t.Fatalf("env file\n%s\nwant\n%s", got, want)
	}
	var js map[string]string
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "secrets.json"))), &js); err != nil || js["config"] != g.secrets["payments/config"] || js["db"] != g.secrets["payments/db"] {
		t.Fatalf("json file %v (%v)", js, err)
	}
	if grants, subjects := g.record(); len(grants) != 1 || grants[0] != grantExchange || subjects[0] != "identity-1" {
		t.Fatalf("grants %v, subjects %v", grants, subjects)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

// TestRenewRefreshesUntilTheIdentityRotates: while the projected token is
// the one exchanged, the agent renews with the refresh token (a token with
// a jti is never presented twice); once the platform rotated it, it
// exchanges the new one; a refused refresh falls back to an exchange.
func TestRenewRefreshesUntilTheIdentityRotates(t *testing.T) {
	g := newGateway(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "sa-token")
	writeToken(t, tokenFile, "identity-1")
	a, err := New(Config{Gateway: g.URL, Identity: Identity{TokenFile: tokenFile},
		Outputs: []Output{{Path: filepath.Join(dir, "token"), Format: FormatText, Template: "{{ .Token }}"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := a.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	writeToken(t, tokenFile, "identity-2")
	if _, err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	grants, subjects := g.record()
	if strings.Join(grants, ",") != grantExchange+",refresh_token,refresh_token,"+grantExchange || strings.Join(subjects, ",") != "identity-1,identity-2" {
		t.Fatalf("grants %v, subjects %v", grants, subjects)
	}
	if got := readFile(t, filepath.Join(dir, "token")); got != "access-4" {
		t.Fatalf("token file %q", got)
	}
	// The gateway forgot the refresh token (a revoked family): the agent
	// exchanges again.
	g.mu.Lock()
	clear(g.refreshes)
	g.mu.Unlock()
	if _, err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if grants, _ := g.record(); grants[len(grants)-1] != grantExchange {
		t.Fatalf("after a refused refresh: %v", grants)
	}
}

// TestOnChange: the app is signalled and the command run only when a
// file's contents change; a round that fails writes nothing and keeps the
// files as they were.
func TestOnChange(t *testing.T) {
	g := newGateway(t)
	g.secrets["app/key"] = "v1"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "sa-token")
	writeToken(t, tokenFile, "identity-1")
	marker := filepath.Join(dir, "changed")
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	pidFile := filepath.Join(dir, "app.pid")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.env")
	a, err := New(Config{Gateway: g.URL, Identity: Identity{TokenFile: tokenFile},
		Outputs:  []Output{{Path: out, Format: FormatEnv, Values: map[string]string{"APP_KEY": `{{ secret "app/key" }}`}}},
		OnChange: OnChange{Signal: "USR1", PIDFile: pidFile, Command: []string{"sh", "-c", `echo "$KEYGATE_CHANGED" >> ` + marker}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	signalled := func() bool {
		select {
		case <-sigs:
			return true
		case <-time.After(2 * time.Second):
			return false
		}
	}
	if _, err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if !signalled() {
		t.Fatal("the first write signalled nothing")
	}
	// Same contents: no signal, no command.
	if _, err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sigs:
		t.Fatal("signalled though nothing changed")
	case <-time.After(200 * time.Millisecond):
	}
	g.mu.Lock()
	g.secrets["app/key"] = "v2"
	g.mu.Unlock()
	if _, err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if !signalled() || readFile(t, out) != "APP_KEY=v2\n" {
		t.Fatal("a changed secret was not written and signalled")
	}
	if m, _ := os.ReadFile(marker); strings.Count(string(m), out) != 2 {
		t.Fatalf("the command ran for %q, want twice for %s", m, out)
	}
	// The secret becomes unreadable: the round fails, the file stays.
	g.mu.Lock()
	delete(g.secrets, "app/key")
	g.mu.Unlock()
	if _, err := a.Once(ctx); err == nil || !strings.Contains(err.Error(), "may not read that secret") {
		t.Fatalf("a refused secret: %v", err)
	}
	if readFile(t, out) != "APP_KEY=v2\n" {
		t.Fatal("a failed round changed the file")
	}
}

// TestRunRetriesAndStops: a refused exchange is retried, and Run returns
// when its context ends.
func TestRunRetriesAndStops(t *testing.T) {
	g := newGateway(t)
	g.refuse = "invalid_request"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "sa-token")
	writeToken(t, tokenFile, "identity-1")
	a, err := New(Config{Gateway: g.URL, Identity: Identity{TokenFile: tokenFile},
		Outputs: []Output{{Path: filepath.Join(dir, "token"), Format: FormatText, Template: "{{ .Token }}"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if grants, _ := g.record(); len(grants) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refused exchange was not retried")
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.mu.Lock()
	g.refuse = ""
	g.mu.Unlock()
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "token")); err == nil && strings.HasPrefix(string(b), "access-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the token was never written")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestGitHubActionsIdentity: the agent asks the runner for a token with
// the configured audience, as actions/core does.
func TestGitHubActionsIdentity(t *testing.T) {
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer runner-request-token" || r.URL.Query().Get("audience") != "https://keygate.example" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"value":"github-identity"}`))
	}))
	defer runner.Close()
	g := newGateway(t)
	env := map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": runner.URL + "/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token"}
	a, err := New(Config{Gateway: g.URL, Identity: Identity{GitHubActionsAudience: "https://keygate.example"},
		Outputs: []Output{{Path: filepath.Join(t.TempDir(), "token"), Format: FormatText, Template: "{{ .Token }}"}}},
		Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, subjects := g.record(); len(subjects) != 1 || subjects[0] != "github-identity" {
		t.Fatalf("subjects %v", subjects)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Gateway: "https://keygate.example:8787", Identity: Identity{TokenFile: "/var/run/secrets/tokens/keygate"},
		Outputs: []Output{{Path: "/run/keygate/token", Format: FormatText, Template: "{{ .Token }}"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Gateway = "http://keygate.internal:8787" }, "gateway: keygate.internal:8787 is plain http://"},
		{func(c *Config) { c.Gateway = "ftp://x" }, "gateway: must be the gateway's URL"},
		{func(c *Config) { c.Identity.Command = []string{"gcloud"} }, "identity: set exactly one"},
		{func(c *Config) { c.Identity = Identity{} }, "identity: set exactly one"},
		{func(c *Config) { c.Outputs = nil }, "outputs: list at least one"},
		{func(c *Config) { c.Outputs[0].Path = "token" }, "outputs[0].path: must be an absolute path"},
		{func(c *Config) { c.Outputs[0].Format = "yaml" }, `outputs[0].format: "yaml" must be env, json or text`},
		{func(c *Config) { c.Outputs[0].Template = "{{ .Token " }, "outputs[0].template"},
		{func(c *Config) {
			c.Outputs = append(c.Outputs, Output{Path: "/run/keygate/app.env", Format: FormatEnv, Values: map[string]string{"1BAD": "x"}})
		}, `outputs[1].values: "1BAD" is not an environment variable name`},
		{func(c *Config) { c.Outputs = append(c.Outputs, c.Outputs[0]) }, "outputs[1].path: /run/keygate/token is written by another output too"},
		{func(c *Config) { c.OnChange = OnChange{Signal: "KILL", PID: 1} }, `on_change.signal: "KILL" must be`},
		{func(c *Config) { c.OnChange = OnChange{Signal: "HUP"} }, "on_change: a signal needs exactly one of pid and pid_file"},
		{func(c *Config) { c.OnChange = OnChange{PID: 1} }, "on_change.signal: name the signal"},
	} {
		c := ok
		c.Outputs = append([]Output(nil), ok.Outputs...)
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	// Loopback may be plain http; another host with insecure_http too.
	c := ok
	c.Gateway = "http://127.0.0.1:8787"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Gateway, c.InsecureHTTP = "http://keygate.internal:8787", true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvLine(t *testing.T) {
	for v, want := range map[string]string{
		"kg_live_abc":          "K=kg_live_abc\n",
		"https://x.example/v1": "K=https://x.example/v1\n",
		"a b":                  "K=\"a b\"\n",
		`$HOME "q" \ ` + "`x`": "K=\"\\$HOME \\\"q\\\" \\\\ \\`x\\`\"\n",
		"":                     "K=\n",
	} {
		if got, err := envLine("K", v); err != nil || got != want {
			t.Errorf("envLine(%q) = %q, %v; want %q", v, got, err, want)
		}
	}
	if _, err := envLine("K", "two\nlines"); err == nil || !strings.Contains(err.Error(), "format json") {
		t.Fatalf("a line break: %v", err)
	}
}
