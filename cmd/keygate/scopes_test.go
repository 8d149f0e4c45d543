package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestScopesNeverWiden: a key made for models (the README's example)
// reaches no passthrough service; a service needs --allow-service, and a
// token exchanged for a key reaches it only when its scope names it or
// names nothing. Token exchange refuses a scope wider than the key's with
// RFC 8693 invalid_scope instead of minting a token that claims it, and a
// refresh after the key's allowances narrowed is refused.
func TestScopesNeverWiden(t *testing.T) {
	var billingCalls atomic.Int64
	billing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		billingCalls.Add(1)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer billing.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.Services = map[string]config.Service{
		"billing": {BaseURL: billing.URL, Secret: "billing/api-key", Auth: "bearer", AllowPrivate: true},
	}
	in := start(t, cfg, "")
	in.register(newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{}))
	in.mustCLI(map[string]string{"V": canary("billing")}, "", "secret", "put", "billing/api-key", "--from-env", "V")
	get := func(cred string) (int, string) {
		req, _ := http.NewRequest("GET", in.addrs.Gateway+"/proxy/billing/v1/invoices", nil)
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// The README's example key: any gpt-4o model, and no service.
	readme := in.createKey("--name", "openclaw-laptop", "--allow-model", "gpt-4o*", "--allow-model", "claude-*", "--expires", "30d")
	if st, b := get(readme); st != 403 || !strings.Contains(b, "service_not_allowed") || !strings.Contains(b, "--allow-service billing") {
		t.Fatalf("a model-scoped key on a passthrough service: %d %s", st, b)
	}
	_, errOut, err := in.cli(nil, "", "key", "create", "--name", "shown", "--allow-model", "gpt-4o*")
	if err != nil || !strings.Contains(errOut, "reaches no passthrough service") {
		t.Fatalf("key create does not say the key reaches no service: %v %q", err, errOut)
	}
	if out := in.mustCLI(nil, "", "key", "show", "openclaw-laptop"); !strings.Contains(out, "Allowed services:   none (passthrough refused)") {
		t.Fatalf("key show: %s", out)
	}

	key := in.createKey("--name", "narrow", "--allow-model", "gpt-4o-mini", "--allow-service", "billing")
	if st, b := get(key); st != 200 {
		t.Fatalf("a key that names the service: %d %s", st, b)
	}
	xchg := func(scope string) (int, tokenAnswer) {
		return exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "subject_token": {key}, "scope": {scope}})
	}
	for _, wide := range []string{"model:gpt-4o", "model:gpt-4o*", "model:*", "service:stripe", "service:billing model:gpt-4o"} {
		if code, a := xchg(wide); code != 400 || a.Error != "invalid_scope" || a.AccessToken != "" {
			t.Fatalf("scope %q, wider than the key's: %d %+v", wide, code, a)
		}
	}
	code, a := xchg("model:gpt-4o-mini")
	if code != 200 || a.Scope != "model:gpt-4o-mini" {
		t.Fatalf("a scope inside the key's: %d %+v", code, a)
	}
	// A token narrowed to a model reaches no service.
	if st, b := get(a.AccessToken); st != 403 || !strings.Contains(b, "service_not_allowed") {
		t.Fatalf("a model-scoped token on the service: %d %s", st, b)
	}
	code, svcTok := xchg("service:billing")
	if code != 200 || svcTok.Scope != "service:billing" {
		t.Fatalf("a service scope: %d %+v", code, svcTok)
	}
	if st, b := get(svcTok.AccessToken); st != 200 {
		t.Fatalf("a token scoped to the service: %d %s", st, b)
	}
	if st, b := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", svcTok.AccessToken, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); st != 200 {
		t.Fatalf("a token scoped to a service still uses the key's models: %d %s", st, b)
	}

	// The key loses the service: it is refused at once, and its token's
	// refresh, whose scope names the service, is refused too.
	in.mustCLI(nil, "", "key", "update", "narrow", "--clear-allow-services")
	deadline := time.Now().Add(time.Second)
	for {
		st, _ := get(key)
		if st == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a key whose service was taken away still reaches it: %d", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, ref := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {svcTok.RefreshToken}})
	if code != 400 || ref.Error != "invalid_grant" {
		t.Fatalf("refreshing a token whose scope the key no longer allows: %d %+v", code, ref)
	}
	if n := billingCalls.Load(); n != 2 {
		t.Fatalf("the service saw %d calls, want the 2 allowed", n)
	}
}
