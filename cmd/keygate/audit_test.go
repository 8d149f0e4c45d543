package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestAuditTrail: requests, refusals, admin actions and secret reads land
// on the audit trail, searchable by key and time; forged-line attempts stay
// one event; `keygate audit verify` passes an intact trail and names the
// place an edit or deletion made in the database.
func TestAuditTrail(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Audit.File = filepath.Join(t.TempDir(), "audit.jsonl")
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "audited")
	postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[]}`)
	// A model name with a newline and control characters cannot forge a line.
	postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"x\n{\"type\":\"forged\"}\u001b[31m","messages":[]}`)
	postJSON(t, in.addrs.Gateway+"/v1/chat/completions", "kg_live_wrong", `{"model":"gpt-4o-mini"}`)
	// So can a path with an encoded newline, quote and escape, and a credential full of quotes.
	postJSON(t, in.addrs.Gateway+"/v1/chat%0A%7B%22type%22:%22forged%22%7D%1B[31m", key, `{}`)
	postJSON(t, in.addrs.Gateway+"/proxy/x%0D%0A%7B%22type%22:%22forged%22%7D", `kg_live_"}{"type":"forged"}\`, `{}`)
	in.mustCLI(map[string]string{"V": "audit-canary-" + time.Now().String()}, "", "secret", "put", "app/x", "--from-env", "V")
	in.mustCLI(nil, "", "secret", "get", "app/x")

	var evs adminapi.AuditEvents
	deadline := time.Now().Add(5 * time.Second)
	for {
		decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--key", "audited", "--since", "1h"), &evs)
		if len(evs.Events) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key's requests never reached the trail: %d events", len(evs.Events))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var first map[string]any
	json.Unmarshal(evs.Events[0], &first)
	if first["type"] != "request" || first["decision"] != "allow" || first["client"] != "127.0.0.1" || !strings.Contains(first["resource"].(string), "/v1/chat/completions") {
		t.Fatalf("first event %v", first)
	}
	var all adminapi.AuditEvents
	types := map[string]int{}
	wanted := []string{"request", "auth.failure", "admin.action", "secret.read"}
	for deadline := time.Now().Add(5 * time.Second); ; {
		decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--since", "1h"), &all)
		clear(types)
		for _, raw := range all.Events {
			var ev map[string]any
			json.Unmarshal(raw, &ev)
			types[ev["type"].(string)]++
			if ev["type"] == "forged" {
				t.Fatal("a request forged an audit event")
			}
		}
		missing := slices.ContainsFunc(wanted, func(w string) bool { return types[w] == 0 })
		if !missing {
			break
		}
		if time.Now().After(deadline) { // the trail is written in batches
			t.Fatalf("want events of types %v, have %v", wanted, types)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The JSON-lines file holds one parseable event per line, none forged.
	lines := strings.Split(strings.TrimSpace(string(must(os.ReadFile(cfg.Audit.File)))), "\n")
	for i, line := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["type"] == "forged" {
			t.Fatalf("audit file line %d is not one event: %q (%v)", i+1, line, err)
		}
	}
	// The trail keeps the path as sent, escaped, under its own event.
	if !strings.Contains(string(mustJSON(t, all)), `/v1/chat\n{\"type\":\"forged\"}\u001b[31m`) {
		t.Error("the request with a newline in its path is not on the trail as sent")
	}
	// The secret read is recorded under a reference the admin can compute.
	ref := strings.TrimSpace(in.mustCLI(nil, "", "audit", "ref", "app/x"))
	if !strings.HasPrefix(ref, "ref:") || !strings.Contains(string(mustJSON(t, all)), strings.TrimPrefix(ref, "ref:")) {
		t.Fatalf("the reference %q of the secret read is not on the trail", ref)
	}
	out := in.mustCLI(nil, "", "audit", "verify")
	if !strings.Contains(out, "intact") {
		t.Fatalf("verify of an untouched trail: %s", out)
	}
	in.stop()

	// Tamper with the database: edit one event, then delete another.
	db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `UPDATE audit_events SET data = replace(data, '"decision":"allow"', '"decision":"deny"') WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	again := start(t, cfg, in.admin)
	_, _, err = again.cli(nil, "", "audit", "verify")
	if err == nil {
		t.Fatal("verify passed an edited trail")
	}
	var v adminapi.AuditVerification
	o, _, _ := again.cli(nil, "", "--json", "audit", "verify")
	json.Unmarshal([]byte(o), &v)
	if v.OK || len(v.Nodes) != 1 || v.Nodes[0].Seq != 2 || !strings.Contains(v.Nodes[0].Error, "edit") {
		t.Fatalf("verify of an edited event: %+v", v)
	}
	again.stop()
	if _, err := db.ExecContext(ctx, `UPDATE audit_events SET data = replace(data, '"decision":"deny"', '"decision":"allow"') WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_events WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	third := start(t, cfg, in.admin)
	o, _, _ = third.cli(nil, "", "--json", "audit", "verify")
	v = adminapi.AuditVerification{}
	json.Unmarshal([]byte(o), &v)
	if v.OK || v.Nodes[0].Seq == 0 || !strings.Contains(strings.ToLower(v.Nodes[0].Error), "delet") {
		t.Fatalf("verify of a deleted event: %+v", v)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
