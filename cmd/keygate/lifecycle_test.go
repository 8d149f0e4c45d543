package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestSecondStartReusesEverything: the data dir, master key, database, admin
// credential and keys all survive a restart, and no new credential is printed.
func TestSecondStartReusesEverything(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	first := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	first.register(up)
	key := first.createKey("--name", "app")
	if st, b := postJSON(t, first.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[]}`); st != 200 {
		t.Fatalf("first run: %d %s", st, b)
	}
	mk, _ := os.ReadFile(cfg.MasterKeyPath())
	first.stop()

	second := start(t, cfg, first.admin)
	if strings.Contains(second.stdout.String(), "kg_admin_") {
		t.Fatal("a second start must not print a new admin credential")
	}
	if mk2, _ := os.ReadFile(cfg.MasterKeyPath()); string(mk2) != string(mk) {
		t.Fatal("the master key changed across a restart")
	}
	if st, b := postJSON(t, second.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[]}`); st != 200 {
		t.Fatalf("key from the first run: %d %s", st, b)
	}
	if out := second.mustCLI(nil, "", "key", "list"); !strings.Contains(out, "app") {
		t.Fatalf("key list after restart: %s", out)
	}
	// The use in the first run was written at its shutdown.
	var shown struct {
		LastUsedAt *time.Time `json:"last_used_at"`
	}
	if err := json.Unmarshal([]byte(second.mustCLI(nil, "", "--json", "key", "show", "app")), &shown); err != nil || shown.LastUsedAt == nil {
		t.Fatalf("last_used_at after a use and a restart: %+v %v", shown, err)
	}
	if _, _, err := second.cli(map[string]string{"KEYGATE_ADMIN_TOKEN": "kg_admin_notreal"}, "", "key", "list"); err == nil {
		t.Fatal("the admin API must refuse an invalid credential")
	}
}

// TestAdminAPIRequiresCredential: no admin route answers without one, and
// the console's pages show nothing but the way to sign in.
func TestAdminAPIRequiresCredential(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	in.createKey("--name", "key-name-only-a-signed-in-user-sees")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/", "/keys", "/audit", "/vault"} {
		resp, err := noRedirect.Get(in.addrs.Admin + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 || strings.Contains(string(body), "key-name-only-a-signed-in-user-sees") {
			t.Errorf("console %s without a session: %d, and the page shows a key", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/api/v1/keys", "/api/v1/providers", "/api/v1/whoami", "/api/v1/nope"} {
		resp, err := http.Get(in.addrs.Admin + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a credential: %d", p, resp.StatusCode)
		}
	}
}

// TestGracefulShutdownFinishesStreams: a stream in flight when keygate is told
// to stop runs to its end; new connections are refused afterwards.
func TestGracefulShutdownFinishesStreams(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{ChunkDelay: 150 * time.Millisecond, Chunks: 6}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "app")

	req, _ := http.NewRequest("POST", in.addrs.Gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	firstEvent := time.Now()
	if !sc.Scan() {
		t.Fatal("no first event")
	}
	go in.cancel() // stop keygate while the stream runs
	var done bool
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			done = true
		}
	}
	if !done {
		t.Fatal("the in-flight stream was cut off by shutdown")
	}
	t.Logf("stream finished %v after the stop signal", time.Since(firstEvent))
	select {
	case err := <-in.done:
		in.stopped = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("keygate did not exit after the stream ended")
	}
	c := &http.Client{Timeout: 2 * time.Second}
	if _, err := c.Get(in.addrs.Gateway + "/healthz"); err == nil {
		t.Fatal("new connections must be refused after shutdown")
	}
}

// TestStreamingIsNotBuffered: the first SSE event reaches the client while the
// upstream is still producing the rest.
func TestStreamingIsNotBuffered(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	up := newUpstreams(t, fakeprovider.Options{ChunkDelay: 300 * time.Millisecond, Chunks: 5}, fakeprovider.Options{ChunkDelay: 300 * time.Millisecond, Chunks: 5})
	in.register(up)
	key := in.createKey("--name", "app")
	for _, tc := range []struct{ path, body, last string }{
		{"/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[]}`, "data: [DONE]"},
		{"/v1/messages", `{"model":"claude-sonnet-4-5","stream":true,"max_tokens":9,"messages":[]}`, "event: message_stop"},
	} {
		req, _ := http.NewRequest("POST", in.addrs.Gateway+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		var lines []string
		var sawFirstBeforeEnd bool
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) == 1 {
				// The upstream needs 5 x 300ms more to finish; had keygate buffered,
				// the first line would only arrive with the last.
				sawFirstBeforeEnd = !strings.Contains(strings.Join(lines, "\n"), tc.last)
			}
		}
		resp.Body.Close()
		if !sawFirstBeforeEnd || !strings.Contains(strings.Join(lines, "\n"), tc.last) {
			t.Fatalf("%s: stream was not delivered incrementally: %v", tc.path, lines)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("%s: content type %q", tc.path, ct)
		}
	}
}

// TestTLS: --tls-self-signed serves HTTPS on both listeners, and a client that
// trusts the written certificate talks to both.
func TestTLS(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.TLS.SelfSigned = true
	in := start(t, cfg, "")
	if !strings.HasPrefix(in.addrs.Gateway, "https://") || !strings.HasPrefix(in.addrs.Admin, "https://") {
		t.Fatalf("addresses %+v", in.addrs)
	}
	certPath := filepath.Join(cfg.DataDir, "tls", "self-signed.crt")
	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(in.addrs.Gateway + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := http.Get("http://" + strings.TrimPrefix(in.addrs.Gateway, "https://") + "/healthz"); err == nil {
		// Go's server answers plain HTTP on a TLS port with a 400, never the API.
		t.Log("plain HTTP to the TLS port got an answer (a 400 from the TLS server is expected)")
	}
	out := in.mustCLI(map[string]string{"KEYGATE_ADMIN_CA": certPath}, "", "provider", "list")
	_ = out
}

// TestRefusesPublicPlainHTTP: a non-loopback address without TLS is refused
// with the reason, unless --allow-plain-http says a TLS proxy is in front.
func TestRefusesPublicPlainHTTP(t *testing.T) {
	dir := t.TempDir()
	_, _, err := func() (string, string, error) {
		var out, errb strings.Builder
		err := run(context.Background(), []string{"serve", "--data-dir", dir, "--listen", "0.0.0.0:0"},
			func(string) string { return "" }, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), err
	}()
	if err == nil || !strings.Contains(err.Error(), "tls") || !strings.Contains(err.Error(), "allow_plain_http") {
		t.Fatalf("want a refusal that says why and how, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keygate.db")); err == nil {
		t.Fatal("a refused start must not create anything")
	}
}

// TestLostAdminCredentialRecovery: an operator with the data directory can
// issue a new admin credential while keygate runs; without the master key
// nothing is created.
func TestLostAdminCredentialRecovery(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	var out, errb strings.Builder
	err := run(context.Background(), []string{"admin", "token", "create", "--data-dir", cfg.DataDir, "--name", "ops"},
		func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	if err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, "kg_admin_") {
		t.Fatalf("printed %q", tok)
	}
	// The running keygate accepts the new credential at once.
	in.mustCLI(map[string]string{"KEYGATE_ADMIN_TOKEN": tok}, "", "key", "list")

	empty := t.TempDir()
	out.Reset()
	errb.Reset()
	err = run(context.Background(), []string{"admin", "token", "create", "--data-dir", empty},
		func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("without a master key: %v", err)
	}
	if files, _ := os.ReadDir(empty); len(files) != 0 {
		t.Fatalf("a refused recovery created %d files", len(files))
	}
}
