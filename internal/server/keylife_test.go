package server

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/store"
)

// TestAlertSuspensionReachesTheOtherNode: two nodes share one database
// (SQLite file, and PostgreSQL when configured), each trusting a cached key
// for an hour. An alert raised on node A whose rule maps to suspend
// suspends the key, and node B, which has the key cached, refuses it
// within a second; the suspension is on the audit trail with the rule as
// its actor. A second alert about the key changes nothing more.
func TestAlertSuspensionReachesTheOtherNode(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			dir := t.TempDir()
			url := db.url(t)
			if url == "" {
				url = "sqlite://" + filepath.Join(dir, "shared.db")
			}
			cfgA := testConfig(filepath.Join(dir, "a"), url)
			cfgA.MasterKeyFile = filepath.Join(dir, "master.key")
			cfgA.Alerts.Actions = map[string]string{detect.RuleLoop: detect.ActionSuspend}
			cfgB := cfgA
			cfgB.DataDir = filepath.Join(dir, "b")
			a := startNode(t, cfgA, nil)
			b := startNode(t, cfgB, nil)
			addProvider(t, a.Node, "fake", fakeUpstream(t))
			id, key := addKey(t, a.Node, "looper", nil)
			waitFor(t, "node B serving the key", func() bool { return chat(t, b.Node, key) == http.StatusOK })

			alert := detect.Alert{Rule: detect.RuleLoop, KeyID: id, Severity: detect.SeverityMedium, Summary: "the same request 20 times in a minute"}
			raised := time.Now()
			a.det.engine.Raise(alert, id)
			within(t, raised, time.Second, "node B refuses the key an alert on node A suspended", func() bool {
				return chat(t, b.Node, key) == http.StatusForbidden
			})
			ctx := context.Background()
			k, err := b.core.st.GetKey(ctx, id)
			if err != nil || k.SuspendedAt == nil {
				t.Fatalf("the key as stored: suspended_at %v (%v)", k.SuspendedAt, err)
			}
			var ev audit.Event
			waitFor(t, "the suspension on the audit trail", func() bool {
				recs, err := a.core.st.SearchAudit(ctx, store.AuditFilter{KeyID: id, Type: "key.suspended"})
				return err == nil && len(recs) == 1 && json.Unmarshal(recs[0].Data, &ev) == nil
			})
			if ev.Actor != "alert" || ev.Fields["rule"] != detect.RuleLoop || ev.Fields["alert_id"] == "" || len(ev.Reasons) != 1 {
				t.Fatalf("the suspension's event does not name the rule that acted: %+v", ev)
			}

			// Another alert about the suspended key keeps its suspension time
			// and records nothing more.
			a.det.engine.Raise(alert, id+"-again")
			a.det.acting.Wait()
			again, err := a.core.st.GetKey(ctx, id)
			if err != nil || !again.SuspendedAt.Equal(*k.SuspendedAt) {
				t.Fatalf("a second alert moved suspended_at from %v to %v (%v)", k.SuspendedAt, again.SuspendedAt, err)
			}
			time.Sleep(200 * time.Millisecond) // the trail is written in batches
			if recs, err := a.core.st.SearchAudit(ctx, store.AuditFilter{KeyID: id, Type: "key.suspended"}); err != nil || len(recs) != 1 {
				t.Fatalf("%d key.suspended events after a second alert, want 1 (%v)", len(recs), err)
			}
		})
	}
}
