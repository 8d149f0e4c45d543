package policy_test

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/policy"
)

var (
	berlin = policy.Location{Country: "DE", Lat: 52.52, Lon: 13.405, HasCoords: true, Network: netip.MustParsePrefix("203.0.113.0/24")}
	paris  = policy.Location{Country: "FR", Lat: 48.8566, Lon: 2.3522, HasCoords: true, Network: netip.MustParsePrefix("192.0.2.0/24")}
	sydney = policy.Location{Country: "AU", Lat: -33.8688, Lon: 151.2093, HasCoords: true, Network: netip.MustParsePrefix("198.51.100.0/24")}
	nyc    = policy.Location{Country: "US", Lat: 40.7128, Lon: -74.0060, HasCoords: true, Network: netip.MustParsePrefix("2001:db8:1::/48")}
)

// officeHistory is a key used only on weekdays from 09:00 to 17:00 Berlin
// time from the Berlin office: one use in each of those hours for ten weeks
// (400 uses), ending on Friday 2025-03-14 at 16:15.
func officeHistory(t *testing.T) (policy.History, *time.Location) {
	t.Helper()
	loc := mustZone(t, "Europe/Berlin")
	var h policy.History
	monday := time.Date(2025, 1, 6, 0, 0, 0, 0, loc)
	for week := range 10 {
		for day := range 5 {
			for hour := 9; hour < 17; hour++ {
				at := monday.AddDate(0, 0, 7*week+day).Add(time.Duration(hour)*time.Hour + 15*time.Minute)
				h.Observe(policy.Sighting{At: at, Loc: berlin}, loc, 0)
			}
		}
	}
	return h, loc
}

// noNet is loc without its network, so that only the distance rules see it.
func noNet(loc policy.Location) policy.Location {
	loc.Network = netip.Prefix{}
	return loc
}

// justSeen is a history whose only use was at loc, at the given time.
func justSeen(at time.Time, loc policy.Location) policy.History {
	var h policy.History
	h.Observe(policy.Sighting{At: at, Loc: loc}, time.UTC, 0)
	return h
}

func TestAssess(t *testing.T) {
	office, berlinTZ := officeHistory(t)
	local := func(month time.Month, day, hh, mm int) time.Time {
		return time.Date(2025, month, day, hh, mm, 0, 0, berlinTZ)
	}
	noon := time.Date(2025, 3, 18, 12, 0, 0, 0, time.UTC)
	all := func(a policy.Action) policy.RiskRules {
		return policy.RiskRules{
			CountryAction: a, ImpossibleTravel: a, UnusualHour: a, NewNetwork: a,
			Location: berlinTZ, DenyCountries: []string{"KP"},
		}
	}

	type finding struct {
		rule   string
		action policy.Action
		reason string // a regexp the reason must match
	}
	for _, tc := range []struct {
		name    string
		rules   policy.RiskRules
		history policy.History
		now     time.Time
		loc     policy.Location
		stepUp  bool
		want    policy.Action
		finds   []finding
	}{
		{
			name:    "a normal day: Monday 10:30 from the office",
			rules:   all(policy.Deny),
			history: office, now: local(3, 17, 10, 30), loc: berlin,
			want: policy.Allow,
		},
		{
			name:    "3 AM local for a 9-to-5 key",
			rules:   all(policy.StepUp),
			history: office, now: local(3, 18, 3, 0), loc: berlin,
			want: policy.StepUp,
			finds: []finding{{policy.RuleUnusualHour, policy.StepUp,
				`^use at Tue 03:00 Europe/Berlin time; 0 of 400 past uses fell in the 03:00 hour \(0\.00%, unusual below 1\.00%\)$`}},
		},
		{
			name:    "3 AM is judged in the rules' zone, not the server's",
			rules:   all(policy.StepUp),
			history: office, now: time.Date(2025, 3, 18, 2, 0, 0, 0, time.UTC), loc: berlin,
			want:  policy.StepUp,
			finds: []finding{{policy.RuleUnusualHour, policy.StepUp, `Tue 03:00 Europe/Berlin`}},
		},
		{
			name:    "3 AM with a one-time password",
			rules:   all(policy.StepUp),
			history: office, now: local(3, 18, 3, 0), loc: berlin, stepUp: true,
			want:  policy.Allow,
			finds: []finding{{policy.RuleUnusualHour, policy.Allow, `; step-up already satisfied by a one-time password$`}},
		},
		{
			name:    "3 AM recorded only",
			rules:   all(policy.Allow),
			history: office, now: local(3, 18, 3, 0), loc: berlin,
			want:  policy.Allow,
			finds: []finding{{policy.RuleUnusualHour, policy.Allow, `03:00 hour`}},
		},
		{
			name:    "3 AM with too little history",
			rules:   policy.RiskRules{UnusualHour: policy.Deny, Location: berlinTZ, MinHistory: 401},
			history: office, now: local(3, 18, 3, 0), loc: berlin,
			want: policy.Allow,
		},
		{
			name:    "an hour under a custom share",
			rules:   policy.RiskRules{UnusualHour: policy.StepUp, Location: berlinTZ, HourShareBelow: 0.2},
			history: office, now: local(3, 18, 10, 0), loc: berlin,
			want:  policy.StepUp,
			finds: []finding{{policy.RuleUnusualHour, policy.StepUp, `50 of 400 past uses fell in the 10:00 hour \(12\.50%, unusual below 20\.00%\)`}},
		},
		{
			name:    "Berlin to Sydney in 45 minutes",
			rules:   all(policy.Deny),
			history: justSeen(noon, berlin), now: noon.Add(45 * time.Minute), loc: sydney,
			want: policy.Deny,
			finds: []finding{
				{policy.RuleImpossibleTravel, policy.Deny, `^16,095 km from the last use 45m ago \(21,459 km/h\), DE to AU$`},
				{policy.RuleNewNetwork, policy.Deny, `^first use from network 198\.51\.100\.0/24 in AU; 1 network seen before$`},
			},
		},
		{
			name:    "Berlin to Sydney: Deny is not overridden by a one-time password",
			rules:   policy.RiskRules{ImpossibleTravel: policy.Deny},
			history: justSeen(noon, berlin), now: noon.Add(45 * time.Minute), loc: noNet(sydney), stepUp: true,
			want:  policy.Deny,
			finds: []finding{{policy.RuleImpossibleTravel, policy.Deny, `km/h\), DE to AU$`}},
		},
		{
			name:    "Berlin to Sydney at the same moment",
			rules:   policy.RiskRules{ImpossibleTravel: policy.StepUp},
			history: justSeen(noon, berlin), now: noon, loc: noNet(sydney),
			want:  policy.StepUp,
			finds: []finding{{policy.RuleImpossibleTravel, policy.StepUp, `^16,095 km from the last use at the same moment, DE to AU$`}},
		},
		{
			name:    "last use recorded after now (clock skew) counts as the same moment",
			rules:   policy.RiskRules{ImpossibleTravel: policy.StepUp},
			history: justSeen(noon.Add(time.Second), berlin), now: noon, loc: noNet(sydney),
			want:  policy.StepUp,
			finds: []finding{{policy.RuleImpossibleTravel, policy.StepUp, `at the same moment`}},
		},
		{
			name:    "Berlin to New York in 2 hours",
			rules:   policy.RiskRules{ImpossibleTravel: policy.StepUp},
			history: justSeen(noon, berlin), now: noon.Add(2 * time.Hour), loc: noNet(nyc),
			want:  policy.StepUp,
			finds: []finding{{policy.RuleImpossibleTravel, policy.StepUp, `^6,385 km from the last use 2h0m ago \(3,193 km/h\), DE to US$`}},
		},
		{
			name:    "Berlin to New York in 10 hours is a flight",
			rules:   policy.RiskRules{ImpossibleTravel: policy.Deny},
			history: justSeen(noon, berlin), now: noon.Add(10 * time.Hour), loc: noNet(nyc),
			want: policy.Allow,
		},
		{
			name:    "Berlin to Paris within a day",
			rules:   policy.RiskRules{ImpossibleTravel: policy.Deny},
			history: justSeen(noon, berlin), now: noon.Add(20 * time.Hour), loc: noNet(paris),
			want: policy.Allow,
		},
		{
			name:    "Berlin to Paris in 10 minutes is under the minimum distance",
			rules:   policy.RiskRules{ImpossibleTravel: policy.Deny},
			history: justSeen(noon, berlin), now: noon.Add(10 * time.Minute), loc: noNet(paris),
			want: policy.Allow,
		},
		{
			name:    "Berlin to Paris in 10 minutes with a lower minimum distance",
			rules:   policy.RiskRules{ImpossibleTravel: policy.Deny, MinDistanceKm: 500},
			history: justSeen(noon, berlin), now: noon.Add(10 * time.Minute), loc: noNet(paris),
			want:  policy.Deny,
			finds: []finding{{policy.RuleImpossibleTravel, policy.Deny, `^877 km from the last use 10m ago \(5,265 km/h\), DE to FR$`}},
		},
		{
			name:    "Berlin to Paris in 1 hour with a lower speed limit",
			rules:   policy.RiskRules{ImpossibleTravel: policy.StepUp, MinDistanceKm: 500, MaxSpeedKmh: 300},
			history: justSeen(noon, berlin), now: noon.Add(time.Hour), loc: noNet(paris),
			want:  policy.StepUp,
			finds: []finding{{policy.RuleImpossibleTravel, policy.StepUp, `\(877 km/h\)`}},
		},
		{
			name:    "unknown place never trips travel",
			rules:   policy.RiskRules{ImpossibleTravel: policy.Deny},
			history: justSeen(noon, berlin), now: noon.Add(time.Minute), loc: policy.Location{Country: "AU"},
			want: policy.Allow,
		},
		{
			name:  "travel is measured from the last located use",
			rules: policy.RiskRules{ImpossibleTravel: policy.Deny},
			history: func() policy.History {
				h := justSeen(noon, berlin)
				h.Observe(policy.Sighting{At: noon.Add(10 * time.Minute), Loc: policy.Location{Country: "AU"}}, nil, 0)
				return h
			}(),
			now: noon.Add(30 * time.Minute), loc: noNet(sydney),
			want:  policy.Deny,
			finds: []finding{{policy.RuleImpossibleTravel, policy.Deny, `30m ago`}},
		},
		{
			name:    "country on the deny list",
			rules:   policy.RiskRules{DenyCountries: []string{"kp", "RU"}, CountryAction: policy.Deny},
			history: policy.History{}, now: noon, loc: policy.Location{Country: "RU"},
			want:  policy.Deny,
			finds: []finding{{policy.RuleCountry, policy.Deny, `^request from RU, which is on the country deny list$`}},
		},
		{
			name:    "country deny list is case-insensitive",
			rules:   policy.RiskRules{DenyCountries: []string{"RU"}, CountryAction: policy.StepUp},
			history: policy.History{}, now: noon, loc: policy.Location{Country: "ru"},
			want:  policy.StepUp,
			finds: []finding{{policy.RuleCountry, policy.StepUp, `from RU`}},
		},
		{
			name:    "country not on the allow list",
			rules:   policy.RiskRules{AllowCountries: []string{"de", "FR"}, CountryAction: policy.StepUp},
			history: policy.History{}, now: noon, loc: nyc,
			want:  policy.StepUp,
			finds: []finding{{policy.RuleCountry, policy.StepUp, `^request from US, which is not on the country allow list \(DE, FR\)$`}},
		},
		{
			name:    "country on the allow list",
			rules:   policy.RiskRules{AllowCountries: []string{"DE", "FR"}, CountryAction: policy.Deny},
			history: policy.History{}, now: noon, loc: paris,
			want: policy.Allow,
		},
		{
			name:    "unknown country passes country rules",
			rules:   policy.RiskRules{AllowCountries: []string{"DE"}, DenyCountries: []string{"RU"}, CountryAction: policy.Deny},
			history: policy.History{}, now: noon, loc: policy.Location{},
			want: policy.Allow,
		},
		{
			name:    "country without coordinates still meets the deny list",
			rules:   policy.RiskRules{DenyCountries: []string{"AU"}, CountryAction: policy.Deny, ImpossibleTravel: policy.Deny},
			history: justSeen(noon, berlin), now: noon.Add(time.Minute), loc: policy.Location{Country: "AU"},
			want:  policy.Deny,
			finds: []finding{{policy.RuleCountry, policy.Deny, `from AU`}},
		},
		{
			name:    "new network",
			rules:   policy.RiskRules{NewNetwork: policy.StepUp},
			history: justSeen(noon.Add(-48*time.Hour), berlin), now: noon, loc: paris,
			want:  policy.StepUp,
			finds: []finding{{policy.RuleNewNetwork, policy.StepUp, `^first use from network 192\.0\.2\.0/24 in FR; 1 network seen before$`}},
		},
		{
			name:    "a network inside a known one is not new",
			rules:   policy.RiskRules{NewNetwork: policy.Deny},
			history: justSeen(noon.Add(-time.Hour), berlin), now: noon,
			loc:  policy.Location{Network: netip.MustParsePrefix("203.0.113.128/25")},
			want: policy.Allow,
		},
		{
			name:    "an IPv4-mapped network is compared as IPv4",
			rules:   policy.RiskRules{NewNetwork: policy.Deny},
			history: justSeen(noon.Add(-time.Hour), berlin), now: noon,
			loc:  policy.Location{Network: netip.MustParsePrefix("::ffff:203.0.113.0/120")},
			want: policy.Allow,
		},
		{
			name:    "first use ever is not a new network",
			rules:   policy.RiskRules{NewNetwork: policy.Deny},
			history: policy.History{}, now: noon, loc: sydney,
			want: policy.Allow,
		},
		{
			name:    "unknown network is not a new network",
			rules:   policy.RiskRules{NewNetwork: policy.Deny},
			history: justSeen(noon.Add(-time.Hour), berlin), now: noon, loc: policy.Location{Country: "DE"},
			want: policy.Allow,
		},
		{
			name:    "actions are per rule: hour step-up, network record-only",
			rules:   policy.RiskRules{UnusualHour: policy.StepUp, NewNetwork: policy.Allow, Location: berlinTZ},
			history: office, now: local(3, 18, 3, 0), loc: paris,
			want: policy.StepUp,
			finds: []finding{
				{policy.RuleUnusualHour, policy.StepUp, `03:00 hour`},
				{policy.RuleNewNetwork, policy.Allow, `192\.0\.2\.0/24`},
			},
		},
		{
			name:    "the strongest finding wins: deny over step-up over allow",
			rules:   policy.RiskRules{DenyCountries: []string{"AU"}, CountryAction: policy.Allow, ImpossibleTravel: policy.Deny, UnusualHour: policy.StepUp, Location: berlinTZ},
			history: office, now: local(3, 14, 17, 0), loc: sydney,
			want: policy.Deny,
			finds: []finding{
				{policy.RuleCountry, policy.Allow, `from AU`},
				{policy.RuleImpossibleTravel, policy.Deny, `45m ago`},
				{policy.RuleUnusualHour, policy.StepUp, `17:00 hour`},
				{policy.RuleNewNetwork, policy.Allow, `198\.51\.100\.0/24`},
			},
		},
		{
			name:    "step-up satisfied, deny remains",
			rules:   policy.RiskRules{ImpossibleTravel: policy.Deny, UnusualHour: policy.StepUp, Location: berlinTZ},
			history: office, now: local(3, 14, 17, 0), loc: sydney, stepUp: true,
			want: policy.Deny,
			finds: []finding{
				{policy.RuleImpossibleTravel, policy.Deny, `km/h`},
				{policy.RuleUnusualHour, policy.Allow, `satisfied by a one-time password`},
				{policy.RuleNewNetwork, policy.Allow, `198\.51\.100\.0/24`},
			},
		},
		{
			name:    "an unknown action fails closed",
			rules:   policy.RiskRules{DenyCountries: []string{"RU"}, CountryAction: policy.Action(7)},
			history: policy.History{}, now: noon, loc: policy.Location{Country: "RU"}, stepUp: true,
			want:  policy.Deny,
			finds: []finding{{policy.RuleCountry, policy.Deny, `RU`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.history.Clone()
			d := policy.Assess(tc.rules, tc.history, tc.now, tc.loc, tc.stepUp)
			if d.Action != tc.want {
				t.Errorf("Action = %s, want %s (findings %+v)", d.Action, tc.want, d.Findings)
			}
			if len(d.Findings) != len(tc.finds) {
				t.Fatalf("findings = %+v, want %d", d.Findings, len(tc.finds))
			}
			for i, want := range tc.finds {
				got := d.Findings[i]
				if got.Rule != want.rule || got.Action != want.action || !regexp.MustCompile(want.reason).MatchString(got.Reason) {
					t.Errorf("finding %d = {%s %s %q}, want {%s %s /%s/}", i, got.Rule, got.Action, got.Reason, want.rule, want.action, want.reason)
				}
			}
			if len(tc.history.Recent) != len(before.Recent) || len(tc.history.Networks) != len(before.Networks) {
				t.Error("Assess changed the history")
			}
		})
	}
}

func TestAssessDoesNotReadTheClock(t *testing.T) {
	// The same inputs give the same decision, whenever they are assessed.
	h := justSeen(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), berlin)
	r := policy.RiskRules{ImpossibleTravel: policy.Deny}
	now := time.Date(2001, 1, 1, 0, 30, 0, 0, time.UTC)
	first := policy.Assess(r, h, now, sydney, false)
	second := policy.Assess(r, h, now, sydney, false)
	if first.Action != policy.Deny || first.Findings[0].Reason != second.Findings[0].Reason {
		t.Fatalf("decisions differ: %+v vs %+v", first, second)
	}
}

func TestRiskRulesValidate(t *testing.T) {
	if err := (policy.RiskRules{}).Validate(); err != nil {
		t.Errorf("zero rules: %v", err)
	}
	good := policy.RiskRules{AllowCountries: []string{"de", "FR"}, DenyCountries: []string{"RU"}, CountryAction: policy.Deny,
		ImpossibleTravel: policy.StepUp, MaxSpeedKmh: 900, MinDistanceKm: 500, MinHistory: 10, HourShareBelow: 0.05}
	if err := good.Validate(); err != nil {
		t.Errorf("good rules: %v", err)
	}
	for _, tc := range []struct {
		name  string
		rules policy.RiskRules
		errs  []string
	}{
		{"bad codes", policy.RiskRules{AllowCountries: []string{"Germany"}, DenyCountries: []string{"R"}},
			[]string{`allow list entry "Germany"`, `deny list entry "R"`}},
		{"on both lists", policy.RiskRules{AllowCountries: []string{"de"}, DenyCountries: []string{"DE"}},
			[]string{`"de" is on both`}},
		{"unknown action", policy.RiskRules{NewNetwork: 9}, []string{"NewNetwork is action(9)"}},
		{"negative numbers", policy.RiskRules{MaxSpeedKmh: -1, MinDistanceKm: -5, MinHistory: -1, HourShareBelow: -0.1},
			[]string{"maximum speed -1", "minimum distance -5", "minimum history -1", "hour share -0.1"}},
		{"share of 1", policy.RiskRules{HourShareBelow: 1}, []string{"hour share 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rules.Validate()
			if err == nil {
				t.Fatal("Validate accepted bad rules")
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestDistanceKm(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a, b     policy.Location
		min, max float64
	}{
		{"same place", berlin, berlin, 0, 0},
		{"Berlin-Paris", berlin, paris, 876, 879},
		{"Berlin-Sydney", berlin, sydney, 16090, 16100},
		{"Berlin-New York", berlin, nyc, 6380, 6390},
		{"antipodes", policy.Location{Lat: 0, Lon: 0}, policy.Location{Lat: 0, Lon: 180}, 20015, 20016},
	} {
		got := policy.DistanceKm(tc.a.Lat, tc.a.Lon, tc.b.Lat, tc.b.Lon)
		back := policy.DistanceKm(tc.b.Lat, tc.b.Lon, tc.a.Lat, tc.a.Lon)
		if got < tc.min || got > tc.max || got != back {
			t.Errorf("%s: %.1f km (back %.1f), want %v..%v", tc.name, got, back, tc.min, tc.max)
		}
	}
}
