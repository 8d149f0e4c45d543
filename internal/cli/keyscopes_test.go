package cli

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

// etlCreate is the scoped key example of `keygate key create --help`.
var etlCreate = []string{"key", "create", "--name", "etl", "--allow-provider", "openai", "--allow-model", "text-embedding-*",
	"--allow-path", "POST /v1/embeddings", "--allow-ip", "10.0.0.0/8", "--allow-ip", "2001:db8::/32",
	"--hours", "mon-fri 08:00-20:00 Europe/Berlin", "--env", "prod"}

// lastCreate returns the body of the latest POST /keys.
func (h *harness) lastCreate() string {
	h.t.Helper()
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	c := h.admin.scopes.creates
	if len(c) == 0 {
		h.t.Fatal("no key creation reached the admin API")
	}
	return c[len(c)-1]
}

// setKey changes the fake admin API's copy of the key named name.
func (h *harness) setKey(name string, change func(*adminapi.Key)) {
	h.t.Helper()
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	i := h.admin.findKey(name)
	if i < 0 {
		h.t.Fatalf("no key %s in the fake admin API", name)
	}
	change(&h.admin.keys[i])
}

func TestKeyCreateWithScopes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, errOut := h.mustRun("", etlCreate...)
	if out != "kg_prod_testsecret0001\n" {
		t.Fatalf("stdout = %q, want only the secret", out)
	}
	if strings.Contains(errOut, "testsecret") {
		t.Errorf("the secret was printed twice: %s", errOut)
	}
	want := mustJSON(adminapi.CreateKeyRequest{
		Name: "etl", Env: "prod", AllowModels: []string{"text-embedding-*"}, AllowProviders: []string{"openai"},
		AllowPaths: []string{"POST /v1/embeddings"}, AllowIPs: []string{"10.0.0.0/8", "2001:db8::/32"},
		Hours: "mon-fri 08:00-20:00 Europe/Berlin",
	})
	if got := h.lastCreate(); got != want {
		t.Errorf("request body:\n%s\nwant:\n%s", got, want)
	}

	out, _ = h.mustRun("", "key", "show", "etl")
	for _, line := range []string{
		"Env:                prod\n",
		"Prefix:             kg_prod_test\n",
		"Allowed models:     text-embedding-*\n",
		"Allowed paths:      POST /v1/embeddings\n",
		"Allowed IPs:        10.0.0.0/8, 2001:db8::/32\n",
		"Hours:              mon-fri 08:00-20:00 Europe/Berlin\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("key show lacks %q:\n%s", line, out)
		}
	}
	out, _ = h.mustRun("", "key", "list")
	wantList := "" +
		"ID         NAME  ENV   PREFIX        STATUS  EXPIRES  LAST-USED  GROUP  LIMITS  PATHS                IPS                        HOURS\n" +
		"key_test1  etl   prod  kg_prod_test  active  never    never      -      -       POST /v1/embeddings  10.0.0.0/8, 2001:db8::/32  mon-fri 08:00-20:00 Europe/Berlin\n"
	if out != wantList {
		t.Errorf("key list:\n%s\nwant:\n%s", out, wantList)
	}

	// Several windows and rules, spaces trimmed; a comma list of networks.
	h.mustRun("", "key", "create", "--name", "ops", "--allow-path", " GET /v1/models ", "--allow-path", "* /v1/chat/*",
		"--allow-ip", "192.0.2.7, 198.51.100.0/24", "--hours", "mon-fri 08:00-20:00 Europe/Berlin; sat 10:00-14:00 UTC")
	want = `{"name":"ops","limits":{},"allow_paths":["GET /v1/models","* /v1/chat/*"],"allow_ips":["192.0.2.7","198.51.100.0/24"],` +
		`"hours":"mon-fri 08:00-20:00 Europe/Berlin; sat 10:00-14:00 UTC"}`
	if got := h.lastCreate(); got != want {
		t.Errorf("request body:\n%s\nwant:\n%s", got, want)
	}
}

func TestScopeFlagsCheckedBeforeRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env["TEST_PROVIDER_KEY"] = upstreamKey
	create := []string{"key", "create", "--name", "etl"}
	update := []string{"key", "update", "etl"}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{append(create, "--allow-path", "POST v1/embeddings"), []string{"key create etl: --allow-path", `must start with "/"`}},
		{append(create, "--allow-path", "/v1/embeddings"), []string{"--allow-path", `"METHOD /path"`}},
		{append(create, "--allow-path", ""), []string{"--allow-path", `"METHOD /path"`}},
		{append(create, "--allow-path", "POST /v1/../admin"), []string{"--allow-path", "clean form"}},
		{append(create, "--allow-path", "POST", "/v1/embeddings"), []string{"unexpected argument", "quote each --allow-path rule"}},
		{append(create, "--allow-ip", "10.0.0.0/33"), []string{"key create etl: --allow-ip", `"10.0.0.0/33"`, "not a valid CIDR"}},
		{append(create, "--allow-ip", "intranet.example"), []string{"--allow-ip", "not an IP address or CIDR", "2001:db8::/32"}},
		{append(create, "--allow-ip", ","), []string{"--allow-ip is empty"}},
		{append(create, "--hours", "weekdays 08:00-20:00 UTC"), []string{"key create etl: --hours", `"weekdays" is not a day`}},
		{append(create, "--hours", "mon-fri 8-20 Europe/Berlin"), []string{"--hours", `"8" is not a time of day`}},
		{append(create, "--hours", "mon-fri 08:00-20:00 Europe/Atlantis"), []string{"--hours", `unknown time zone "Europe/Atlantis"`}},
		{append(create, "--hours", "mon-fri 08:00-20:00"), []string{"--hours", "DAYS HH:MM-HH:MM ZONE"}},
		{append(create, "--hours", " "), []string{"--hours is empty"}},
		{append(create, "--env", "Prod"), []string{"key create etl: --env", `"Prod"`, "lower-case"}},
		{append(create, "--env", "admin"), []string{"--env admin is reserved"}},
		{append(update, "--allow-path", "GET /v1/models", "--clear-allow-paths"), []string{"key update etl", "either --allow-path or --clear-allow-paths"}},
		{append(update, "--allow-ip", "10.0.0.0/8", "--clear-allow-ips"), []string{"either --allow-ip or --clear-allow-ips"}},
		{append(update, "--hours", "daily 00:00-24:00 UTC", "--clear-hours"), []string{"either --hours or --clear-hours"}},
		{append(update, "--hours", ""), []string{"--hours is empty", "--clear-hours"}},
		{append(update, "--allow-ip", ""), []string{"--allow-ip is empty", "--clear-allow-ips"}},
		{append(update, "--allow-path", "FETCH! /v1"), []string{"key update etl: --allow-path", "not an HTTP method"}},
		{append(update, "--allow-ip", "fe80::1%eth0"), []string{"key update etl: --allow-ip", "zone"}},
		{append(update, "--hours", "sun 24:00-06:00 UTC"), []string{"key update etl: --hours", "cannot start at 24:00"}},
		{append(update, "--rpm", "10", "--hours", "fri 22:00-06:00 Local"), []string{"--hours", `"Local"`}},
		{update, []string{"nothing to change", "--allow-path", "--clear-hours", "--rpm"}},
		{[]string{"key", "update", "etl", "--allow-path", "POST", "/v1/embeddings"}, []string{"unexpected argument", "quote"}},
		{[]string{"provider", "add", "openai", "--base-url", "https://api.openai.example/v1", "--api-key-env", "TEST_PROVIDER_KEY", "--env", "p"},
			[]string{"provider add openai: --env", `"p"`, "2 to 10"}},
	} {
		_, _, err := h.run("", c.args...)
		if err == nil {
			t.Errorf("%q: want an error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error lacks %q: %v", c.args, w, err)
			}
		}
		if strings.Contains(err.Error(), "policy: ") {
			t.Errorf("%q: error shows the parser's package: %v", c.args, err)
		}
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}

func TestKeyUpdateScopes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", etlCreate...)

	// The lists given replace the key's own, in one PATCH with the other changes.
	h.mustRun("", "group", "create", "team-a")
	n := h.requestCount()
	out, _ := h.mustRun("", "key", "update", "etl", "--allow-path", "POST /v1/embeddings", "--allow-path", "GET /v1/models",
		"--allow-ip", "192.0.2.0/24", "--hours", "daily 06:00-22:00 UTC", "--clear-limits", "--rpm", "30", "--group", "team-a")
	paths := []string{"POST /v1/embeddings", "GET /v1/models"}
	ips := []string{"192.0.2.0/24"}
	hours, group := "daily 06:00-22:00 UTC", "team-a"
	want := mustJSON(adminapi.UpdateKeyRequest{Limits: &adminapi.Limits{RPM: 30}, Group: &group, AllowPaths: &paths, AllowIPs: &ips, Hours: &hours})
	if got := h.lastPatch(); got != want {
		t.Errorf("PATCH body:\n%s\nwant:\n%s", got, want)
	}
	if got := h.requestsSince(n); len(got) != 1 || got[0] != "PATCH /api/v1/keys/etl" {
		t.Errorf("requests = %v, want one PATCH", got)
	}
	wantOut := "" +
		"Updated key etl (key_test1).\n" +
		"Allowed paths:  POST /v1/embeddings, GET /v1/models\n" +
		"Allowed IPs:    192.0.2.0/24\n" +
		"Hours:          daily 06:00-22:00 UTC\n" +
		"Group:          team-a\n" +
		"Limits:         30rpm\n"
	if out != wantOut {
		t.Errorf("key update:\n%s\nwant:\n%s", out, wantOut)
	}

	// A scope not named stays as it is.
	h.mustRun("", "key", "update", "etl", "--allow-ip", "10.0.0.0/8,2001:db8::/32")
	if got := h.lastPatch(); got != `{"allow_ips":["10.0.0.0/8","2001:db8::/32"]}` {
		t.Errorf("--allow-ip sent %s", got)
	}

	// The --clear flags send an empty list or string, which lifts the restriction.
	out, _ = h.mustRun("", "key", "update", "etl", "--clear-allow-paths", "--clear-allow-ips", "--clear-hours")
	if got := h.lastPatch(); got != `{"allow_paths":[],"allow_ips":[],"hours":""}` {
		t.Errorf("--clear-* sent %s", got)
	}
	if !strings.Contains(out, "Allowed paths:  any\nAllowed IPs:    any\nHours:          any time\n") {
		t.Errorf("key update --clear-*:\n%s", out)
	}
	out, _ = h.mustRun("", "key", "show", "etl", "--json")
	var k adminapi.Key
	if err := json.Unmarshal([]byte(out), &k); err != nil || len(k.AllowPaths) != 0 || len(k.AllowIPs) != 0 || k.Hours != "" || k.Limits.RPM != 30 {
		t.Errorf("key after clearing: %v\n%s", err, out)
	}
}

func TestKeySuspendResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", "key", "create", "--name", "ci")

	out, _ := h.mustRun("", "key", "suspend", "ci")
	want := "Suspended key ci (key_test1) at 2025-03-04T05:06:07Z. Status: suspended.\nResume it with `keygate key resume key_test1`.\n"
	if out != want {
		t.Errorf("key suspend:\n%s\nwant:\n%s", out, want)
	}
	out, _ = h.mustRun("", "key", "show", "ci")
	for _, line := range []string{"Status:             suspended\n", "Suspended:          2025-03-04T05:06:07Z\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("key show lacks %q:\n%s", line, out)
		}
	}
	out, _ = h.mustRun("", "key", "list")
	if !strings.Contains(out, "kg_live_test  suspended  never") {
		t.Errorf("key list does not show the key as suspended:\n%s", out)
	}
	out, _ = h.mustRun("", "--json", "key", "suspend", "key_test1")
	var k adminapi.Key
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.SuspendedAt == nil || k.Status != "active" {
		t.Errorf("key suspend --json: %v\n%s", err, out)
	}

	out, _ = h.mustRun("", "key", "resume", "ci")
	if out != "Resumed key ci (key_test1). Status: active.\n" {
		t.Errorf("key resume: %q", out)
	}
	out, _ = h.mustRun("", "key", "show", "ci")
	if !strings.Contains(out, "Status:             active\n") || !strings.Contains(out, "Suspended:          -\n") {
		t.Errorf("key show after resume:\n%s", out)
	}

	// A revoked key shows as revoked, suspended or not, and resuming it says it still does not work.
	h.mustRun("", "key", "suspend", "ci")
	h.mustRun("", "key", "revoke", "ci")
	out, _ = h.mustRun("", "key", "show", "ci")
	if !strings.Contains(out, "Status:             revoked\n") {
		t.Errorf("key show of a revoked, suspended key:\n%s", out)
	}
	out, _ = h.mustRun("", "key", "resume", "ci")
	if !strings.Contains(out, "Status: revoked.") || !strings.Contains(out, "still does not work") {
		t.Errorf("key resume of a revoked key: %q", out)
	}

	for _, cmd := range []string{"suspend", "resume"} {
		_, _, err := h.run("", "key", cmd, "nope")
		if err == nil || !strings.Contains(err.Error(), "key "+cmd+" nope") || !strings.Contains(err.Error(), `no key named "nope"`) {
			t.Errorf("key %s of an unknown key: %v", cmd, err)
		}
	}
}

func TestKeyRotate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", "key", "create", "--name", "ci", "--env", "prod", "--allow-path", "POST /v1/embeddings", "--rpm", "60")

	out, errOut := h.mustRun("", "key", "rotate", "ci")
	newSecret := "kg_prod_testsecret0002"
	if out != newSecret+"\n" {
		t.Fatalf("stdout = %q, want only the new key", out)
	}
	if strings.Contains(errOut, "testsecret") {
		t.Errorf("the new key was printed on stderr too: %s", errOut)
	}
	for _, want := range []string{
		"Rotated key ci (key_test1)", "successor is ci.rot-20250304T050607 (key_test2, expires: never)",
		"only time", "deliver it to the key's users",
		"The old key keeps working until 2025-03-05T05:06:07Z",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	h.admin.mu.Lock()
	bodies := append([]string{}, h.admin.scopes.rotations...)
	h.admin.mu.Unlock()
	if len(bodies) != 1 || bodies[0] != `{"grace":"24h"}` {
		t.Errorf("rotate bodies = %q, want the default grace", bodies)
	}

	out, _ = h.mustRun("", "key", "show", "key_test2")
	for _, line := range []string{"Rotated from:       key_test1\n", "Allowed paths:      POST /v1/embeddings\n", "Limits:             60rpm\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("key show of the successor lacks %q:\n%s", line, out)
		}
	}

	// --json prints the whole answer on stdout, with the new key once.
	out, errOut = h.mustRun("", "--json", "key", "rotate", "key_test2", "--grace", "2h")
	var rk adminapi.RotatedKey
	if err := json.Unmarshal([]byte(out), &rk); err != nil {
		t.Fatalf("--json output is not a RotatedKey: %v\n%s", err, out)
	}
	if rk.Secret == "" || strings.Count(out, rk.Secret) != 1 || strings.Contains(errOut, rk.Secret) {
		t.Errorf("the new key must appear once, on stdout only:\nstdout %s\nstderr %s", out, errOut)
	}
	if rk.Key.RotatedFrom != "key_test2" || rk.Previous.ExpiresAt == nil || !rk.Previous.ExpiresAt.Equal(fakeNow.Add(2*time.Hour)) {
		t.Errorf("rotated key = %+v", rk)
	}
	if !strings.Contains(errOut, "keeps working until 2025-03-04T07:06:07Z") {
		t.Errorf("stderr: %s", errOut)
	}

	// A revoked key cannot be rotated; a bad grace fails before any request.
	h.mustRun("", "key", "revoke", "ci")
	_, _, err := h.run("", "key", "rotate", "ci")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || !strings.Contains(err.Error(), "create a new key") {
		t.Errorf("rotating a revoked key: %v", err)
	}
	n := h.requestCount()
	for _, grace := range []string{"soon", "0", "-1h", ""} {
		_, _, err := h.run("", "key", "rotate", "ci", "--grace", grace)
		if err == nil || !strings.Contains(err.Error(), "key rotate ci: --grace") {
			t.Errorf("--grace %q: %v", grace, err)
		}
	}
	if got := h.requestCount(); got != n {
		t.Errorf("%d requests reached the admin API with a bad --grace, want none", got-n)
	}
}

func TestKeyListUnused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, errOut := h.mustRun("", "key", "list", "--unused", "30d")
	if out != "No live key has gone unused for 30d.\n" || errOut != "" {
		t.Errorf("empty report: stdout %q stderr %q", out, errOut)
	}
	if got := h.requestsSince(0); len(got) != 1 || got[0] != "GET /api/v1/keys?unused=30d" {
		t.Errorf("requests = %v, want the unused query", got)
	}

	// Created 29 days before the fake's clock: never used, recently used,
	// used 10 days ago, revoked.
	for _, name := range []string{"idle", "busy", "old", "gone"} {
		h.mustRun("", "key", "create", "--name", name)
	}
	recent, tenDays := fakeNow.Add(-time.Hour), fakeNow.Add(-10*24*time.Hour)
	h.setKey("busy", func(k *adminapi.Key) { k.LastUsedAt = &recent })
	h.setKey("old", func(k *adminapi.Key) { k.LastUsedAt = &tenDays })
	h.mustRun("", "key", "revoke", "gone")

	out, errOut = h.mustRun("", "key", "list", "--unused", "7d")
	want := "" +
		"ID         NAME  ENV   PREFIX        STATUS  CREATED               LAST-USED             EXPIRES  GROUP\n" +
		"key_test1  idle  live  kg_live_test  active  2025-02-03T04:05:06Z  never                 never    -\n" +
		"key_test3  old   live  kg_live_test  active  2025-02-03T04:05:06Z  2025-02-22T05:06:07Z  never    -\n"
	if out != want {
		t.Errorf("key list --unused 7d:\n%s\nwant:\n%s", out, want)
	}
	for _, w := range []string{"2 keys unused for 7d or more", "keygate key revoke", "keygate key suspend"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q: %s", w, errOut)
		}
	}
	out, _ = h.mustRun("", "--json", "key", "ls", "--unused", "20d")
	var kl adminapi.KeyList
	if err := json.Unmarshal([]byte(out), &kl); err != nil || len(kl.Keys) != 1 || kl.Keys[0].Name != "idle" || kl.Keys[0].LastUsedAt != nil {
		t.Errorf("key list --unused 20d --json: %v\n%s", err, out)
	}
	h.admin.mu.Lock()
	queries := strings.Join(h.admin.scopes.unused, ",")
	h.admin.mu.Unlock()
	if queries != "30d,7d,20d" {
		t.Errorf("unused queries = %s", queries)
	}

	n := h.requestCount()
	for _, d := range []string{"a month", "0", ""} {
		_, _, err := h.run("", "key", "list", "--unused", d)
		if err == nil || !strings.Contains(err.Error(), "key list: --unused") {
			t.Errorf("--unused %q: %v", d, err)
		}
	}
	if got := h.requestCount(); got != n {
		t.Errorf("%d requests reached the admin API with a bad --unused, want none", got-n)
	}
}

func TestProviderAddWithEnv(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env["TEST_PROVIDER_KEY"] = upstreamKey
	out, _ := h.mustRun("", "provider", "add", "openai-prod", "--base-url", "https://api.openai.example/v1",
		"--api-key-env", "TEST_PROVIDER_KEY", "--env", "prod")
	if !strings.Contains(out, "Env:       prod\n") {
		t.Errorf("provider add output lacks the env:\n%s", out)
	}
	out, _ = h.mustRun("", "--json", "provider", "show", "openai-prod")
	var p adminapi.Provider
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.Env != "prod" {
		t.Errorf("provider show --json: %v\n%s", err, out)
	}
	h.assertNotExposed(upstreamKey, out)
}
