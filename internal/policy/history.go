package policy

import (
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// DefaultRecent is how many recent uses Observe keeps when asked to keep
// none or fewer.
const DefaultRecent = 16

// MaxNetworks bounds History.Networks: past it, Observe forgets the network
// used least recently.
const MaxNetworks = 256

// Observe records a use of the key: it adds s to Recent (in time order,
// keeping the newest keep uses, or DefaultRecent if keep < 1), counts it in
// Hours by its weekday and hour in loc (nil means UTC; use the RiskRules'
// Location), remembers its network and counts its country. Counts stop at
// the largest uint32 rather than wrapping.
//
// Observe only uses that were let through: a refused attacker must not
// become part of the key's normal pattern. Observe changes h in place,
// including its slices and map; Clone it first if another goroutine may be
// reading it.
func (h *History) Observe(s Sighting, loc *time.Location, keep int) {
	if loc == nil {
		loc = time.UTC
	}
	if keep < 1 {
		keep = DefaultRecent
	}

	h.addRecent(s, keep)

	lt := s.At.In(loc)
	if c := &h.Hours[lt.Weekday()][lt.Hour()]; *c < math.MaxUint32 {
		*c++
	}

	if s.Loc.Network.IsValid() {
		p := normalizePrefix(s.Loc.Network)
		if j := slices.Index(h.Networks, p); j >= 0 {
			h.Networks = slices.Delete(h.Networks, j, j+1)
		}
		h.Networks = append(h.Networks, p)
		if n := len(h.Networks); n > MaxNetworks {
			h.Networks = append(h.Networks[:0], h.Networks[n-MaxNetworks:]...)
		}
	}

	if s.Loc.Country != "" {
		if h.Countries == nil {
			h.Countries = make(map[string]uint32)
		}
		c := strings.ToUpper(s.Loc.Country)
		if h.Countries[c] < math.MaxUint32 {
			h.Countries[c]++
		}
	}
}

// addRecent inserts s into Recent in time order and keeps the newest
// keep. Recent's capacity never passes keep: a full Recent drops its
// oldest use in place instead of growing.
func (h *History) addRecent(s Sighting, keep int) {
	i := len(h.Recent)
	for i > 0 && h.Recent[i-1].At.After(s.At) {
		i--
	}
	n := len(h.Recent)
	if n < keep {
		if n == cap(h.Recent) {
			grown := make([]Sighting, n, min(keep, max(4, 2*n)))
			copy(grown, h.Recent)
			h.Recent = grown
		}
		h.Recent = slices.Insert(h.Recent, i, s)
		return
	}
	if i > 0 { // else s is older than every use kept: it is the one dropped
		copy(h.Recent[:i-1], h.Recent[1:i])
		h.Recent[i-1] = s
	}
	if n > keep {
		h.Recent = append(h.Recent[:0], h.Recent[n-keep:]...)
	}
}

// Clone returns a copy of h that shares no memory with it.
func (h History) Clone() History {
	h.Recent = slices.Clone(h.Recent)
	h.Networks = slices.Clone(h.Networks)
	h.Countries = maps.Clone(h.Countries)
	return h
}

// uses returns the number of uses counted in Hours.
func (h *History) uses() uint64 {
	var n uint64
	for wd := range h.Hours {
		for hr := range h.Hours[wd] {
			n += uint64(h.Hours[wd][hr])
		}
	}
	return n
}
