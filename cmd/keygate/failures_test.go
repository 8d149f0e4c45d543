package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestUpstreamFailures: an unreachable provider is a 502, a silent one a 504,
// and a provider's own error passes through with the real key scrubbed.
func TestUpstreamFailures(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Upstream.ResponseHeaderTimeout = 500 * time.Millisecond
	in := start(t, cfg, "")

	// A port with nothing listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	hangKey, echoKey, limitKey := canary("hang"), canary("echo"), canary("limited")
	hang := fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: hangKey, Hang: true})
	hangSrv := httptest.NewServer(hang)
	// The echo upstream accepts a different key, so keygate's key is refused and echoed back in full.
	echo := fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: "test-some-other-key", EchoKeyInErrors: true})
	echoSrv := httptest.NewServer(echo)
	limited := fakeprovider.NewAnthropic(fakeprovider.Options{APIKey: limitKey, FailStatus: 429})
	limitedSrv := httptest.NewServer(limited)
	t.Cleanup(func() { hang.Close(); hangSrv.Close(); echoSrv.Close(); limitedSrv.Close() })

	env := map[string]string{"K_DEAD": canary("dead"), "K_HANG": hangKey, "K_ECHO": echoKey, "K_LIM": limitKey}
	in.mustCLI(env, "", "provider", "add", "dead", "--base-url", dead, "--api-key-env", "K_DEAD")
	in.mustCLI(env, "", "provider", "add", "hang", "--base-url", hangSrv.URL+"/v1", "--api-key-env", "K_HANG")
	in.mustCLI(env, "", "provider", "add", "echo", "--base-url", echoSrv.URL+"/v1", "--api-key-env", "K_ECHO")
	in.mustCLI(env, "", "provider", "add", "anthropic", "--base-url", limitedSrv.URL, "--api-key-env", "K_LIM")
	key := in.createKey("--name", "app")
	chat := in.addrs.Gateway + "/v1/chat/completions"
	req := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}

	st, b := postJSON(t, chat, key, req("dead/gpt-4o-mini"))
	if st != http.StatusBadGateway || !strings.Contains(b, `could not reach upstream provider \"dead\"`) || strings.Contains(b, "127.0.0.1") {
		t.Fatalf("unreachable upstream: %d %s", st, b)
	}
	st, b = postJSON(t, chat, key, req("hang/gpt-4o-mini"))
	if st != http.StatusGatewayTimeout || !strings.Contains(b, "did not answer in time") || strings.Contains(b, "127.0.0.1") {
		t.Fatalf("silent upstream: %d %s", st, b)
	}
	st, b = postJSON(t, chat, key, req("echo/gpt-4o-mini"))
	if st != http.StatusUnauthorized || strings.Contains(b, echoKey) || !strings.Contains(b, "[REDACTED]") || !strings.Contains(b, "Incorrect API key provided") {
		t.Fatalf("echoed key must be scrubbed from the upstream's own error: %d %s", st, b)
	}
	// The upstream's own 429 passes through in its dialect with its retry-after.
	r, _ := http.NewRequest("POST", in.addrs.Gateway+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`))
	r.Header.Set("x-api-key", key)
	r.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ae struct {
		Type  string
		Error struct{ Type string }
	}
	json.Unmarshal(body, &ae)
	if resp.StatusCode != 429 || ae.Error.Type != "rate_limit_error" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upstream 429: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	// keygate keeps serving after all of it.
	if st, _ := postJSON(t, chat, key, req("echo/gpt-4o-mini")); st != 401 {
		t.Fatalf("got %d", st)
	}
}

// TestCanaryKeysNeverLeak stores upstream keys through both CLI paths, drives
// traffic (success, denials, upstream errors that echo the key), then searches
// every place a key could leak: logs, stdout, admin API answers, client
// answers, and every file in the data directory (database, WAL, master key).
func TestCanaryKeysNeverLeak(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{EchoKeyInErrors: true}, fakeprovider.Options{EchoKeyInErrors: true})
	in.register(up)
	key := in.createKey("--name", "app")
	rec := &recorder{}
	client := &http.Client{Transport: rec}
	send := func(url, body string, hdr ...string) {
		r, _ := http.NewRequest("POST", url, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+key)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(r)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	gw := in.addrs.Gateway
	send(gw+"/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	send(gw+"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	send(gw+"/v1/chat/completions", `{"model":"not-served","messages":[]}`)
	// A client trying to smuggle the Authorization header out through Connection.
	send(gw+"/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[]}`, "Connection", "Authorization")
	// Admin API answers about providers.
	var adminOut bytes.Buffer
	for _, args := range [][]string{{"provider", "list"}, {"provider", "show", "openai"}, {"--json", "provider", "list"}, {"key", "list"}} {
		adminOut.WriteString(in.mustCLI(nil, "", args...))
	}
	// Upstreams that refuse keygate's key echo it in full; keygate must scrub it.
	in.mustCLI(map[string]string{"WRONG": canary("wrong")}, "", "provider", "add", "wrong", "--base-url", up.openaiURL, "--api-key-env", "WRONG")
	send(gw+"/v1/chat/completions", `{"model":"wrong/gpt-4o-mini","messages":[]}`)
	in.stop()

	dataFiles := filesUnder(t, cfg.DataDir)
	if len(dataFiles) == 0 {
		t.Fatal("no data files to search")
	}
	wal, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*-wal"))
	t.Logf("searched %d bytes of data files (WAL files: %v)", len(dataFiles), wal)
	places := map[string]string{
		"stdout": in.stdout.String(), "logs": in.stderr.String(), "admin answers": adminOut.String(),
		"client answers": rec.String(), "data files": string(dataFiles),
	}
	for _, k := range []string{up.openaiKey, up.anthropicKey} {
		for where, text := range places {
			if strings.Contains(text, k) {
				t.Errorf("an upstream key appears in %s", where)
			}
		}
	}
	if !strings.Contains(rec.String(), "[REDACTED]") {
		t.Error("the echoing upstream's error should have reached the client scrubbed")
	}
	if strings.Contains(in.stderr.String(), key) {
		t.Error("the keygate key appears in the logs")
	}
	if !strings.Contains(in.stderr.String(), "gateway request") {
		t.Error("expected access-log lines to search")
	}
	fi, err := os.Stat(in.cfg.MasterKeyPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key file must be 0600: %v %v", fi.Mode(), err)
	}
}
