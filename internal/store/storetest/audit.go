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
	must(t, s.PutAuditCheckpoint(ctx(t), "n1", 3, []byte(`{"seq":3}`)))
	cps, err := s.ListAuditCheckpoints(ctx(t), "n1", 0, 0)
	must(t, err)
	if len(cps) != 2 || cps[0].Seq != 2 || string(cps[0].Data) != `{"seq":2}` || cps[1].Seq != 3 || cps[1].Node != "n1" {
		t.Fatalf("checkpoints %+v", cps)
	}
	cps, err = s.ListAuditCheckpoints(ctx(t), "n1", 2, 1)
	must(t, err)
	if len(cps) != 1 || cps[0].Seq != 3 {
		t.Fatalf("checkpoints after seq 2, limit 1: %+v", cps)
	}
	lastCP, err := s.LastAuditCheckpoint(ctx(t), "n1")
	must(t, err)
	if lastCP.Seq != 3 || string(lastCP.Data) != `{"seq":3}` {
		t.Fatalf("last checkpoint %+v", lastCP)
	}
	_, err = s.LastAuditCheckpoint(ctx(t), "n2")
	wantErr(t, err, store.ErrNotFound, "LastAuditCheckpoint of a node without checkpoints")
	nodes, err := s.AuditNodes(ctx(t))
	must(t, err)
	if len(nodes) != 2 || nodes[0] != "n1" || nodes[1] != "n2" {
		t.Fatalf("nodes %v", nodes)
	}
	// A node whose events were all deleted is still listed by its checkpoints,
	// so verify sees that its trail is gone.
	must(t, s.PutAuditCheckpoint(ctx(t), "n3", 7, []byte(`{"seq":7}`)))
	nodes, err = s.AuditNodes(ctx(t))
	must(t, err)
	if len(nodes) != 3 || nodes[2] != "n3" {
		t.Fatalf("nodes with a checkpoint-only node: %v", nodes)
	}
}
