package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestStalledClientsAreCutOff: a client that sends its headers and then
// stalls its body, or stalls half-way through its headers, is cut off
// after client.read_body_timeout or client.read_header_timeout, on both
// listeners, before any authentication (/oauth/token, /oauth/revoke) and
// after it; a stream that lasts longer than those timeouts still runs to
// its end.
func TestStalledClientsAreCutOff(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Client.ReadBodyTimeout = 300 * time.Millisecond
	cfg.Client.ReadHeaderTimeout = 300 * time.Millisecond
	in := start(t, cfg, "")
	in.register(newUpstreams(t, fakeprovider.Options{Chunks: 10, ChunkDelay: 100 * time.Millisecond}, fakeprovider.Options{}))
	key := in.createKey("--name", "slow")
	gw, _ := url.Parse(in.addrs.Gateway)
	adm, _ := url.Parse(in.addrs.Admin)

	// stall sends the start of a request and waits for keygate to answer or
	// close; it returns the status line, "" for a bare close.
	stall := func(host, start string) (string, time.Duration) {
		t.Helper()
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		began := time.Now()
		if _, err := io.WriteString(c, start); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("%s: keygate neither answered nor closed the connection: %v", strings.SplitN(start, "\r\n", 2)[0], err)
		}
		return strings.TrimSpace(line), time.Since(began)
	}
	body := func(method, path, ctype, auth, partial string) string {
		h := method + " " + path + " HTTP/1.1\r\nHost: keygate\r\nContent-Type: " + ctype + "\r\nContent-Length: 4096\r\n"
		if auth != "" {
			h += "Authorization: Bearer " + auth + "\r\n"
		}
		return h + "\r\n" + partial
	}
	for _, tc := range []struct {
		name, host, start string
	}{
		{"token endpoint", gw.Host, body("POST", "/oauth/token", "application/x-www-form-urlencoded", "", "grant_type=refresh_token&refresh_token=")},
		{"revocation endpoint", gw.Host, body("POST", "/oauth/revoke", "application/x-www-form-urlencoded", "", "token=kg_")},
		{"chat, authenticated", gw.Host, body("POST", "/v1/chat/completions", "application/json", key, `{"model":"gpt-4o-mini","messages":[`)},
		{"chat, no key", gw.Host, body("POST", "/v1/chat/completions", "application/json", "", `{"model":`)},
		{"admin API", adm.Host, body("POST", "/api/v1/keys", "application/json", in.admin, `{"name":`)},
	} {
		line, took := stall(tc.host, tc.start)
		if took > 5*time.Second {
			t.Fatalf("%s: a stalled body held the connection for %v", tc.name, took)
		}
		if line != "" && !strings.HasPrefix(line, "HTTP/1.1 408") && !strings.HasPrefix(line, "HTTP/1.1 4") {
			t.Fatalf("%s: a stalled body was answered %q", tc.name, line)
		}
		t.Logf("%s: stalled body cut off after %v (%q)", tc.name, took.Round(time.Millisecond), line)
	}
	// Headers that stop half-way.
	for _, host := range []string{gw.Host, adm.Host} {
		if _, took := stall(host, "POST /oauth/token HTTP/1.1\r\nHost: keygate\r\nContent-"); took > 5*time.Second {
			t.Fatalf("stalled headers held %s for %v", host, took)
		}
	}
	// A stream of about a second, three times the body timeout, runs to
	// its end.
	req, _ := http.NewRequest("POST", in.addrs.Gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), "data: [DONE]") {
		t.Fatalf("a long stream: %d %v, ends with %q", resp.StatusCode, err, b[max(0, len(b)-60):])
	}
}
