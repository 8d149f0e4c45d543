package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/adminapi"
)

// TestStepUpLockoutAlerts: wrong one-time passwords for a key's step-up are
// limited. The fifth wrong code locks the key's one-time passwords out: it
// and every later attempt, the right code included, are answered 429 with
// Retry-After; the lockout raises an otp-brute-force alert and every refused
// code is on the audit trail.
func TestStepUpLockoutAlerts(t *testing.T) {
	alerts := make(chan map[string]any, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a map[string]any
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &a)
		alerts <- a
	}))
	defer hook.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.Alerts.Webhook = hook.URL
	cfg.Egress.Allow = []string{"127.0.0.1"} // the receiver runs on loopback
	in := start(t, cfg, "")
	key := in.createKey("--name", "stepper")
	var enr adminapi.TOTPEnrollment
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "totp", "stepper"), &enr)

	exchangeWith := func(code string) (int, string, tokenAnswer) {
		form := url.Values{"grant_type": {grantTE}, "subject_token": {key},
			"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "totp": {code}}
		resp, err := http.PostForm(in.addrs.Gateway+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a tokenAnswer
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, resp.Header.Get("Retry-After"), a
	}
	right := func() string {
		c, err := totp.GenerateCode(enr.Secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := 1; i <= 6; i++ {
		wrong := fmt.Sprintf("%06d", (i*104729)%1000000)
		for wrong == right() {
			wrong = fmt.Sprintf("%06d", (i*104729+1)%1000000)
		}
		code, retry, a := exchangeWith(wrong)
		want := map[bool]int{true: 400, false: 429}[i < 5]
		if code != want || a.Error != "invalid_grant" || (want == 429) != (retry != "") {
			t.Fatalf("wrong code %d: %d %q Retry-After %q, want %d invalid_grant", i, code, a.Error, retry, want)
		}
	}
	if code, retry, a := exchangeWith(right()); code != 429 || retry == "" || a.AccessToken != "" {
		t.Fatalf("the right code during the lockout: %d Retry-After %q %+v", code, retry, a)
	}

	select {
	case a := <-alerts:
		if a["rule"] != "otp-brute-force" || a["severity"] != "high" || !strings.HasPrefix(a["key_id"].(string), "key_") ||
			a["client"] != "127.0.0.1" || !strings.Contains(a["summary"].(string), "5 wrong one-time passwords") {
			t.Fatalf("alert %v, want otp-brute-force for the key", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no otp-brute-force alert within 5 s of the lockout")
	}
	var evs struct {
		Events []struct {
			Type    string   `json:"type"`
			KeyID   string   `json:"key_id"`
			Reasons []string `json:"reasons"`
		} `json:"events"`
	}
	deadline := time.Now().Add(3 * time.Second) // the trail is written in batches
	for {
		decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "otp.refused"), &evs)
		refused := len(evs.Events)
		decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "otp.locked_out"), &evs)
		if refused == 7 && len(evs.Events) == 1 {
			if !strings.Contains(evs.Events[0].Reasons[0], "5 wrong one-time passwords") {
				t.Fatalf("lockout event %+v", evs.Events[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d otp.refused and %d otp.locked_out events on the audit trail, want 7 and 1", refused, len(evs.Events))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
