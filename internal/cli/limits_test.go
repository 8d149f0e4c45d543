package cli

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

func quota(n int64, unit, period string) adminapi.Quota {
	return adminapi.Quota{Limit: n, Unit: unit, Period: period}
}

func budget(micro int64, period string) adminapi.Budget {
	return adminapi.Budget{MicroUSD: micro, Period: period}
}

// requestsSince returns "METHOD URL" for each request after the first n.
func (h *harness) requestsSince(n int) []string {
	h.t.Helper()
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	var out []string
	for _, r := range h.admin.requests[n:] {
		out = append(out, r.Method+" "+r.URL)
	}
	return out
}

// lastPatch returns the body of the latest PATCH /keys/{ref}.
func (h *harness) lastPatch() string {
	h.t.Helper()
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	p := h.admin.limits.patches
	if len(p) == 0 {
		h.t.Fatal("no key update reached the admin API")
	}
	return p[len(p)-1]
}

func (h *harness) keyLimits(name string) adminapi.Limits {
	h.t.Helper()
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	i := h.admin.findKey(name)
	if i < 0 {
		h.t.Fatalf("no key %s in the fake admin API", name)
	}
	return h.admin.keys[i].Limits
}

// exampleLimits is what `key create --name ci-bot --rpm 60 --tpm 200000
// --concurrency 4 --quota 5000/day --budget 20usd/month` asks for.
var exampleLimits = adminapi.Limits{
	RPM: 60, TPM: 200_000, Concurrency: 4,
	Quotas:  []adminapi.Quota{quota(5000, adminapi.UnitRequests, adminapi.PeriodDay)},
	Budgets: []adminapi.Budget{budget(20_000_000, adminapi.PeriodMonth)},
}

var exampleCreate = []string{"key", "create", "--name", "ci-bot", "--rpm", "60", "--tpm", "200000", "--concurrency", "4",
	"--quota", "5000/day", "--budget", "20usd/month"}

func TestKeyCreateWithLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, _ := h.mustRun("", exampleCreate...)
	if out != "kg_live_testsecret0001\n" {
		t.Fatalf("stdout = %q, want only the secret", out)
	}
	if got := h.keyLimits("ci-bot"); !reflect.DeepEqual(got, exampleLimits) {
		t.Fatalf("limits sent = %+v\nwant %+v", got, exampleLimits)
	}

	out, _ = h.mustRun("", "key", "show", "ci-bot")
	for _, want := range []string{"Group:              -\n", "Limits:             60rpm 200000tpm 4conc 5000/day 20usd/month\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("key show lacks %q:\n%s", want, out)
		}
	}

	h.mustRun("", "group", "create", "team-a")
	h.mustRun("", "key", "create", "--name", "batch", "--group", "team-a", "--rps", "2", "--rph", "1000",
		"--quota", "2_000_000tokens/month", "--quota", "100000", "--budget", "100usd", "--budget", "2.50usd/day")
	want := adminapi.Limits{
		RPS: 2, RPH: 1000,
		Quotas:  []adminapi.Quota{quota(2_000_000, adminapi.UnitTokens, adminapi.PeriodMonth), quota(100_000, adminapi.UnitRequests, adminapi.PeriodTotal)},
		Budgets: []adminapi.Budget{budget(100_000_000, adminapi.PeriodTotal), budget(2_500_000, adminapi.PeriodDay)},
	}
	if got := h.keyLimits("batch"); !reflect.DeepEqual(got, want) {
		t.Errorf("limits sent = %+v\nwant %+v", got, want)
	}

	out, _ = h.mustRun("", "key", "list")
	wantList := "" +
		"ID         NAME    ENV   PREFIX        STATUS  EXPIRES  LAST-USED  GROUP   LIMITS                                                                 PATHS  IPS  HOURS\n" +
		"key_test1  ci-bot  live  kg_live_test  active  never    never      -       60rpm 200000tpm 4conc 5000/day 20usd/month                             any    any  any\n" +
		"key_test2  batch   live  kg_live_test  active  never    never      team-a  2rps 1000rph 2000000tokens/month 100000/total 100usd/total 2.5usd/day  any    any  any\n"
	if out != wantList {
		t.Errorf("key list:\n%s\nwant:\n%s", out, wantList)
	}
	out, _ = h.mustRun("", "key", "list", "--json")
	var kl adminapi.KeyList
	if err := json.Unmarshal([]byte(out), &kl); err != nil || len(kl.Keys) != 2 {
		t.Fatalf("key list --json: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(kl.Keys[0].Limits, exampleLimits) || kl.Keys[1].Group != "team-a" {
		t.Errorf("key list --json = %+v", kl.Keys)
	}

	_, _, err := h.run("", "key", "create", "--name", "lost", "--group", "nope")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Fatalf("unknown group: %v", err)
	}
	for _, want := range []string{`no group named "nope"`, "keygate group create nope"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestLimitFlagsCheckedBeforeRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"key", "create", "--name", "x", "--quota", "5000/fortnight"}, []string{"key create: --quota", `"fortnight"`, "day, month or total"}},
		{[]string{"key", "create", "--name", "x", "--budget", "-3usd"}, []string{"key create: --budget", "-3usd", "positive amount"}},
		{[]string{"key", "create", "--name", "x", "--rpm", "-1"}, []string{"key create: --rpm", "got -1"}},
		{[]string{"key", "create", "--name", "x", "--rpm", "lots"}, []string{"--rpm"}},
		{[]string{"key", "create", "--name", "x", "--budget", "nanusd"}, []string{"--budget", "AMOUNTusd"}},
		{[]string{"key", "create", "--name", "x", "--quota", "5000/day", "--quota", "6000/day"}, []string{"--quota 5000/day and --quota 6000/day", "requests quota per day", "give one"}},
		{[]string{"key", "create", "--name", "x", "--budget", "5usd", "--budget", "6usd"}, []string{"budget in total", "give one"}},
		{[]string{"key", "create", "--name", "x", "--group", "team a"}, []string{"--group", `"team a"`, "not valid"}},
		{[]string{"key", "update", "ci", "--tpm", "-5"}, []string{"key update ci: --tpm", "got -5"}},
		{[]string{"key", "update", "ci"}, []string{"nothing to change", "--rpm", "--quota", "--clear-limits", "--group NAME", "--no-group"}},
		{[]string{"key", "update", "ci", "--group", "a", "--no-group"}, []string{"not both"}},
		{[]string{"key", "update", "ci", "--group", ""}, []string{"--group", "use --no-group"}},
		{[]string{"key", "update", "ci", "--budget", "5usd/day", "--budget", "0/day"}, []string{"budget per day", "give one"}},
		{[]string{"key", "update", "ci", "--quota", "0.5/day"}, []string{"--quota", "COUNT[/PERIOD]"}},
		{[]string{"key", "usage", "ci", "--days", "0"}, []string{"--days must be 1 to 400, got 0"}},
		{[]string{"key", "usage", "ci", "--days", "401"}, []string{"--days must be 1 to 400, got 401"}},
		{[]string{"group", "create", "team a"}, []string{"group create", "not valid"}},
		{[]string{"group", "create", "g", "--concurrency", "-1"}, []string{"group create g: --concurrency", "got -1"}},
		{[]string{"group", "update", "g"}, []string{"group update g: nothing to change", "--clear-limits"}},
		{[]string{"group", "update", "g", "--quota", "10/week"}, []string{"group update g: --quota", `"week"`}},
		{[]string{"group", "update", "g", "--budget", "20usd/"}, []string{"--budget", `period ""`}},
	} {
		_, _, err := h.run("", c.args...)
		if err == nil {
			t.Errorf("%v: want an error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error lacks %q: %v", c.args, w, err)
			}
		}
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}

func TestKeyUpdateMergesLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", exampleCreate...)

	// Only the limits named change; a count of 0 removes one, a quota or
	// budget replaces the one of its unit and period.
	n := h.requestCount()
	out, _ := h.mustRun("", "key", "update", "ci-bot", "--rpm", "120", "--tpm", "0",
		"--quota", "2000000tokens/month", "--quota", "6000/day", "--budget", "0/month", "--budget", "5usd/day")
	want := adminapi.Limits{
		RPM: 120, Concurrency: 4,
		Quotas:  []adminapi.Quota{quota(6000, adminapi.UnitRequests, adminapi.PeriodDay), quota(2_000_000, adminapi.UnitTokens, adminapi.PeriodMonth)},
		Budgets: []adminapi.Budget{budget(5_000_000, adminapi.PeriodDay)},
	}
	if got := h.keyLimits("ci-bot"); !reflect.DeepEqual(got, want) {
		t.Fatalf("limits = %+v\nwant %+v", got, want)
	}
	if got, wantBody := h.lastPatch(), mustJSON(adminapi.UpdateKeyRequest{Limits: &want}); got != wantBody {
		t.Errorf("PATCH body %s\nwant %s", got, wantBody)
	}
	if got := h.requestsSince(n); strings.Join(got, ",") != "GET /api/v1/keys/ci-bot,PATCH /api/v1/keys/ci-bot" {
		t.Errorf("requests = %v, want the key read then updated", got)
	}
	wantOut := "" +
		"Updated key ci-bot (key_test1).\n" +
		"Allowed paths:  any\n" +
		"Allowed IPs:    any\n" +
		"Hours:          any time\n" +
		"Group:          -\n" +
		"Limits:         120rpm 4conc 6000/day 2000000tokens/month 5usd/day\n"
	if out != wantOut {
		t.Errorf("key update:\n%s\nwant:\n%s", out, wantOut)
	}

	// none removes every quota before the others given are added; removing
	// a quota the key does not have changes nothing.
	h.mustRun("", "key", "update", "key_test1", "--quota", "100000", "--quota", "NONE", "--quota", "0tokens/day")
	want.Quotas = []adminapi.Quota{quota(100_000, adminapi.UnitRequests, adminapi.PeriodTotal)}
	if got := h.keyLimits("ci-bot"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after --quota none: %+v\nwant %+v", got, want)
	}
	h.mustRun("", "key", "update", "ci-bot", "--budget", "none", "--quota", "0")
	want.Quotas, want.Budgets = nil, nil
	if got := h.keyLimits("ci-bot"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after --budget none --quota 0: %+v\nwant %+v", got, want)
	}

	// --clear-limits starts from nothing, without reading the key.
	n = h.requestCount()
	h.mustRun("", "key", "update", "ci-bot", "--clear-limits", "--concurrency", "2")
	if got := h.keyLimits("ci-bot"); !reflect.DeepEqual(got, adminapi.Limits{Concurrency: 2}) {
		t.Errorf("after --clear-limits --concurrency 2: %+v", got)
	}
	if got := h.requestsSince(n); len(got) != 1 || !strings.HasPrefix(got[0], "PATCH") {
		t.Errorf("requests = %v, want only the update", got)
	}
	out, _ = h.mustRun("", "key", "update", "ci-bot", "--clear-limits")
	if got := h.lastPatch(); got != `{"limits":{}}` {
		t.Errorf("--clear-limits sent %s, want empty limits", got)
	}
	if !strings.Contains(out, "Limits:         none\n") {
		t.Errorf("key update --clear-limits:\n%s", out)
	}

	// The group alone changes without touching the limits.
	h.mustRun("", "key", "update", "ci-bot", "--rpm", "60")
	h.mustRun("", "group", "create", "team-a")
	n = h.requestCount()
	out, _ = h.mustRun("", "key", "update", "ci-bot", "--group", "team-a")
	if got := h.lastPatch(); got != `{"group":"team-a"}` {
		t.Errorf("--group sent %s", got)
	}
	if got := h.requestsSince(n); len(got) != 1 {
		t.Errorf("requests = %v, want only the update", got)
	}
	if want := "Group:          team-a\nLimits:         60rpm\n"; !strings.HasSuffix(out, want) {
		t.Errorf("key update --group:\n%s\nwant it to end with:\n%s", out, want)
	}
	out, _ = h.mustRun("", "key", "update", "ci-bot", "--no-group", "--json")
	if got := h.lastPatch(); got != `{"group":""}` {
		t.Errorf("--no-group sent %s", got)
	}
	var k adminapi.Key
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Group != "" || k.Limits.RPM != 60 {
		t.Errorf("key update --json: %v\n%s", err, out)
	}

	_, _, err := h.run("", "key", "update", "ci-bot", "--group", "nope")
	if err == nil || !strings.Contains(err.Error(), `no group named "nope"`) || !strings.Contains(err.Error(), "keygate group create nope") {
		t.Errorf("unknown group: %v", err)
	}
	_, _, err = h.run("", "key", "update", "ghost", "--rpm", "1")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || !strings.Contains(err.Error(), "key update ghost") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestKeyUsage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", "key", "create", "--name", "ci")
	h.mustRun("", "key", "create", "--name", "idle")
	h.admin.mu.Lock()
	h.admin.limits.usage["key_test1"] = []adminapi.UsageRow{
		{Date: "2025-06-02", Model: "gpt-4o", Requests: 3, InputTokens: 1200, OutputTokens: 340, MicroUSD: 123},
		{Date: "2025-06-02", Model: "claude-sonnet-4", Requests: 1, InputTokens: 50, OutputTokens: 7, MicroUSD: 1_500_000, Denials: 2},
		{Date: "2025-06-01", Model: "gpt-4o", Requests: 10, InputTokens: 10, OutputTokens: 10, Denials: 1},
	}
	h.admin.mu.Unlock()

	out, _ := h.mustRun("", "key", "usage", "ci", "--days", "7")
	want := "" +
		"DATE        MODEL            REQUESTS  IN    OUT  SPEND      DENIALS\n" +
		"2025-06-02  gpt-4o           3         1200  340  $0.000123  0\n" +
		"2025-06-02  claude-sonnet-4  1         50    7    $1.500000  2\n" +
		"2025-06-01  gpt-4o           10        10    10   $0.000000  1\n" +
		"TOTAL                        14        1260  357  $1.500123  3\n"
	if out != want {
		t.Errorf("key usage:\n%s\nwant:\n%s", out, want)
	}

	out, _ = h.mustRun("", "key", "usage", "ci", "--json")
	var u adminapi.KeyUsage
	if err := json.Unmarshal([]byte(out), &u); err != nil || u.Key.Name != "ci" || len(u.Rows) != 3 || u.Rows[1].MicroUSD != 1_500_000 {
		t.Fatalf("key usage --json: %v\n%s", err, out)
	}

	out, _ = h.mustRun("", "key", "usage", "idle")
	if out != "Key idle has no usage in the last 30 days.\n" {
		t.Errorf("no usage: %q", out)
	}
	out, _ = h.mustRun("", "key", "usage", "idle", "--json")
	if !strings.Contains(out, `"rows": []`) {
		t.Errorf("no usage --json should list no rows, not null:\n%s", out)
	}
	h.admin.mu.Lock()
	days := strings.Join(h.admin.limits.usageDays, ",")
	h.admin.mu.Unlock()
	if days != "7,30,30,30" {
		t.Errorf("days asked for = %s, want 7,30,30,30", days)
	}

	_, _, err := h.run("", "key", "usage", "ghost")
	if err == nil || !strings.Contains(err.Error(), `key usage ghost: keygate admin API: not found: no key named "ghost"`) {
		t.Errorf("unknown key: %v", err)
	}
}

func TestGroupLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, _ := h.mustRun("", "group", "list")
	if !strings.Contains(out, "No groups yet") {
		t.Errorf("empty list: %s", out)
	}
	out, _ = h.mustRun("", "--json", "group", "list")
	if strings.TrimSpace(out) != "{\n  \"groups\": []\n}" {
		t.Errorf("empty list --json: %s", out)
	}

	out, errOut := h.mustRun("", "group", "create", "team-a", "--rpm", "600", "--budget", "200usd/month")
	want := "" +
		"Name:     team-a\n" +
		"Keys:     0\n" +
		"Limits:   600rpm 200usd/month\n" +
		"Created:  2025-05-06T07:08:09Z\n"
	if out != want {
		t.Errorf("group create:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errOut, "Created group team-a") || !strings.Contains(errOut, "keygate key update KEY --group team-a") {
		t.Errorf("group create stderr: %s", errOut)
	}
	_, _, err := h.run("", "group", "create", "team-a")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Fatalf("duplicate group: %v", err)
	}

	out, _ = h.mustRun("", "--json", "group", "create", "batch")
	var g adminapi.Group
	if err := json.Unmarshal([]byte(out), &g); err != nil || g.Name != "batch" || !g.Limits.IsZero() {
		t.Fatalf("group create --json: %v\n%s", err, out)
	}

	h.mustRun("", "key", "create", "--name", "ci", "--group", "team-a")
	out, _ = h.mustRun("", "group", "list")
	want = "" +
		"NAME    KEYS  LIMITS\n" +
		"team-a  1     600rpm 200usd/month\n" +
		"batch   0     -\n"
	if out != want {
		t.Errorf("group list:\n%s\nwant:\n%s", out, want)
	}
	out, _ = h.mustRun("", "group", "show", "team-a")
	if !strings.Contains(out, "Keys:     1\n") {
		t.Errorf("group show:\n%s", out)
	}

	// The same merge rule as key update.
	out, _ = h.mustRun("", "group", "update", "team-a", "--budget", "300usd/month", "--quota", "1000000tokens/day")
	wantLimits := adminapi.Limits{RPM: 600,
		Quotas:  []adminapi.Quota{quota(1_000_000, adminapi.UnitTokens, adminapi.PeriodDay)},
		Budgets: []adminapi.Budget{budget(300_000_000, adminapi.PeriodMonth)}}
	if out != "Updated group team-a.\nKeys:    1\nLimits:  600rpm 1000000tokens/day 300usd/month\n" {
		t.Errorf("group update:\n%s", out)
	}
	out, _ = h.mustRun("", "--json", "group", "show", "team-a")
	if err := json.Unmarshal([]byte(out), &g); err != nil || !reflect.DeepEqual(g.Limits, wantLimits) {
		t.Fatalf("group show --json: %v\n%s", err, out)
	}
	h.mustRun("", "group", "update", "team-a", "--rpm", "0", "--budget", "none")
	n := h.requestCount()
	out, _ = h.mustRun("", "--json", "group", "update", "batch", "--clear-limits", "--rps", "5")
	var updated adminapi.Group
	if err := json.Unmarshal([]byte(out), &updated); err != nil || !reflect.DeepEqual(updated.Limits, adminapi.Limits{RPS: 5}) {
		t.Fatalf("group update --clear-limits --json: %v\n%s", err, out)
	}
	if got := h.requestsSince(n); len(got) != 1 || got[0] != "PATCH /api/v1/groups/batch" {
		t.Errorf("requests = %v, want only the update", got)
	}
	out, _ = h.mustRun("", "group", "list")
	want = "" +
		"NAME    KEYS  LIMITS\n" +
		"team-a  1     1000000tokens/day\n" +
		"batch   0     5rps\n"
	if out != want {
		t.Errorf("group list after updates:\n%s\nwant:\n%s", out, want)
	}

	_, _, err = h.run("", "group", "delete", "team-a")
	if !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Fatalf("delete a group with keys: %v", err)
	}
	for _, w := range []string{"still holds 1 keys", "keygate key update KEY --no-group", "keygate key list"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	h.mustRun("", "key", "update", "ci", "--no-group")
	out, _ = h.mustRun("", "group", "delete", "team-a")
	if out != "Deleted group team-a.\n" {
		t.Errorf("group delete: %q", out)
	}
	out, errOut = h.mustRun("", "--json", "group", "rm", "batch")
	if out != "" || !strings.Contains(errOut, "Deleted group batch.") {
		t.Errorf("group rm --json: stdout %q stderr %q", out, errOut)
	}
	_, _, err = h.run("", "group", "show", "team-a")
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || !strings.Contains(err.Error(), `no group named "team-a"`) {
		t.Fatalf("show after delete: %v", err)
	}
	_, _, err = h.run("", "group", "update", "team-a", "--rpm", "1")
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("update after delete: %v", err)
	}
}

func TestParseLimitFlagValues(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in     string
		want   adminapi.Quota
		remove bool
		ok     bool
	}{
		{"5000/day", quota(5000, adminapi.UnitRequests, adminapi.PeriodDay), false, true},
		{"0/day", quota(1, adminapi.UnitRequests, adminapi.PeriodDay), true, true},
		{"00/day", quota(1, adminapi.UnitRequests, adminapi.PeriodDay), true, true},
		{"0tokens/month", quota(1, adminapi.UnitTokens, adminapi.PeriodMonth), true, true},
		{"0", quota(1, adminapi.UnitRequests, adminapi.PeriodTotal), true, true},
		{"0/fortnight", adminapi.Quota{}, false, false},
		{"0.5/day", adminapi.Quota{}, false, false},
		{"0x10/day", adminapi.Quota{}, false, false},
		{"-0/day", adminapi.Quota{}, false, false},
	} {
		q, remove, err := parseQuotaFlag(c.in)
		if (err == nil) != c.ok || q != c.want || remove != c.remove {
			t.Errorf("parseQuotaFlag(%q) = %+v, %v, %v; want %+v, %v, ok=%v", c.in, q, remove, err, c.want, c.remove, c.ok)
		}
	}
	for _, c := range []struct {
		in     string
		want   adminapi.Budget
		remove bool
		ok     bool
	}{
		{"20usd/month", budget(20_000_000, adminapi.PeriodMonth), false, true},
		{"0.5usd/day", budget(500_000, adminapi.PeriodDay), false, true},
		{"0usd/month", budget(1_000_000, adminapi.PeriodMonth), true, true},
		{"0/day", budget(1_000_000, adminapi.PeriodDay), true, true},
		{"$0.00/day", budget(1_000_000, adminapi.PeriodDay), true, true},
		{"0", budget(1_000_000, adminapi.PeriodTotal), true, true},
		{"0usd/week", adminapi.Budget{}, false, false},
		{"0x1p4usd", adminapi.Budget{}, false, false},
		{"-3usd", adminapi.Budget{}, false, false},
	} {
		b, remove, err := parseBudgetFlag(c.in)
		if (err == nil) != c.ok || b != c.want || remove != c.remove {
			t.Errorf("parseBudgetFlag(%q) = %+v, %v, %v; want %+v, %v, ok=%v", c.in, b, remove, err, c.want, c.remove, c.ok)
		}
	}
}

func TestLimitEditDoesNotTouchBase(t *testing.T) {
	t.Parallel()
	base := adminapi.Limits{
		Quotas:  []adminapi.Quota{quota(5, adminapi.UnitRequests, adminapi.PeriodDay), quota(6, adminapi.UnitTokens, adminapi.PeriodDay)},
		Budgets: []adminapi.Budget{budget(7, adminapi.PeriodDay)},
	}
	keep := mustJSON(base)
	e := limitEdit{
		quotas:  []quotaEdit{{q: quota(1, adminapi.UnitRequests, adminapi.PeriodDay), remove: true}, {q: quota(9, adminapi.UnitTokens, adminapi.PeriodDay)}},
		budgets: []budgetEdit{{b: budget(8, adminapi.PeriodDay)}},
	}
	got := e.apply(base)
	if mustJSON(base) != keep {
		t.Errorf("apply changed its base: %s, was %s", mustJSON(base), keep)
	}
	want := adminapi.Limits{Quotas: []adminapi.Quota{quota(9, adminapi.UnitTokens, adminapi.PeriodDay)}, Budgets: []adminapi.Budget{budget(8, adminapi.PeriodDay)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("apply = %+v, want %+v", got, want)
	}
}

func TestFmtUSDAndLimits(t *testing.T) {
	t.Parallel()
	for micro, want := range map[int64]string{0: "$0.000000", 123: "$0.000123", 1_500_000: "$1.500000", 20_000_000: "$20.000000", -5: "-$0.000005"} {
		if got := fmtUSD(micro); got != want {
			t.Errorf("fmtUSD(%d) = %q, want %q", micro, got, want)
		}
	}
	l := adminapi.Limits{RPS: 1, RPM: 2, RPH: 3, TPM: 4, Concurrency: 5,
		Quotas:  []adminapi.Quota{quota(6, adminapi.UnitRequests, adminapi.PeriodTotal), quota(7, adminapi.UnitTokens, adminapi.PeriodDay)},
		Budgets: []adminapi.Budget{budget(8_500_000, adminapi.PeriodMonth), budget(9_000_000, adminapi.PeriodTotal)}}
	if got, want := fmtLimits(l, "-"), "1rps 2rpm 3rph 4tpm 5conc 6/total 7tokens/day 8.5usd/month 9usd/total"; got != want {
		t.Errorf("fmtLimits = %q, want %q", got, want)
	}
	if got := fmtLimits(adminapi.Limits{}, "none"); got != "none" {
		t.Errorf("fmtLimits of no limits = %q", got)
	}
}
