package storetest

import (
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

func testAudit(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	_, err := s.LastAudit(ctx(t), "n1")
	wantErr(t, err, store.ErrNotFound, "LastAudit of an empty trail")
	rec := func(seq uint64, typ, key string, off time.Duration) store.AuditRecord {
		return store.AuditRecord{Node: "n1", Seq: seq, Time: at(off), Type: typ, KeyID: key, Data: []byte(`{"seq":` + string(rune('0'+seq)) + `}`)}
	}
	must(t, s.AppendAudit(ctx(t), []store.AuditRecord{rec(1, "auth.success", "key_1", 0), rec(2, "auth.failure", "", time.Minute), rec(3, "auth.success", "key_2", 2*time.Minute)}))
	// A batch with a stored seq lands not at all.
	wantErr(t, s.AppendAudit(ctx(t), []store.AuditRecord{rec(4, "x", "", 3*time.Minute), rec(3, "x", "", 3*time.Minute)}), store.ErrConflict, "AppendAudit of a stored seq")
	// Another node's chain has its own seqs.
	other := rec(1, "auth.success", "key_9", 5*time.Minute)
	other.Node = "n2"
	must(t, s.AppendAudit(ctx(t), []store.AuditRecord{other}))
	last, err := s.LastAudit(ctx(t), "n1")
	must(t, err)
	if last.Seq != 3 || last.KeyID != "key_2" || string(last.Data) != `{"seq":3}` {
		t.Fatalf("last %+v", last)
	}
	checkTime(t, "Time", last.Time, at(2*time.Minute))
	got, err := s.SearchAudit(ctx(t), store.AuditFilter{KeyID: "key_1"})
	must(t, err)
	if len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("by key: %+v", got)
	}
	got, err = s.SearchAudit(ctx(t), store.AuditFilter{Node: "n1", Since: at(30 * time.Second), Type: "auth.success"})
	must(t, err)
	if len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("since and type: %+v", got)
	}
	got, err = s.SearchAudit(ctx(t), store.AuditFilter{Node: "n1", AfterSeq: 1, Limit: 1})
	must(t, err)
	if len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("after seq 1, limit 1: %+v", got)
	}
	must(t, s.PutAuditCheckpoint(ctx(t), "n1", 2, []byte(`{"seq":2}`)))
	wantErr(t, s.PutAuditCheckpoint(ctx(t), "n1", 2, []byte(`{}`)), store.ErrConflict, "a second checkpoint at one seq")
	cps, err := s.ListAuditCheckpoints(ctx(t), "n1")
	must(t, err)
	if len(cps) != 1 || string(cps[0]) != `{"seq":2}` {
		t.Fatalf("checkpoints %q", cps)
	}
	nodes, err := s.AuditNodes(ctx(t))
	must(t, err)
	if len(nodes) != 2 || nodes[0] != "n1" || nodes[1] != "n2" {
		t.Fatalf("nodes %v", nodes)
	}
}
