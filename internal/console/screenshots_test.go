package console_test

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate/internal/adminapi"
)

var update = flag.Bool("update", false, "rewrite the console screenshots in docs/console")

// TestScreenshots renders the main pages in Chromium, on a desktop and on a
// phone-sized window; with -update it writes them to docs/console:
//
//	go test ./internal/console -run TestScreenshots -update
func TestScreenshots(t *testing.T) {
	s := serve(t, "")
	withProvider(t, s)
	s.api(t, "POST", "/teams", map[string]any{"name": "payments"}, &adminapi.Team{})
	var key adminapi.CreatedKey
	s.api(t, "POST", "/keys", adminapi.CreateKeyRequest{Name: "checkout-agent", Team: "payments",
		Limits: adminapi.Limits{RPM: 600, Budgets: []adminapi.Budget{{MicroUSD: 20_000_000, Period: "day"}}}}, &key)
	s.api(t, "POST", "/keys", adminapi.CreateKeyRequest{Name: "support-bot", Team: "payments", ExpiresIn: "30d"}, &adminapi.CreatedKey{})
	// An alias, so the providers page shows deployments and their health.
	s.api(t, "POST", "/routing/deployments", map[string]any{"name": "mini", "deployment": map[string]any{"provider": "openai", "model": "gpt-4o-mini"}}, nil)
	s.api(t, "POST", "/routing/deployments", map[string]any{"name": "mini-large", "deployment": map[string]any{"provider": "openai", "model": "gpt-4o"}}, nil)
	s.api(t, "POST", "/routing/aliases", map[string]any{"name": "fast", "alias": map[string]any{"deployments": []string{"mini", "mini-large"}}}, nil)
	for i := range 6 {
		model := "gpt-4o-mini"
		if i == 5 {
			model = "fast"
		}
		if i == 4 {
			model = "not-allowed-model"
		}
		req, _ := http.NewRequest("POST", s.gateway+"/v1/chat/completions", strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+key.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	pages := []struct{ name, path string }{
		{"overview", "/"}, {"keys", "/keys"}, {"key", "/keys/" + key.Key.ID}, {"new-key", "/keys/new"},
		{"providers", "/providers"}, {"people", "/people"}, {"team", "/teams/payments"}, {"audit", "/audit"}, {"alerts", "/alerts"}, {"vault", "/vault"},
	}
	shoot := func(width, height int, suffix string, only map[string]bool) {
		ctx := browser(t, width, height)
		signInWithToken(t, ctx, s, s.token)
		for _, p := range pages {
			if only != nil && !only[p.name] {
				continue
			}
			run(t, ctx, "open "+p.path, chromedp.Navigate(s.admin+p.path), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
			if p.name == "overview" || p.name == "key" {
				run(t, ctx, "charts on "+p.path, chromedp.WaitVisible(chromedp.CSS(`.chart canvas`)))
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
			if err != nil {
				t.Fatalf("screenshot %s: %v", p.path, err)
			}
			if *update {
				if err := os.WriteFile(filepath.Join("..", "..", "docs", "console", p.name+suffix+".png"), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if *update {
		_ = os.MkdirAll(filepath.Join("..", "..", "docs", "console"), 0o755)
	}
	shoot(1280, 900, "", nil)
	shoot(390, 844, "-phone", map[string]bool{"overview": true, "key": true})
}
