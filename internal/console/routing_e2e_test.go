package console_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestRoutingHealthEndToEnd: a model alias whose first deployment's
// provider fails. Requests are served by the second; after two failures
// the first one's breaker opens, and the Providers page shows it open with
// the provider's 503 among its recent errors, names the node it is from,
// and shows no provider key.
func TestRoutingHealthEndToEnd(t *testing.T) {
	ctx := browser(t, 1280, 900)
	s := serve(t, `
routing:
  breaker:
    failures: 2
    cooldown: 10m
  deployments:
    - name: primary
      provider: flaky
      model: gpt-4o-mini
    - name: backup
      provider: steady
      model: gpt-4o-mini
  aliases:
    smart:
      deployments: [primary, backup]
`)
	keys := map[string]string{}
	for name, fail := range map[string]int{"flaky": http.StatusServiceUnavailable, "steady": 0} {
		keys[name] = "test-fake-upstream-" + randomHex(8)
		fake := httptest.NewServer(fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: keys[name], FailStatus: fail}))
		t.Cleanup(fake.Close)
		s.api(t, "POST", "/providers", adminapi.CreateProviderRequest{Name: name, Dialect: "openai", BaseURL: fake.URL + "/v1",
			Models: []string{name + "-only"}, APIKey: keys[name]}, &adminapi.Provider{})
	}
	var key adminapi.CreatedKey
	s.api(t, "POST", "/keys", adminapi.CreateKeyRequest{Name: "router"}, &key)
	for i := range 2 {
		req, _ := http.NewRequest("POST", s.gateway+"/v1/chat/completions",
			strings.NewReader(`{"model":"smart","messages":[{"role":"user","content":"hello"}]}`))
		req.Header.Set("Authorization", "Bearer "+key.Secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d through alias smart: %d, want 200 from the backup deployment\n%s", i+1, resp.StatusCode, s.stderr.String())
		}
	}
	var health adminapi.RoutingHealth
	s.api(t, "GET", "/routing/health", nil, &health)
	if health.Node == "" {
		t.Fatalf("routing health names no node: %+v", health)
	}

	signInWithToken(t, ctx, s, s.token)
	var primary, backup, node, html string
	run(t, ctx, "open the providers page",
		chromedp.Navigate(s.admin+"/providers"),
		chromedp.WaitVisible(chromedp.CSS(`[data-alias="smart"]`)),
		chromedp.Func(readInto(&primary, chromedp.Text(chromedp.CSS(`[data-alias="smart"] tr[data-deployment="primary"]`)))),
		chromedp.Func(readInto(&backup, chromedp.Text(chromedp.CSS(`[data-alias="smart"] tr[data-deployment="backup"]`)))),
		chromedp.Func(readInto(&node, chromedp.Text(chromedp.CSS(`[data-testid="health-node"]`)))),
		chromedp.Func(readInto(&html, chromedp.OuterHTML(chromedp.CSS(`html`)))),
	)
	var breaker string
	run(t, ctx, "read the primary deployment's breaker",
		chromedp.Func(readInto(&breaker, chromedp.Text(chromedp.CSS(`tr[data-deployment="primary"] [data-testid="breaker"]`)))),
	)
	if breaker != "open" {
		t.Fatalf("the failing deployment's breaker shows %q, want open:\n%s", breaker, primary)
	}
	if !strings.Contains(primary, "HTTP 503") || !strings.Contains(primary, "Service Unavailable") {
		t.Fatalf("the failing deployment's row does not list the provider's 503:\n%s", primary)
	}
	if !strings.Contains(backup, "closed") || !strings.Contains(backup, "none") {
		t.Fatalf("the healthy deployment's row:\n%s", backup)
	}
	if !strings.Contains(node, health.Node) {
		t.Fatalf("the page does not name the node %s: %q", health.Node, node)
	}
	for name, k := range keys {
		if strings.Contains(html, k) {
			t.Fatalf("the providers page shows provider %s's key", name)
		}
	}
}
