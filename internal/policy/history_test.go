package policy_test

import (
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/policy"
)

func TestObserveRecent(t *testing.T) {
	base := time.Date(2025, 3, 18, 12, 0, 0, 0, time.UTC)
	var h policy.History
	for i := range 10 {
		h.Observe(policy.Sighting{At: base.Add(time.Duration(i) * time.Minute)}, nil, 3)
	}
	if len(h.Recent) != 3 {
		t.Fatalf("kept %d uses, want 3", len(h.Recent))
	}
	for i, s := range h.Recent {
		if want := base.Add(time.Duration(7+i) * time.Minute); !s.At.Equal(want) {
			t.Errorf("Recent[%d] at %v, want %v", i, s.At, want)
		}
	}

	// A use reported late (from another gateway node) goes in time order.
	h.Observe(policy.Sighting{At: base.Add(8*time.Minute + 30*time.Second)}, nil, 3)
	want := []time.Duration{8 * time.Minute, 8*time.Minute + 30*time.Second, 9 * time.Minute}
	for i, s := range h.Recent {
		if !s.At.Equal(base.Add(want[i])) {
			t.Errorf("after a late use, Recent[%d] at %v, want %v", i, s.At, base.Add(want[i]))
		}
	}
	// One older than everything kept is dropped at once.
	h.Observe(policy.Sighting{At: base}, nil, 3)
	if !h.Recent[0].At.Equal(base.Add(8 * time.Minute)) {
		t.Errorf("a stale use displaced a newer one: %v", h.Recent)
	}

	var d policy.History
	for i := range 100 {
		d.Observe(policy.Sighting{At: base.Add(time.Duration(i) * time.Second)}, nil, 0)
	}
	if len(d.Recent) != policy.DefaultRecent {
		t.Errorf("keep 0 kept %d uses, want DefaultRecent (%d)", len(d.Recent), policy.DefaultRecent)
	}
	if cap(d.Recent) != policy.DefaultRecent {
		t.Errorf("Recent grew to a capacity of %d for %d uses kept", cap(d.Recent), policy.DefaultRecent)
	}

	// A history read back holding more than keep (kept with a larger
	// keep) is cut to the newest keep, the new use among them.
	long := policy.History{}
	for i := range 6 {
		long.Recent = append(long.Recent, policy.Sighting{At: base.Add(time.Duration(i) * time.Minute)})
	}
	long.Observe(policy.Sighting{At: base.Add(4*time.Minute + 30*time.Second)}, nil, 3)
	want = []time.Duration{4 * time.Minute, 4*time.Minute + 30*time.Second, 5 * time.Minute}
	if len(long.Recent) != 3 {
		t.Fatalf("kept %d uses, want 3", len(long.Recent))
	}
	for i, s := range long.Recent {
		if !s.At.Equal(base.Add(want[i])) {
			t.Errorf("after cutting, Recent[%d] at %v, want %v", i, s.At, base.Add(want[i]))
		}
	}
}

func TestObserveHours(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	var h policy.History
	// 2025-03-18 02:30 UTC is Monday 22:30 in New York and Tuesday 02:30 in UTC.
	at := time.Date(2025, 3, 18, 2, 30, 0, 0, time.UTC)
	h.Observe(policy.Sighting{At: at}, ny, 0)
	h.Observe(policy.Sighting{At: at}, nil, 0)
	if got := h.Hours[time.Monday][22]; got != 1 {
		t.Errorf("Hours[Mon][22] = %d, want 1 (New York)", got)
	}
	if got := h.Hours[time.Tuesday][2]; got != 1 {
		t.Errorf("Hours[Tue][2] = %d, want 1 (UTC for a nil zone)", got)
	}

	h.Hours[time.Monday][22] = math.MaxUint32
	h.Observe(policy.Sighting{At: at}, ny, 0)
	if got := h.Hours[time.Monday][22]; got != math.MaxUint32 {
		t.Errorf("count wrapped to %d", got)
	}
}

func TestObserveNetworksAndCountries(t *testing.T) {
	at := time.Date(2025, 3, 18, 12, 0, 0, 0, time.UTC)
	a := netip.MustParsePrefix("203.0.113.0/24")
	b := netip.MustParsePrefix("::ffff:198.51.100.0/120")
	var h policy.History
	h.Observe(policy.Sighting{At: at, Loc: policy.Location{Network: a, Country: "de"}}, nil, 0)
	h.Observe(policy.Sighting{At: at, Loc: policy.Location{Network: b, Country: "FR"}}, nil, 0)
	h.Observe(policy.Sighting{At: at, Loc: policy.Location{Network: a, Country: "DE"}}, nil, 0)
	h.Observe(policy.Sighting{At: at}, nil, 0) // unknown place: no network, no country

	want := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), a} // least recently used first
	if len(h.Networks) != 2 || h.Networks[0] != want[0] || h.Networks[1] != want[1] {
		t.Errorf("Networks = %v, want %v", h.Networks, want)
	}
	if h.Countries["DE"] != 2 || h.Countries["FR"] != 1 || len(h.Countries) != 2 {
		t.Errorf("Countries = %v, want DE:2 FR:1", h.Countries)
	}

	var many policy.History
	for i := range policy.MaxNetworks + 10 {
		p := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
		many.Observe(policy.Sighting{At: at, Loc: policy.Location{Network: p}}, nil, 0)
	}
	if len(many.Networks) != policy.MaxNetworks {
		t.Fatalf("kept %d networks, want %d", len(many.Networks), policy.MaxNetworks)
	}
	if got := many.Networks[0]; got != netip.MustParsePrefix("10.0.10.0/24") {
		t.Errorf("oldest kept network = %v, want 10.0.10.0/24", got)
	}
}

func TestHistoryClone(t *testing.T) {
	at := time.Date(2025, 3, 18, 12, 0, 0, 0, time.UTC)
	var h policy.History
	h.Observe(policy.Sighting{At: at, Loc: berlin}, nil, 4)
	c := h.Clone()
	c.Observe(policy.Sighting{At: at.Add(time.Hour), Loc: sydney}, nil, 4)
	c.Recent[0].Loc.Country = "XX"
	if len(h.Recent) != 1 || h.Recent[0].Loc.Country != "DE" || len(h.Networks) != 1 || h.Countries["AU"] != 0 {
		t.Errorf("changing a clone changed the original: %+v", h)
	}
}
