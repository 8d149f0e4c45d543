package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// BenchmarkAppendAudit measures the audit trail's database sink: batches of
// events as the writer flushes them, reported per event.
func BenchmarkAppendAudit(b *testing.B) {
	urls := map[string]func(testing.TB) string{"sqlite": storetest.SQLiteURL, "postgres": storetest.PostgresURL}
	for name, url := range urls {
		for _, batch := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				st := storetest.Open(b, url(b))
				data := []byte(`{"seq":1,"time":"2026-12-01T16:00:00.123456789Z","type":"request","key_id":"key_abcdef","client":"203.0.113.9","resource":"POST /v1/chat/completions","decision":"allow","fields":{"model":"gpt-4o-mini","provider":"openai","request_id":"req_0123456789ab_1","status":"200"},"prev":"9c1e","hash":"4b7d"}`)
				recs := make([]store.AuditRecord, batch)
				seq := uint64(0)
				b.ReportAllocs()
				for b.Loop() {
					for i := range recs {
						seq++
						recs[i] = store.AuditRecord{Node: "bench", Seq: seq, Time: time.Now(), Type: "request", KeyID: "key_abcdef", Data: data}
					}
					if err := st.AppendAudit(context.Background(), recs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/event")
			})
		}
	}
}
