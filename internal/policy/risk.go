package policy

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// Location is where a request came from, as a GeoIP database places its
// address. The zero Location is an unknown place.
type Location struct {
	Country  string       // ISO 3166-1 alpha-2 code, e.g. "DE"; "" when unknown
	Lat, Lon float64      // degrees; meaningful only when HasCoords
	Network  netip.Prefix // the database network holding the address; invalid when unknown
	// HasCoords reports whether Lat and Lon are known.
	HasCoords bool
}

// Sighting is one past use of a key: when and from where.
type Sighting struct {
	At  time.Time
	Loc Location
}

// History is what keygate has learned about how a key is used. The risk rules
// compare a new use against it; Observe adds each use that was let through.
type History struct {
	// Recent holds the latest uses, oldest first and newest last.
	Recent []Sighting
	// Hours counts past uses by local weekday (time.Weekday) and hour of day.
	Hours [7][24]uint32
	// Networks lists the networks the key has been used from, least
	// recently used first.
	Networks []netip.Prefix
	// Countries counts past uses by country code.
	Countries map[string]uint32
}

// Rule names, as they appear in Finding.Rule.
const (
	RuleCountry          = "country"           // the country allow or deny list tripped
	RuleImpossibleTravel = "impossible-travel" // too far from the last use, too soon
	RuleUnusualHour      = "unusual-hour"      // an hour of the day the key is rarely used in
	RuleNewNetwork       = "new-network"       // a network the key was never used from
)

// Defaults for the zero fields of RiskRules.
const (
	DefaultMaxSpeedKmh    = 1000 // km/h, a little above an airliner's cruising speed
	DefaultMinDistanceKm  = 1000 // km; GeoIP places can be hundreds of km off
	DefaultMinHistory     = 50   // uses before the hour rule judges
	DefaultHourShareBelow = 0.01 // an hour with under 1% of past uses is unusual
)

// RiskRules are a key's zero-trust risk rules. Each rule has its own Action;
// every rule is always checked, and a rule whose Action is Allow only records
// its findings. The zero value records findings with the defaults below and
// blocks nothing.
type RiskRules struct {
	// AllowCountries, when set, lists the only countries (ISO codes, any
	// case) a key may be used from; DenyCountries lists countries it may not
	// be used from. Both are checked only when the request's country is
	// known: an address no database can place (a private network, loopback)
	// passes them, so pair country rules with an IP allowlist where that matters.
	AllowCountries, DenyCountries []string
	// CountryAction is taken when a country rule trips.
	CountryAction Action

	// ImpossibleTravel is taken when a use is more than MinDistanceKm from
	// the last located use and reaching it would take more than MaxSpeedKmh.
	ImpossibleTravel Action
	// MaxSpeedKmh is the fastest plausible travel; 0 means DefaultMaxSpeedKmh.
	MaxSpeedKmh float64
	// MinDistanceKm is the distance below which travel is never judged, since
	// GeoIP places are approximate; 0 means DefaultMinDistanceKm.
	MinDistanceKm float64

	// UnusualHour is taken when a use falls in an hour of the day (on the
	// wall clock of Location, all weekdays together) that held less than
	// HourShareBelow of the key's past uses: 03:00 for a key used 9 to 5.
	UnusualHour Action
	// MinHistory is how many past uses the hour rule needs before it judges;
	// 0 means DefaultMinHistory.
	MinHistory int
	// HourShareBelow is the share of past uses under which an hour is
	// unusual; 0 means DefaultHourShareBelow.
	HourShareBelow float64

	// NewNetwork is taken on the first use from a network that overlaps none
	// the key has been used from, once it has been used at least once.
	NewNetwork Action

	// Location is the time zone whose hours the hour rule counts in, usually
	// the key owner's; nil means UTC. Pass the same zone to History.Observe.
	Location *time.Location
}

// Validate reports every problem in the rules, so an administrator can fix
// them in one go.
func (r RiskRules) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("policy: risk rules: "+format, args...))
	}
	for _, list := range []struct {
		name  string
		codes []string
	}{{"allow", r.AllowCountries}, {"deny", r.DenyCountries}} {
		for _, c := range list.codes {
			if !isCountryCode(c) {
				bad("country %s list entry %q is not a two-letter ISO 3166 code such as DE or US", list.name, c)
			}
		}
	}
	for _, c := range r.AllowCountries {
		if containsFold(r.DenyCountries, c) {
			bad("country %q is on both the allow and the deny list; remove it from one", c)
		}
	}
	for _, a := range []struct {
		name string
		a    Action
	}{{"CountryAction", r.CountryAction}, {"ImpossibleTravel", r.ImpossibleTravel}, {"UnusualHour", r.UnusualHour}, {"NewNetwork", r.NewNetwork}} {
		if a.a > Deny {
			bad("%s is %s; use allow, step-up or deny", a.name, a.a)
		}
	}
	if !(r.MaxSpeedKmh >= 0) || math.IsInf(r.MaxSpeedKmh, 0) {
		bad("maximum speed %v km/h must be a positive number (0 for the default of %d)", r.MaxSpeedKmh, DefaultMaxSpeedKmh)
	}
	if !(r.MinDistanceKm >= 0) || math.IsInf(r.MinDistanceKm, 0) {
		bad("minimum distance %v km must be a positive number (0 for the default of %d)", r.MinDistanceKm, DefaultMinDistanceKm)
	}
	if r.MinHistory < 0 {
		bad("minimum history %d must not be negative (0 for the default of %d)", r.MinHistory, DefaultMinHistory)
	}
	if !(r.HourShareBelow >= 0 && r.HourShareBelow < 1) {
		bad("hour share %v must be at least 0 and below 1, e.g. 0.01 for 1%% (0 for the default)", r.HourShareBelow)
	}
	return errors.Join(errs...)
}

// withDefaults fills in the zero (or nonsensical) tunables.
func (r RiskRules) withDefaults() RiskRules {
	if !(r.MaxSpeedKmh > 0) {
		r.MaxSpeedKmh = DefaultMaxSpeedKmh
	}
	if !(r.MinDistanceKm > 0) {
		r.MinDistanceKm = DefaultMinDistanceKm
	}
	if r.MinHistory <= 0 {
		r.MinHistory = DefaultMinHistory
	}
	if !(r.HourShareBelow > 0) {
		r.HourShareBelow = DefaultHourShareBelow
	}
	if r.Location == nil {
		r.Location = time.UTC
	}
	return r
}

// Finding is one rule that tripped.
type Finding struct {
	Rule   string // one of the Rule* names
	Action Action // what keygate does about it
	// Reason explains the finding with its numbers, for the audit record and
	// the alert, e.g. "8,770 km from the last use 2h0m ago (4,385 km/h)".
	Reason string
}

// Decision is the outcome of the risk rules for one request.
type Decision struct {
	// Action is the strongest action among the findings; Allow when none.
	Action Action
	// Findings lists every rule that tripped, in a fixed rule order.
	Findings []Finding
}

// Assess applies the risk rules to a use of a key at now from loc, given the
// key's history. stepUpDone reports that the caller already proved a second
// factor (a token whose amr claim includes "otp"): it turns StepUp findings
// into Allow, while Deny stays Deny. Assess does not change the history; call
// History.Observe for uses that are let through.
func Assess(r RiskRules, h History, now time.Time, loc Location, stepUpDone bool) Decision {
	r = r.withDefaults()
	var d Decision
	for _, check := range []func(RiskRules, *History, time.Time, Location) (Finding, bool){
		checkCountry, checkTravel, checkHour, checkNetwork,
	} {
		f, ok := check(r, &h, now, loc)
		if !ok {
			continue
		}
		f.Action = f.Action.effective()
		if f.Action == StepUp && stepUpDone {
			f.Action = Allow
			f.Reason += "; step-up already satisfied by a one-time password"
		}
		d.Action = max(d.Action, f.Action)
		d.Findings = append(d.Findings, f)
	}
	return d
}

func checkCountry(r RiskRules, _ *History, _ time.Time, loc Location) (Finding, bool) {
	if loc.Country == "" {
		return Finding{}, false
	}
	c := strings.ToUpper(loc.Country)
	if containsFold(r.DenyCountries, c) {
		return Finding{RuleCountry, r.CountryAction, fmt.Sprintf("request from %s, which is on the country deny list", c)}, true
	}
	if len(r.AllowCountries) > 0 && !containsFold(r.AllowCountries, c) {
		allowed := make([]string, len(r.AllowCountries))
		for i, a := range r.AllowCountries {
			allowed[i] = strings.ToUpper(a)
		}
		return Finding{RuleCountry, r.CountryAction, fmt.Sprintf("request from %s, which is not on the country allow list (%s)", c, strings.Join(allowed, ", "))}, true
	}
	return Finding{}, false
}

func checkTravel(r RiskRules, h *History, now time.Time, loc Location) (Finding, bool) {
	if !loc.HasCoords {
		return Finding{}, false
	}
	i := len(h.Recent) - 1
	for i >= 0 && !h.Recent[i].Loc.HasCoords {
		i--
	}
	if i < 0 {
		return Finding{}, false
	}
	last := h.Recent[i]
	dist := DistanceKm(last.Loc.Lat, last.Loc.Lon, loc.Lat, loc.Lon)
	if dist <= r.MinDistanceKm {
		return Finding{}, false
	}
	// A last use after now (clocks of two gateway nodes disagree) counts as
	// simultaneous: being in two distant places at once is the clearest case.
	elapsed := max(now.Sub(last.At), 0)
	speed := math.Inf(1)
	if elapsed > 0 {
		speed = dist / elapsed.Hours()
	}
	if speed <= r.MaxSpeedKmh {
		return Finding{}, false
	}
	reason := fmt.Sprintf("%s km from the last use %s ago (%s km/h)", thousands(dist), ago(elapsed), thousands(speed))
	if math.IsInf(speed, 1) {
		reason = fmt.Sprintf("%s km from the last use at the same moment", thousands(dist))
	}
	if last.Loc.Country != "" && loc.Country != "" {
		reason += fmt.Sprintf(", %s to %s", strings.ToUpper(last.Loc.Country), strings.ToUpper(loc.Country))
	}
	return Finding{RuleImpossibleTravel, r.ImpossibleTravel, reason}, true
}

func checkHour(r RiskRules, h *History, now time.Time, _ Location) (Finding, bool) {
	total := h.uses()
	if total < uint64(r.MinHistory) {
		return Finding{}, false
	}
	lt := now.In(r.Location)
	var n uint64
	for wd := range h.Hours {
		n += uint64(h.Hours[wd][lt.Hour()])
	}
	share := float64(n) / float64(total)
	if share >= r.HourShareBelow {
		return Finding{}, false
	}
	return Finding{RuleUnusualHour, r.UnusualHour, fmt.Sprintf(
		"use at %s %s time; %s of %s past uses fell in the %02d:00 hour (%s, unusual below %s)",
		lt.Format("Mon 15:04"), r.Location, thousands(float64(n)), thousands(float64(total)), lt.Hour(), percent(share), percent(r.HourShareBelow))}, true
}

func checkNetwork(r RiskRules, h *History, _ time.Time, loc Location) (Finding, bool) {
	if !loc.Network.IsValid() || (len(h.Recent) == 0 && len(h.Networks) == 0 && h.uses() == 0) {
		return Finding{}, false
	}
	n := normalizePrefix(loc.Network)
	for _, p := range h.Networks {
		if p.Overlaps(n) {
			return Finding{}, false
		}
	}
	where := ""
	if loc.Country != "" {
		where = " in " + strings.ToUpper(loc.Country)
	}
	return Finding{RuleNewNetwork, r.NewNetwork, fmt.Sprintf("first use from network %s%s; %s seen before", n, where, plural(len(h.Networks), "network"))}, true
}

// normalizePrefix writes an IPv4-mapped prefix as IPv4 and clears host bits.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func isCountryCode(c string) bool {
	return len(c) == 2 && isLetter(c[0]) && isLetter(c[1])
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// plural writes "1 network" or "3 networks".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
