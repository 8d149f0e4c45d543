package pricing

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestLookupAndCost(t *testing.T) {
	tab, err := NewTable(map[string]Price{"my-model": USD(1, 2), "gpt-4o-2024-08-06": USD(2.5, 10), "claude-sonnet-4": USD(0, 0), "acme-*": USD(4, 4)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model string
		want  Price
		ok    bool
	}{
		{"gpt-4o", USD(2.50, 10.00), true},
		{"gpt-4o-mini-2024-07-18", USD(0.15, 0.60), true}, // a dated snapshot of gpt-4o-mini
		{"gpt-4o-2024-08-06", USD(2.5, 10), true},
		{"gpt-4o-2024-05-13", USD(5, 15), true}, // this snapshot lists at twice gpt-4o
		{"my-model", USD(1, 2), true},
		{"my-model-2", Price{}, false},
		{"claude-sonnet-4", Price{}, true},          // overridden to free
		{"claude-sonnet-4-20250514", Price{}, true}, // and its snapshot with it
		{"claude-opus-4-5-20251101", USD(5, 25), true},
		{"claude-opus-4-1", USD(15, 75), true},
		{"claude-3-5-haiku@20241022", USD(0.80, 4), true}, // Vertex's snapshot spelling
		{"acme-large", USD(4, 4), true},                   // a configured pattern
		{"unknown", Price{}, false},
		// Longer names are different models, often dearer ones: never
		// priced by a shorter name's entry.
		{"gpt-5-pro", USD(15, 120), true},
		{"gpt-5-pro-2025-10-06", USD(15, 120), true},
		{"o3-pro", USD(20, 80), true},
		{"o3-deep-research", Price{}, false},
		{"gpt-5-codex", Price{}, false},
		{"gpt-4o-audio-preview", Price{}, false},
		{"gpt-4o-realtime-preview-2024-12-17", Price{}, false},
		{"o1", Price{}, false},
		{"o1-pro", Price{}, false},
		{"gpt-4o-2024-13-40", Price{}, false}, // not a date
		{"gpt-4o-99999999", Price{}, false},
	} {
		got, ok := tab.Lookup(tc.model)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tc.model, got, ok, tc.want, tc.ok)
		}
	}
	// 1,000 input and 500 output tokens of gpt-4o: 0.0025 + 0.005 USD.
	if c := USD(2.50, 10.00).Cost(1000, 500); c != 7500 {
		t.Fatalf("cost = %d micro-USD, want 7500", c)
	}
	// Fractions of a micro-dollar round up.
	if c := USD(0.15, 0).Cost(1, 0); c != 1 {
		t.Fatalf("one token cost %d, want 1 (rounded up)", c)
	}
	if c := USD(1, 1).Cost(-5, 0); c != 0 {
		t.Fatalf("negative tokens cost %d", c)
	}
}

// TestCostNeverWraps holds Cost to its promise: a product too large for 64
// bits saturates instead of wrapping to a small charge, and the cost never
// falls as either count grows.
func TestCostNeverWraps(t *testing.T) {
	p := USD(15, 120)
	// out * 120e6 wraps int64 near out = 1.54e11 and uint64 near 1.54e11*2.
	for _, out := range []int64{1 << 40, 153_722_867_281, 153_722_867_282, 1 << 50, math.MaxInt64 / 2, math.MaxInt64} {
		if c := p.Cost(1, out); c < p.Cost(1, 1<<30) {
			t.Errorf("Cost(1, %d) = %d, less than Cost of far fewer tokens", out, c)
		}
	}
	if c := (Price{Input: MaxPrice, Output: MaxPrice}).Cost(math.MaxInt64, math.MaxInt64); c != math.MaxInt64 {
		t.Errorf("the largest cost saturates at %d, want MaxInt64", c)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		price := Price{Input: r.Int64N(MaxPrice + 1), Output: r.Int64N(MaxPrice + 1)}
		in, out := r.Int64N(math.MaxInt64), r.Int64N(math.MaxInt64)
		if r.IntN(2) == 0 {
			in, out = r.Int64N(1<<40), r.Int64N(1<<40)
		}
		c := price.Cost(in, out)
		if c < 0 {
			t.Fatalf("%+v.Cost(%d, %d) = %d, negative", price, in, out, c)
		}
		more := out + r.Int64N(1<<30)
		if more < out {
			continue
		}
		if c2 := price.Cost(in, more); c2 < c {
			t.Fatalf("%+v: Cost(%d, %d) = %d but Cost(%d, %d) = %d: more tokens cost less", price, in, out, c, in, more, c2)
		}
	}
}

func TestNewTableRejectsBadOverrides(t *testing.T) {
	for _, name := range []string{"", "*", "gpt-*-mini", "a**"} {
		if _, err := NewTable(map[string]Price{name: USD(1, 1)}); err == nil {
			t.Errorf("override %q accepted", name)
		}
	}
	if _, err := NewTable(map[string]Price{"x": {Input: -1}}); err == nil {
		t.Error("negative price accepted")
	}
	if _, err := NewTable(map[string]Price{"x": {Output: MaxPrice + 1}}); err == nil {
		t.Error("an absurd price accepted")
	}
}

// TestLongContextPrice: a Gemini Pro call whose prompt is over 200,000
// tokens is billed the long-context price for all its tokens.
func TestLongContextPrice(t *testing.T) {
	tab, err := NewTable(nil)
	if err != nil {
		t.Fatal(err)
	}
	pro, ok := tab.Lookup("gemini-2.5-pro")
	if !ok {
		t.Fatal("gemini-2.5-pro is unpriced")
	}
	if got := pro.Cost(200_000, 1_000); got != 200_000*1_250_000/1_000_000+1_000*10_000_000/1_000_000 {
		t.Fatalf("at the threshold: %d", got)
	}
	if got := pro.Cost(200_001, 1_000); got != (200_001*2_500_000+1_000*15_000_000+999_999)/1_000_000 {
		t.Fatalf("over the threshold: %d", got)
	}
	if flash, _ := tab.Lookup("gemini-2.5-flash"); flash.Cost(1_000_000, 0) != 300_000 {
		t.Fatalf("flash: %d", flash.Cost(1_000_000, 0))
	}
}
