package usage

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

func TestRecorderAddsUpPerDayInItsTimeZone(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t))
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(st, berlin, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// 23:30 UTC on 30 November is already 1 December in Berlin.
	late := time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC)
	r.Record(Entry{KeyID: "key_1", Model: "gpt-4o", At: late, InputTokens: 10, OutputTokens: 5, MicroUSD: 75})
	r.Record(Entry{KeyID: "key_1", Model: "gpt-4o", At: late.Add(time.Minute), InputTokens: 1, OutputTokens: 1, MicroUSD: 1})
	r.Record(Entry{KeyID: "key_1", Model: "gpt-4o", At: late, Denied: true})
	r.Record(Entry{KeyID: "key_1", Model: "gpt-4o", At: late.Add(-time.Hour)}) // 23:30 Berlin, 30 November
	r.Flush(context.Background())
	r.Flush(context.Background()) // nothing new: nothing written twice
	rows, err := st.ListUsage(context.Background(), "key_1", "2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Day != "2026-12-01" || rows[0].Requests != 2 || rows[0].Denials != 1 ||
		rows[0].InputTokens != 11 || rows[0].OutputTokens != 6 || rows[0].MicroUSD != 76 ||
		rows[1].Day != "2026-11-30" || rows[1].Requests != 1 {
		t.Fatalf("rows %+v", rows)
	}
}

func TestRecorderKeepsRowsWhenTheWriteFails(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t))
	flaky := &flakyAdder{Adder: st, fail: true}
	r := NewRecorder(flaky, time.UTC, slog.New(slog.NewTextHandler(io.Discard, nil)))
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r.Record(Entry{KeyID: "key_1", Model: "m", At: at, InputTokens: 3})
	r.Flush(context.Background())
	r.Record(Entry{KeyID: "key_1", Model: "m", At: at, InputTokens: 4})
	flaky.fail = false
	r.Flush(context.Background())
	rows, _ := st.ListUsage(context.Background(), "key_1", "2026-12-01")
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].InputTokens != 7 {
		t.Fatalf("after a failed write: %+v", rows)
	}
}

type flakyAdder struct {
	Adder
	fail bool
}

func (f *flakyAdder) AddUsage(ctx context.Context, rows []store.UsageRow) error {
	if f.fail {
		return errors.New("database unavailable")
	}
	return f.Adder.AddUsage(ctx, rows)
}
