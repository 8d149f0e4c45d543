package usage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// Adder persists usage rows, adding them to stored totals; keygate's store
// implements it.
type Adder interface {
	AddUsage(ctx context.Context, rows []store.UsageRow) error
}

// Recorder adds up what each key consumed per day and model in memory and
// writes the totals in the background, so the request path never waits on
// the database. It is safe for concurrent use.
type Recorder struct {
	st  Adder
	log *slog.Logger
	loc *time.Location

	mu   sync.Mutex
	rows map[rowKey]*store.UsageRow
	day  dayCache
}

type rowKey struct{ key, day, model string }

// dayCache remembers the current day's name, so most records do not format
// a date.
type dayCache struct {
	start, end time.Time
	name       string
}

// NewRecorder returns a Recorder that names days in loc and writes through st.
func NewRecorder(st Adder, loc *time.Location, log *slog.Logger) *Recorder {
	if loc == nil {
		loc = time.UTC
	}
	return &Recorder{st: st, log: log, loc: loc, rows: map[rowKey]*store.UsageRow{}}
}

// Entry is one request's consumption.
type Entry struct {
	KeyID        string
	Model        string
	At           time.Time
	InputTokens  int64
	OutputTokens int64
	MicroUSD     int64
	Denied       bool // refused by keygate: counts as a denial, not a request
}

// Record adds one request.
func (r *Recorder) Record(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.At.Before(r.day.start) || !e.At.Before(r.day.end) {
		local := e.At.In(r.loc)
		y, m, d := local.Date()
		r.day.start = time.Date(y, m, d, 0, 0, 0, 0, r.loc)
		r.day.end = r.day.start.AddDate(0, 0, 1)
		r.day.name = local.Format(time.DateOnly)
	}
	k := rowKey{e.KeyID, r.day.name, e.Model}
	row := r.rows[k]
	if row == nil {
		row = &store.UsageRow{KeyID: e.KeyID, Day: r.day.name, Model: e.Model}
		r.rows[k] = row
	}
	if e.Denied {
		row.Denials++
		return
	}
	row.Requests++
	row.InputTokens += e.InputTokens
	row.OutputTokens += e.OutputTokens
	row.MicroUSD += e.MicroUSD
}

// Flush writes what was recorded since the last flush. If the write fails,
// the rows are kept for the next one.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	rows := make([]store.UsageRow, 0, len(r.rows))
	for _, row := range r.rows {
		rows = append(rows, *row)
	}
	r.rows = map[rowKey]*store.UsageRow{}
	r.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	if err := r.st.AddUsage(ctx, rows); err != nil {
		r.log.Warn("could not record usage; will retry", "rows", len(rows), "err", err)
		r.mu.Lock()
		for _, row := range rows {
			k := rowKey{row.KeyID, row.Day, row.Model}
			if cur := r.rows[k]; cur != nil {
				cur.Requests += row.Requests
				cur.InputTokens += row.InputTokens
				cur.OutputTokens += row.OutputTokens
				cur.MicroUSD += row.MicroUSD
				cur.Denials += row.Denials
			} else {
				row := row
				r.rows[k] = &row
			}
		}
		r.mu.Unlock()
	}
}

// Run flushes every interval until ctx ends, then once more.
func (r *Recorder) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.Flush(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.Flush(fctx)
			cancel()
			return
		}
	}
}
