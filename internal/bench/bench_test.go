package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // keygate's default store, as cmd/keygate registers it
)

// TestRunInProcess runs the whole harness briefly with the servers in this
// process: every target must answer every request, and the report must carry
// each row. Throughput ratios are checked by `keygate bench --short
// --min-ratio` in CI, outside the race detector.
func TestRunInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Concurrencies: []int{4}, Round: 300 * time.Millisecond, Rounds: 2, StreamSamples: 5, NoLeakCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{Direct, Baseline, Pooled, Keygate, NoLeaks} {
		row, ok := rep.Row(target, 4)
		if !ok || row.Requests == 0 || row.Errors != 0 || row.RPS <= 0 || row.P50 <= 0 {
			t.Fatalf("%s: %+v (present %v)", target, row, ok)
		}
	}
	for _, tt := range rep.TTFB {
		if tt.P50 <= 0 || tt.TextP50 < tt.P50 {
			t.Fatalf("streaming times for %s: first byte %v, first text %v", tt.Target, tt.P50, tt.TextP50)
		}
	}
	var out bytes.Buffer
	rep.WriteMarkdown(&out)
	if !strings.Contains(out.String(), "| 4 | keygate |") || !strings.Contains(out.String(), "Credential check at c=4") || rep.Ratio(4) <= 0 {
		t.Fatalf("report:\n%s", out.String())
	}
}
