package pricing

import "testing"

func TestLookupAndCost(t *testing.T) {
	tab, err := NewTable(map[string]Price{"my-model": USD(1, 2), "gpt-4o-2024-08-06": USD(2.5, 10), "claude-sonnet-4*": USD(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model string
		want  Price
		ok    bool
	}{
		{"gpt-4o", USD(2.50, 10.00), true},
		{"gpt-4o-mini-2024-07-18", USD(0.15, 0.60), true}, // longest prefix wins over gpt-4o*
		{"gpt-4o-2024-08-06", USD(2.5, 10), true},
		{"my-model", USD(1, 2), true},
		{"my-model-2", Price{}, false},
		{"claude-sonnet-4-5", Price{}, true}, // overridden to free
		{"claude-opus-4-5-20251101", USD(5, 25), true},
		{"claude-opus-4-1", USD(15, 75), true},
		{"unknown", Price{}, false},
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

func TestNewTableRejectsBadOverrides(t *testing.T) {
	for _, name := range []string{"", "gpt-*-mini", "a**"} {
		if _, err := NewTable(map[string]Price{name: USD(1, 1)}); err == nil {
			t.Errorf("override %q accepted", name)
		}
	}
	if _, err := NewTable(map[string]Price{"x": {Input: -1}}); err == nil {
		t.Error("negative price accepted")
	}
}
