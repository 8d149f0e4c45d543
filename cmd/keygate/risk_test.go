package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/geoip/geoiptest"
	"github.com/keygate/keygate/internal/policy"
)

// TestRiskRulesAndStepUp: a key used in Berlin and minutes later from
// Sydney trips impossible travel and must step up; its owner completes a
// one-time password, gets a token carrying amr ["otp"], and that token
// passes. A country on the deny list is refused outright.
func TestRiskRulesAndStepUp(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Risk.GeoIPDatabase = geoiptest.WriteDB(t, map[string]policy.Location{
		"81.2.0.0/16":     {Country: "DE", Lat: 52.52, Lon: 13.40, HasCoords: true},
		"1.128.0.0/11":    {Country: "AU", Lat: -33.87, Lon: 151.21, HasCoords: true},
		"175.45.176.0/22": {Country: "KP", Lat: 39.03, Lon: 125.75, HasCoords: true},
	})
	cfg.Risk.DenyCountries = []string{"KP"}
	// The test client stands behind a proxy on loopback that says where
	// each request comes from.
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "traveller")
	gw := in.addrs.Gateway
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	from := func(cred, addr string) (int, string) {
		return postJSON(t, gw+"/v1/chat/completions", cred, chat, "X-Forwarded-For", addr)
	}

	if c, body := from(key, "81.2.3.4"); c != 200 {
		t.Fatalf("from Berlin: %d %s", c, body)
	}
	c, body := from(key, "1.130.1.1")
	if c != 401 || !strings.Contains(body, "step_up_required") || !strings.Contains(body, "km") {
		t.Fatalf("from Sydney minutes later: %d %s", c, body)
	}
	n := up.openai.RequestCount()

	// The owner enrolls a one-time password and steps up with the CLI.
	var enr adminapi.TOTPEnrollment
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "totp", "traveller"), &enr)
	if enr.Secret == "" || !strings.HasPrefix(enr.URL, "otpauth://") {
		t.Fatalf("enrollment: %+v", enr)
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenAnswer
	decodeJSON(t, in.mustCLI(map[string]string{"MY_KEY": key}, "", "--json", "token", "issue", "--key-env", "MY_KEY", "--totp", code, "--gateway", gw), &tok)
	form := url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "totp": {code}}
	if c, body := from(tok.AccessToken, "1.130.1.1"); c != 200 {
		t.Fatalf("the stepped-up token from Sydney: %d %s", c, body)
	}
	if up.openai.RequestCount() != n+1 {
		t.Fatal("the step-up refusal reached the upstream")
	}
	// A one-time password works once.
	if st, r := exchange(t, gw, form); st != 400 || r.Error != "invalid_grant" {
		t.Fatalf("the same one-time password again: %d %+v", st, r)
	}
	wrong := url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "totp": {"000000"}}
	if code == "000000" {
		wrong.Set("totp", "111111")
	}
	if st, _ := exchange(t, gw, wrong); st != 400 {
		t.Fatalf("a wrong one-time password: %d", st)
	}

	// A denied country is refused, second factor or not.
	if c, body := from(tok.AccessToken, "175.45.177.1"); c != 403 || !strings.Contains(body, "risk_denied") {
		t.Fatalf("from a denied country: %d %s", c, body)
	}
	deadline := time.Now().Add(3 * time.Second) // logs are written in batches
	for !strings.Contains(in.stderr.String(), "impossible-travel") || !strings.Contains(in.stderr.String(), "risk rules flagged a request") {
		if time.Now().After(deadline) {
			t.Fatal("the risk decisions were not recorded with their reasons")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRiskHistorySurvivesRestart: what keygate learned of a key's places
// is kept across a restart, so the first request after it is still judged
// against the key's history.
func TestRiskHistorySurvivesRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Risk.GeoIPDatabase = geoiptest.WriteDB(t, map[string]policy.Location{
		"81.2.0.0/16":  {Country: "DE", Lat: 52.52, Lon: 13.40, HasCoords: true},
		"1.128.0.0/11": {Country: "AU", Lat: -33.87, Lon: 151.21, HasCoords: true},
	})
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "homebody")
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	if c, body := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, chat, "X-Forwarded-For", "81.2.3.4"); c != 200 {
		t.Fatalf("from Berlin: %d %s", c, body)
	}
	admin := in.admin
	in.stop()
	again := start(t, cfg, admin)
	c, body := postJSON(t, again.addrs.Gateway+"/v1/chat/completions", key, chat, "X-Forwarded-For", "1.130.1.1")
	if c != 401 || !strings.Contains(body, "step_up_required") {
		t.Fatalf("from Sydney right after a restart: %d %s", c, body)
	}
}

// TestAlertRequiresStepUp: an alert whose rule is mapped to the step-up
// action makes every later request of the key need a token minted with a
// one-time password, on the next request; resuming the key lifts it.
func TestAlertRequiresStepUp(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Risk.NewNetwork = "allow" // recorded and alerted, not refused by the rule itself
	cfg.Alerts.Actions = map[string]string{policy.RuleNewNetwork: "step-up"}
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "roamer")
	gw := in.addrs.Gateway
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	from := func(cred, addr string) (int, string) {
		return postJSON(t, gw+"/v1/chat/completions", cred, chat, "X-Forwarded-For", addr)
	}
	if c, body := from(key, "198.51.100.7"); c != 200 {
		t.Fatalf("first use: %d %s", c, body)
	}
	// A new network: the rule allows the request and raises an alert,
	// whose action requires a second factor from now on.
	if c, body := from(key, "203.0.113.9"); c != 200 {
		t.Fatalf("from a new network: %d %s", c, body)
	}
	n := up.openai.RequestCount()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, body := from(key, "198.51.100.7")
		if c == 401 && strings.Contains(body, "step_up_required") && strings.Contains(body, "alert") {
			break
		}
		if c != 200 || time.Now().After(deadline) {
			t.Fatalf("after the alert: %d %s", c, body)
		}
		n = up.openai.RequestCount()
		time.Sleep(20 * time.Millisecond)
	}
	if up.openai.RequestCount() != n {
		t.Fatal("a request refused for step-up reached the upstream")
	}
	var k struct {
		StepUpUntil *time.Time `json:"step_up_until"`
	}
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "show", "roamer"), &k)
	if k.StepUpUntil == nil || k.StepUpUntil.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("key shows step_up_until %v, want about a day ahead", k.StepUpUntil)
	}

	// The holder steps up with a one-time password; the token passes.
	var enr adminapi.TOTPEnrollment
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "totp", "roamer"), &enr)
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenAnswer
	decodeJSON(t, in.mustCLI(map[string]string{"MY_KEY": key}, "", "--json", "token", "issue", "--key-env", "MY_KEY", "--totp", code, "--gateway", gw), &tok)
	if c, body := from(tok.AccessToken, "198.51.100.7"); c != 200 {
		t.Fatalf("the stepped-up token: %d %s", c, body)
	}
	// A token without the second factor does not.
	var plain tokenAnswer
	decodeJSON(t, in.mustCLI(map[string]string{"MY_KEY": key}, "", "--json", "token", "issue", "--key-env", "MY_KEY", "--gateway", gw), &plain)
	if c, body := from(plain.AccessToken, "198.51.100.7"); c != 401 || !strings.Contains(body, "step_up_required") {
		t.Fatalf("a token without a second factor: %d %s", c, body)
	}
	var evs struct {
		Events []json.RawMessage `json:"events"`
	}
	deadline = time.Now().Add(3 * time.Second) // the trail is written in batches
	for {
		decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "key.step_up_required"), &evs)
		if len(evs.Events) == 1 {
			break
		}
		if len(evs.Events) > 1 || time.Now().After(deadline) {
			t.Fatalf("%d key.step_up_required events on the audit trail, want 1", len(evs.Events))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Resuming the key lifts the requirement.
	in.mustCLI(nil, "", "key", "resume", "roamer")
	deadline = time.Now().Add(3 * time.Second)
	for {
		c, body := from(key, "198.51.100.7")
		if c == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after resume: %d %s", c, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
