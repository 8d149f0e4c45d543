package admin_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/store"
)

// TestOverviewCountsTheLastHour: a request and a refusal just made are in
// the last hour's totals and in the newest step of both charts.
func TestOverviewCountsTheLastHour(t *testing.T) {
	h := newHarness(t, func(o *admin.Options) {})
	h.api = admin.New(func() admin.Options { o := h.opts; o.Insights = h.st; o.AuditStore = h.st; return o }())
	k := h.addKey("agent", "", "")
	var recs []store.AuditRecord
	for i, dec := range []string{"allow", "deny"} {
		at := h.now.Add(-time.Duration(i) * time.Minute)
		data, _ := json.Marshal(map[string]any{"time": at, "type": "request", "key_id": k.ID, "decision": dec, "reasons": []string{"budget"}[:i]})
		recs = append(recs, store.AuditRecord{Node: "n", Seq: uint64(i + 1), Time: at, Type: "request", KeyID: k.ID, Data: data})
	}
	if err := h.st.AppendAudit(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	var o adminapi.Overview
	decode(t, h.do("GET", "/api/v1/overview", ""), &o)
	if w := o.Windows[0]; w.Name != "hour" || w.Requests != 2 || w.Refusals != 1 {
		t.Fatalf("last hour %+v, want 2 requests and 1 refusal", w)
	}
	if p := o.Hours[len(o.Hours)-1]; p.Requests+o.Hours[len(o.Hours)-2].Requests != 2 {
		t.Fatalf("the hourly chart misses the requests: %+v", o.Hours)
	}
	if p := o.Minutes[len(o.Minutes)-1]; p.Requests+o.Minutes[len(o.Minutes)-2].Requests != 2 {
		t.Fatalf("the 5-minute chart misses the requests: %+v", o.Minutes)
	}
	if len(o.RefusalReasons) != 1 || o.RefusalReasons[0] != (adminapi.Count{Name: "budget", Count: 1}) {
		t.Fatalf("refusal reasons %+v", o.RefusalReasons)
	}
}
