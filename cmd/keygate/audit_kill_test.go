package main

import (
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAuditLossOnKill9IsBoundedByTheFlushInterval sends refused requests
// (each one an auth.failure event) to a keygate process, kills it with
// SIGKILL mid-stream, starts it again on the same data and checks that
// every request answered more than one flush interval before the kill is
// on the trail, and that the trail still verifies.
func TestAuditLossOnKill9IsBoundedByTheFlushInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("starts keygate processes")
	}
	const flush = 200 * time.Millisecond
	// Allowance for the batch being written when the kill lands (one
	// database commit), generous for a machine loaded by a parallel,
	// race-instrumented test run; the figure measured is logged.
	const writeAllowance = 400 * time.Millisecond
	dir := t.TempDir()
	env := map[string]string{"KEYGATE_AUDIT_FLUSH_INTERVAL": flush.String(), "KEYGATE_LIMITS_AUTH_FAILURES": "0"}
	args := []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}
	p := startProc(t, env, args...)
	admin := p.admin
	gw := regexp.MustCompile(`gateway listening on (\S+)`).FindStringSubmatch(p.out.String())[1]

	type answered struct {
		id string
		at time.Time
	}
	var sent []answered
	client := &http.Client{Timeout: 5 * time.Second}
	stop := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(stop) {
		req, _ := http.NewRequest("POST", gw+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini"}`))
		req.Header.Set("Authorization", "Bearer kg_live_not-a-real-key")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("a request with a wrong key: %d", resp.StatusCode)
		}
		sent = append(sent, answered{resp.Header.Get("X-Request-Id"), time.Now()})
	}
	killedAt := time.Now()
	p.kill()

	p2 := startProc(t, env, args...)
	e := map[string]string{"KEYGATE_ADMIN_URL": p2.adminU, "KEYGATE_ADMIN_TOKEN": admin, "HOME": t.TempDir()}
	cli := func(args ...string) string {
		t.Helper()
		var out, errb strings.Builder
		if err := run(context.Background(), args, func(k string) string { return e[k] }, strings.NewReader(""), &out, &errb); err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
	var evs struct {
		Events []struct {
			Fields map[string]string `json:"fields"`
		} `json:"events"`
	}
	decodeJSON(t, cli("--json", "audit", "search", "--type", "auth.failure", "--limit", "10000"), &evs)
	onTrail := map[string]bool{}
	for _, ev := range evs.Events {
		onTrail[ev.Fields["request_id"]] = true
	}
	var lost int
	var oldestLost time.Duration
	for _, a := range sent {
		if onTrail[a.id] {
			continue
		}
		lost++
		before := killedAt.Sub(a.at)
		oldestLost = max(oldestLost, before)
		if before > flush+writeAllowance {
			t.Errorf("request %s, answered %v before the kill, is not on the audit trail", a.id, before)
		}
	}
	t.Logf("%d requests answered, %d on the trail after kill -9; the oldest lost was answered %v before the kill (flush interval %v)",
		len(sent), len(sent)-lost, oldestLost, flush)
	if len(sent)-lost < len(sent)/2 {
		t.Fatalf("only %d of %d requests are on the trail", len(sent)-lost, len(sent))
	}
	var v struct {
		OK bool `json:"ok"`
	}
	decodeJSON(t, cli("--json", "audit", "verify"), &v)
	if !v.OK {
		t.Fatal("the audit trail does not verify after kill -9")
	}
}
