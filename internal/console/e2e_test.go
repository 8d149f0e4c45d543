package console_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withProvider runs a fake OpenAI and adds it to s as provider "openai".
func withProvider(t *testing.T, s *server) {
	t.Helper()
	upstreamKey := "test-fake-upstream-" + randomHex(8)
	fake := httptest.NewServer(fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: upstreamKey}))
	t.Cleanup(fake.Close)
	s.api(t, "POST", "/providers", adminapi.CreateProviderRequest{Name: "openai", Dialect: "openai", BaseURL: fake.URL + "/v1",
		Models: fakeprovider.DefaultOpenAIModels(), APIKey: upstreamKey, Default: true}, &adminapi.Provider{})
}

// TestConsoleEndToEnd signs in, creates a key and reads its secret once,
// sends a request through the gateway and finds it in the charts and the
// trail, and suspends the key from an alert.
func TestConsoleEndToEnd(t *testing.T) {
	ctx := browser(t, 1280, 900)
	s := serve(t, "")
	withProvider(t, s)
	signInWithToken(t, ctx, s, s.token)

	// Create a key; its secret is on the page that answers the form, once.
	var secret string
	run(t, ctx, "create a key",
		chromedp.Navigate(s.admin+"/keys/new"),
		chromedp.WaitVisible(chromedp.CSS(`#name`)),
		chromedp.SendKeys(chromedp.CSS(`#name`), "e2e-agent"),
		chromedp.SendKeys(chromedp.CSS(`#budget`), "50/day"),
		chromedp.Submit(chromedp.CSS(`#name`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="secret"]`)),
		chromedp.Func(readInto(&secret, chromedp.Text(chromedp.CSS(`[data-testid="secret"]`)))),
	)
	if !strings.HasPrefix(secret, "kg_live_") {
		t.Fatalf("the new key's page shows %q, want the kg_live_ secret", secret)
	}
	var keys adminapi.KeyList
	s.api(t, "GET", "/keys", nil, &keys)
	if len(keys.Keys) != 1 {
		t.Fatalf("keys: %+v", keys.Keys)
	}
	keyID := keys.Keys[0].ID
	var html, storage, loc string
	run(t, ctx, "open the key's page",
		chromedp.Navigate(s.admin+"/keys/"+keyID),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="key-state"]`)),
		chromedp.Func(readInto(&html, chromedp.OuterHTML(chromedp.CSS(`html`)))),
		chromedp.Func(readInto(&storage, chromedp.Evaluate[any](`JSON.stringify(localStorage)+JSON.stringify(sessionStorage)+document.cookie`))),
		chromedp.Func(readInto(&loc, chromedp.Location())),
	)
	if strings.Contains(html, secret) || strings.Contains(storage, secret) || strings.Contains(loc, secret) {
		t.Fatal("the key's secret is shown again after creation")
	}
	if strings.Contains(storage, "kg_session") {
		t.Fatal("the session is readable by the page's script")
	}
	if !strings.Contains(html, "Spend at most $50.00 per day.") {
		t.Fatal("the key's page does not say its budget in plain words")
	}

	// A request through the gateway shows in the overview and the trail.
	req, _ := http.NewRequest("POST", s.gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("gateway answered %d", resp.StatusCode)
	}
	var requests string
	var canvases int
	deadline := time.Now().Add(20 * time.Second)
	for {
		run(t, ctx, "open the overview",
			chromedp.Navigate(s.admin+"/"),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="requests-hour"]`)),
			chromedp.Func(readInto(&requests, chromedp.Text(chromedp.CSS(`[data-testid="requests-hour"]`)))),
		)
		if requests != "0" || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if requests != "1" {
		t.Fatalf("the overview counts %s requests in the last hour, want 1", requests)
	}
	run(t, ctx, "see the charts drawn",
		chromedp.WaitVisible(chromedp.CSS(`.chart canvas`)),
		chromedp.Func(readInto(&canvases, chromedp.Evaluate[any](`document.querySelectorAll('.chart canvas').length`))),
	)
	if canvases < 4 {
		t.Fatalf("%d charts drawn, want 4", canvases)
	}
	var trail string
	run(t, ctx, "find the request on the trail",
		chromedp.Navigate(s.admin+"/audit?type=request"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-events"]`)),
		chromedp.Func(readInto(&trail, chromedp.Text(chromedp.CSS(`[data-testid="audit-events"]`)))),
	)
	if !strings.Contains(trail, keyID) || !strings.Contains(trail, "POST /v1/chat/completions") {
		t.Fatalf("the trail does not show the request:\n%s", trail)
	}
	var verdict string
	run(t, ctx, "verify the trail",
		chromedp.Navigate(s.admin+"/audit"),
		chromedp.Click(chromedp.Search(`//button[text()="Verify the trail"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="verify-result"]`)),
		chromedp.Func(readInto(&verdict, chromedp.Text(chromedp.CSS(`[data-testid="verify-result"] h2`)))),
	)
	if verdict != "The trail is intact" {
		t.Fatalf("verification says %q", verdict)
	}

	// Five wrong one-time passwords raise an alert about the key; suspend
	// it from the alert.
	var enr adminapi.TOTPEnrollment
	s.api(t, "POST", "/keys/"+keyID+"/totp", nil, &enr)
	for i := range 6 {
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {secret},
			"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "totp": {fmt.Sprintf("%06d", 100000+i*7919)}}
		r, err := http.PostForm(s.gateway+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
	}
	var alertText string
	deadline = time.Now().Add(20 * time.Second)
	for {
		var n int
		run(t, ctx, "open the alerts",
			chromedp.Navigate(s.admin+"/alerts"),
			chromedp.WaitReady(chromedp.CSS(`main`)),
			chromedp.Func(readInto(&n, chromedp.Evaluate[any](`document.querySelectorAll('[data-alert]').length`))),
		)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			run(t, ctx, "no alert within 20s", chromedp.WaitVisible(chromedp.CSS(`[data-alert]`)))
		}
		time.Sleep(300 * time.Millisecond)
	}
	run(t, ctx, "suspend the key from the alert",
		chromedp.Func(readInto(&alertText, chromedp.Text(chromedp.CSS(`[data-alert]`)))),
		chromedp.Click(chromedp.Search(`//button[text()="Suspend the key"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	if !strings.Contains(alertText, "otp-brute-force") {
		t.Fatalf("alert: %s", alertText)
	}
	var k adminapi.Key
	s.api(t, "GET", "/keys/"+keyID, nil, &k)
	if k.SuspendedAt == nil {
		t.Fatal("the key is not suspended after Suspend the key")
	}
	var state string
	run(t, ctx, "see the key suspended",
		chromedp.Navigate(s.admin+"/keys/"+keyID),
		chromedp.Func(readInto(&state, chromedp.Text(chromedp.CSS(`[data-testid="key-state"]`)))),
	)
	if state != "suspended" {
		t.Fatalf("the key's page says %q, want suspended", state)
	}
}

// TestDeveloperSeesOnlyTheirTeam: a developer cannot open another team's
// key or the vault page, and the menu does not offer them.
func TestDeveloperSeesOnlyTheirTeam(t *testing.T) {
	ctx := browser(t, 1280, 900)
	s := serve(t, "")
	for _, team := range []string{"alpha", "beta"} {
		s.api(t, "POST", "/teams", map[string]any{"name": team}, &adminapi.Team{})
	}
	var dev adminapi.CreatedUser
	s.api(t, "POST", "/users", adminapi.CreateUserRequest{Name: "dana", Role: "developer", Team: "alpha"}, &dev)
	var other adminapi.CreatedKey
	s.api(t, "POST", "/keys", adminapi.CreateKeyRequest{Name: "beta-service", Team: "beta"}, &other)
	signInWithToken(t, ctx, s, dev.Secret)

	var nav, body string
	run(t, ctx, "read the menu",
		chromedp.Func(readInto(&nav, chromedp.Text(chromedp.CSS(`header nav`)))),
	)
	if strings.Contains(nav, "Vault") || strings.Contains(nav, "Audit") {
		t.Fatalf("a developer's menu offers %q", nav)
	}
	for _, path := range []string{"/keys/" + other.Key.ID, "/vault", "/audit"} {
		run(t, ctx, "open "+path,
			chromedp.Navigate(s.admin+path),
			chromedp.WaitVisible(chromedp.CSS(`.error`)),
			chromedp.Func(readInto(&body, chromedp.Text(chromedp.CSS(`main`)))),
		)
		if strings.Contains(body, "beta-service") || strings.Contains(body, "Key-encryption key") {
			t.Fatalf("%s shows a developer another team's data:\n%s", path, body)
		}
	}
	// Their own team's key list works, and holds no beta key.
	run(t, ctx, "list keys",
		chromedp.Navigate(s.admin+"/keys"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
		chromedp.Func(readInto(&body, chromedp.Text(chromedp.CSS(`main`)))),
	)
	if strings.Contains(body, "beta-service") {
		t.Fatal("a developer's key list shows another team's key")
	}
}
