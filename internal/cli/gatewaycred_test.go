package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// countingServer counts the requests it gets and answers every one with a
// token answer, as a gateway's /oauth/token would.
func countingServer(t *testing.T, ln net.Listener) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "eyJtest", "refresh_token": "kgr_test", "expires_in": 900})
	}))
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

// redirector answers every request with a 307 to target, which keeps the
// method and body: a client that followed it would resend the key there.
func redirector(t *testing.T, target string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestTokenIssueSendsTheKeyOnlyToTheGateway: `keygate token issue` follows
// no redirect with the key, and sends none over plain HTTP to another
// machine unless --insecure-http says so.
func TestTokenIssueSendsTheKeyOnlyToTheGateway(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	key := "kg_test_" + canary(t)
	h.env["MY_KEY"] = key
	elsewhere, got := countingServer(t, nil)
	gw := redirector(t, elsewhere.URL)
	out, errOut, err := h.run("", "token", "issue", "--key-env", "MY_KEY", "--gateway", gw.URL)
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("a redirecting gateway: %v", err)
	}
	if got.Load() != 0 {
		t.Fatal("the key followed a redirect to another server")
	}
	h.assertNotExposed(key, out, errOut)

	remote, remoteGot := countingServer(t, nonLoopbackListener(t))
	_, _, err = h.run("", "token", "issue", "--key-env", "MY_KEY", "--gateway", remote.URL)
	if err == nil || !strings.Contains(err.Error(), "plain HTTP") || !strings.Contains(err.Error(), "--insecure-http") {
		t.Errorf("a plain-HTTP gateway on another machine: %v", err)
	}
	if remoteGot.Load() != 0 {
		t.Fatal("the key was sent over plain HTTP to another machine")
	}
	out, errOut = h.mustRun("", "--insecure-http", "token", "issue", "--key-env", "MY_KEY", "--gateway", remote.URL)
	if out != "eyJtest\n" || !strings.Contains(errOut, "warning:") || remoteGot.Load() != 1 {
		t.Errorf("--insecure-http: %q %q, %d requests", out, errOut, remoteGot.Load())
	}
}

// TestTokenProxyFollowsNoRedirect: `keygate run --key`'s exchange of its key
// for tokens does not follow a redirect to another server.
func TestTokenProxyFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	elsewhere, got := countingServer(t, nil)
	gw := redirector(t, elsewhere.URL)
	if _, err := startTokenProxy(context.Background(), gw.URL, secret.New("kg_live_run-key-for-test"), ""); err == nil {
		t.Error("the proxy started although the gateway only redirects")
	}
	if got.Load() != 0 {
		t.Fatal("the run's key followed a redirect to another server")
	}
}

// setReportedGateway sets the gateway URL the fake admin API reports.
func (f *fakeAdmin) setReportedGateway(u string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vault.gatewayURL = u
}

// TestRunKeyGatewayIsOnlyTheOneItShouldBe: `keygate run --key` sends its key
// only to a gateway that is keygate's and reachable without crossing a
// network in clear. A listener address keygate reports (0.0.0.0, ::) is
// taken to mean the admin URL's host; a loopback one reported by a keygate
// on another machine is refused, since here it would name this machine.
func TestRunKeyGatewayIsOnlyTheOneItShouldBe(t *testing.T) {
	t.Parallel()
	four := []string{envOpenAIKey, envAnthropicKey, envOpenAIBase, envAnthropicBase}

	t.Run("plain HTTP to another machine", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.mustRun("", "key", "create", "--name", "agents")
		child, file := h.helperCommand(four)
		h.admin.setReportedGateway("http://gateway.test:8787")
		_, _, err := h.run("", h.runArgs([]string{"--key", "agents"}, child)...)
		if err == nil || !strings.Contains(err.Error(), "plain HTTP") || !strings.Contains(err.Error(), "--gateway") {
			t.Errorf("a plain-HTTP gateway on another machine: %v", err)
		}
		if childVars(t, file) != nil || len(h.admin.keys) != 1 {
			t.Fatalf("the command ran (%v) or a key was made (%d keys)", childVars(t, file) != nil, len(h.admin.keys))
		}
		before := h.requestCount()
		_, _, err = h.run("", h.runArgs([]string{"--key", "agents", "--gateway", "http://gateway.test:8787"}, child)...)
		if err == nil || !strings.Contains(err.Error(), "plain HTTP") || h.requestCount() != before {
			t.Errorf("--gateway over plain HTTP to another machine: %v, %d requests", err, h.requestCount()-before)
		}
	})

	t.Run("unspecified address", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.mustRun("", "key", "create", "--name", "agents")
		child, file := h.helperCommand(four)
		h.admin.setReportedGateway("http://0.0.0.0:1")
		h.mustRun("", h.runArgs([]string{"--key", "agents"}, child)...)
		wantVar(t, childVars(t, file), envAnthropicBase, "http://127.0.0.1:1")
		h.admin.setReportedGateway("http://[::]:1")
		h.mustRun("", h.runArgs([]string{"--key", "agents"}, child)...)
		wantVar(t, childVars(t, file), envAnthropicBase, "http://127.0.0.1:1")
	})

	t.Run("keygate on another machine", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		remote := newFakeAdminOn(t, nonLoopbackListener(t))
		h.admin = remote
		h.env[EnvAdminURL], h.env[EnvAdminToken] = remote.srv.URL, remote.token
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(remote.srv.URL, "http://"))
		h.mustRun("", "--insecure-http", "key", "create", "--name", "agents")
		child, file := h.helperCommand(four)

		// A loopback gateway there is not reachable here, and the address
		// would reach whatever listens on this machine.
		local, localGot := countingServer(t, nil)
		h.admin.setReportedGateway(local.URL)
		_, _, err := h.run("", h.runArgs([]string{"--insecure-http", "--key", "agents"}, child)...)
		if err == nil || !strings.Contains(err.Error(), "--gateway") || !strings.Contains(err.Error(), "own machine") {
			t.Errorf("a loopback gateway reported by a keygate elsewhere: %v", err)
		}
		if localGot.Load() != 0 || childVars(t, file) != nil || len(remote.keys) != 1 {
			t.Fatalf("the key went to this machine's server (%d requests), the command ran, or a key was made (%d keys)", localGot.Load(), len(remote.keys))
		}

		h.admin.setReportedGateway("https://[::]:1")
		h.mustRun("", h.runArgs([]string{"--insecure-http", "--key", "agents"}, child)...)
		wantVar(t, childVars(t, file), envAnthropicBase, "https://"+host+":1")
	})
}

func TestReachableGateway(t *testing.T) {
	t.Parallel()
	cases := []struct{ gw, admin, want string }{
		{"http://0.0.0.0:8787", "https://kg.example:8788", "http://kg.example:8787"},
		{"https://[::]:8787", "https://[2001:db8::1]:8788", "https://[2001:db8::1]:8787"},
		{"https://[::]", "https://[2001:db8::1]:8788", "https://[2001:db8::1]"},
		{"http://0.0.0.0:8787", "http://localhost:8788", "http://localhost:8787"},
		{"http://127.0.0.1:8787", "http://localhost:8788", "http://127.0.0.1:8787"},
		{"https://gw.example:8787", "https://kg.example:8788", "https://gw.example:8787"},
		{"http://127.0.0.1:8787", "https://kg.example:8788", ""},
		{"http://[::1]:8787", "https://kg.example:8788", ""},
		{"http://localhost:8787", "https://192.0.2.7:8788", ""},
	}
	for _, c := range cases {
		got, err := reachableGateway(c.gw, c.admin)
		if c.want == "" {
			if err == nil {
				t.Errorf("reachableGateway(%s, %s) = %s, want an error", c.gw, c.admin, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("reachableGateway(%s, %s) = %q, %v; want %q", c.gw, c.admin, got, err, c.want)
		}
	}
}
