package console_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/console"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/vault"
)

// BenchmarkConsole measures the overview and a key's page, every query and
// the render, on a seeded store: 10,000 keys, 1,000,000 usage rows and
// 1,000,000 audit events with KEYGATE_BENCH_FULL=1 (the size, goal
// under 300 ms a page); a tenth of that otherwise, so an ordinary run
// stays quick. PostgreSQL runs too when KEYGATE_TEST_POSTGRES_URL is set.
//
//	KEYGATE_BENCH_FULL=1 go test ./internal/console -run '^$' -bench Console -benchtime 10x
func BenchmarkConsole(b *testing.B) {
	keys, days, events := 1000, 100, 100_000
	if os.Getenv("KEYGATE_BENCH_FULL") == "1" {
		keys, days, events = 10_000, 100, 1_000_000
	}
	dbs := map[string]func(testing.TB) string{"sqlite": storetest.SQLiteURL}
	if os.Getenv(storetest.PostgresEnv) != "" {
		dbs["postgres"] = storetest.PostgresURL
	}
	for name, url := range dbs {
		b.Run(name, func(b *testing.B) {
			st := storetest.Open(b, url(b))
			now := time.Now().UTC()
			start := time.Now()
			keyID := seed(b, st, now, keys, days, events)
			b.Logf("seeded %d keys, %d usage rows, %d audit events in %v", keys, keys*days, events, time.Since(start).Round(time.Millisecond))
			h, token := consoleFor(b, st)
			for _, page := range []string{"/", "/keys/" + keyID} {
				b.Run(map[string]string{"/": "overview"}[page]+map[bool]string{true: "key"}[page != "/"], func(b *testing.B) {
					for b.Loop() {
						req := httptest.NewRequest("GET", page, nil)
						req.Header.Set("Authorization", "Bearer "+token)
						w := httptest.NewRecorder()
						h.ServeHTTP(w, req)
						if w.Code != http.StatusOK {
							b.Fatalf("GET %s: %d %s", page, w.Code, w.Body.String())
						}
					}
				})
			}
		})
	}
}

// seed fills st in one transaction and returns a busy key's id.
func seed(b *testing.B, st *store.Store, now time.Time, keys, days, events int) string {
	ctx := context.Background()
	ids := make([]string, keys)
	err := st.InTx(ctx, func(tx *store.Store) error {
		for i := range keys {
			ids[i] = fmt.Sprintf("key_bench%08d", i)
			hash := make([]byte, 32)
			_, _ = rand.Read(hash)
			limits := []byte("{}")
			if i%10 == 0 {
				limits = []byte(`{"budgets":[{"micro_usd":1000000,"period":"day"}]}`)
			}
			last := now.Add(-time.Duration(i%60) * 24 * time.Hour)
			k := store.Key{ID: ids[i], Name: fmt.Sprintf("bench-%05d", i), Env: "test", Prefix: fmt.Sprintf("kg_test_%05d", i),
				Hash: hash, CreatedAt: now.Add(-200 * 24 * time.Hour), LastUsedAt: &last, Limits: limits, Team: fmt.Sprintf("team-%d", i%20)}
			if err := tx.CreateKey(ctx, k); err != nil {
				return err
			}
		}
		rows := make([]store.UsageRow, 0, 10_000)
		for d := range days {
			day := now.AddDate(0, 0, -d).Format(time.DateOnly)
			for i := range keys {
				rows = append(rows, store.UsageRow{KeyID: ids[i], Day: day, Model: []string{"gpt-4o-mini", "claude-3-5-haiku"}[i%2],
					Requests: int64(10 + i%7), InputTokens: 1000, OutputTokens: 500, MicroUSD: int64(1000 * (1 + i%13)), Denials: int64(i % 3)})
				if len(rows) == cap(rows) {
					if err := tx.AddUsage(ctx, rows); err != nil {
						return err
					}
					rows = rows[:0]
				}
			}
		}
		if err := tx.AddUsage(ctx, rows); err != nil {
			return err
		}
		recs := make([]store.AuditRecord, 0, 10_000)
		span := 30 * 24 * time.Hour
		for e := range events {
			// Evenly over the span, newest first (span*e would overflow).
			at := now.Add(-span / time.Duration(events) * time.Duration(e))
			key := ids[e%keys]
			data, _ := json.Marshal(map[string]any{"seq": e + 1, "time": at, "type": "request", "key_id": key, "client": "192.0.2.1",
				"resource": "POST /v1/chat/completions", "decision": []string{"allow", "allow", "allow", "deny"}[e%4],
				"reasons": []string{"budget exceeded"}[:e%4/3], "prev": "", "hash": ""})
			recs = append(recs, store.AuditRecord{Node: "bench", Seq: uint64(e + 1), Time: at, Type: "request", KeyID: key, Data: data})
			if len(recs) == cap(recs) {
				if err := tx.AppendAudit(ctx, recs); err != nil {
					return err
				}
				recs = recs[:0]
			}
		}
		return tx.AppendAudit(ctx, recs)
	})
	if err != nil {
		b.Fatal(err)
	}
	return ids[0]
}

// consoleFor builds the admin API over st and the console over it, and
// returns an owner credential.
func consoleFor(b *testing.B, st *store.Store) (http.Handler, string) {
	mk := make([]byte, vault.MasterKeySize)
	_, _ = rand.Read(mk)
	kek, err := vault.NewLocalKEK(mk)
	if err != nil {
		b.Fatal(err)
	}
	pepper := make([]byte, apikey.MinPepperSize)
	_, _ = rand.Read(pepper)
	hasher, err := apikey.NewHasher(pepper)
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := admin.NewToken(context.Background(), st, hasher, admin.TokenSpec{Name: "bench", Role: "owner", TTL: time.Hour}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	api := admin.New(admin.Options{Store: st, Vault: vault.New(kek, st), Hasher: hasher, People: st, Credentials: st, Approvals: st,
		AuditStore: st, Insights: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c, err := console.New(console.Options{API: api})
	if err != nil {
		b.Fatal(err)
	}
	return c.Mount(), tok.Reveal()
}
