package limitspec

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuota(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Quota
		err  string // a part of the error; empty means no error
	}{
		{"5000/day", Quota{5000, UnitRequests, PeriodDay}, ""},
		{"5000requests/day", Quota{5000, UnitRequests, PeriodDay}, ""},
		{"2000000tokens/month", Quota{2_000_000, UnitTokens, PeriodMonth}, ""},
		{"2_000_000tokens/month", Quota{2_000_000, UnitTokens, PeriodMonth}, ""},
		{"100000", Quota{100_000, UnitRequests, PeriodTotal}, ""},
		{"100000/total", Quota{100_000, UnitRequests, PeriodTotal}, ""},
		{" 5000 / DAY ", Quota{5000, UnitRequests, PeriodDay}, ""},
		{"1125899906842624tokens", Quota{1 << 50, UnitTokens, PeriodTotal}, ""},
		{"5000/fortnight", Quota{}, `period "fortnight" must be day, month or total`},
		{"5000/", Quota{}, `period "" must be day, month or total`},
		{"0/day", Quota{}, "COUNT[/PERIOD]"},
		{"-5/day", Quota{}, "COUNT[/PERIOD]"},
		{"5.5/day", Quota{}, "COUNT[/PERIOD]"},
		{"tokens/day", Quota{}, "COUNT[/PERIOD]"},
		{"5000usd/day", Quota{}, "COUNT[/PERIOD]"},
		{"", Quota{}, "COUNT[/PERIOD]"},
		{"1125899906842625", Quota{}, "the limit must be 1 to 1125899906842624"},
	} {
		got, err := ParseQuota(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseQuota(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseQuota(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

func TestParseBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Budget
		err  string // a part of the error; empty means no error
	}{
		{"20usd/month", Budget{20_000_000, PeriodMonth}, ""},
		{"2.50usd/day", Budget{2_500_000, PeriodDay}, ""},
		{"100usd", Budget{100_000_000, PeriodTotal}, ""},
		{"$5/day", Budget{5_000_000, PeriodDay}, ""},
		{"0.000123usd/total", Budget{123, PeriodTotal}, ""},
		{".5USD/Month", Budget{500_000, PeriodMonth}, ""},
		{"1125899906.842624usd", Budget{1 << 50, PeriodTotal}, ""},
		{"-3usd", Budget{}, "positive amount"},
		{"0usd/day", Budget{}, "positive amount"},
		{"usd/day", Budget{}, "AMOUNTusd[/PERIOD]"},
		{"nanusd/day", Budget{}, "AMOUNTusd[/PERIOD]"},
		{"infusd", Budget{}, "AMOUNTusd[/PERIOD]"},
		{"1e3usd", Budget{}, "AMOUNTusd[/PERIOD]"},
		{"0x1p4usd", Budget{}, "AMOUNTusd[/PERIOD]"},
		{"1.2.3usd", Budget{}, "AMOUNTusd[/PERIOD]"},
		{"20usd/week", Budget{}, `period "week" must be day, month or total`},
		{"20usd/", Budget{}, `period "" must be day, month or total`},
		{"0.0000001usd", Budget{}, "smallest budget is 0.000001usd"},
		{"1125899907usd", Budget{}, "at most 1125899906 USD"},
	} {
		got, err := ParseBudget(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseBudget(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseBudget(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

func TestQuotaBudgetStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, q := range []Quota{
		{5000, UnitRequests, PeriodDay},
		{2_000_000, UnitTokens, PeriodMonth},
		{100_000, UnitRequests, PeriodTotal},
		{1, UnitTokens, PeriodTotal},
		{1 << 50, UnitRequests, PeriodMonth},
	} {
		got, err := ParseQuota(q.String())
		if err != nil || got != q {
			t.Errorf("ParseQuota(%q) = %+v, %v; want %+v back", q.String(), got, err, q)
		}
	}
	for _, b := range []Budget{
		{20_000_000, PeriodMonth},
		{2_500_000, PeriodDay},
		{1, PeriodTotal},
		{123_456_789, PeriodDay},
		{1 << 50, PeriodTotal},
		{(1 << 50) - 1, PeriodMonth},
	} {
		got, err := ParseBudget(b.String())
		if err != nil || got != b {
			t.Errorf("ParseBudget(%q) = %+v, %v; want %+v back", b.String(), got, err, b)
		}
	}
	for _, tc := range []struct {
		got, want string
	}{
		{Quota{5000, UnitRequests, PeriodDay}.String(), "5000/day"},
		{Quota{2_000_000, UnitTokens, PeriodMonth}.String(), "2000000tokens/month"},
		{Quota{100_000, UnitRequests, PeriodTotal}.String(), "100000"},
		{Budget{20_000_000, PeriodMonth}.String(), "20usd/month"},
		{Budget{2_500_000, PeriodDay}.String(), "2.5usd/day"},
		{Budget{123, PeriodTotal}.String(), "0.000123usd"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		l    Limits
		err  string // a part of the error; empty means valid
	}{
		{"none", Limits{}, ""},
		{"all", Limits{
			RPS: 1, RPM: 60, RPH: 1000, TPM: 200_000, Concurrency: 4,
			Quotas:  []Quota{{5000, UnitRequests, PeriodDay}, {2_000_000, UnitTokens, PeriodDay}, {1, UnitRequests, PeriodTotal}},
			Budgets: []Budget{{20_000_000, PeriodMonth}, {1, PeriodDay}},
		}, ""},
		{"negative rpm", Limits{RPM: -1}, "rpm must be 0 (unlimited)"},
		{"huge tpm", Limits{TPM: 1<<50 + 1}, "tpm must be 0 (unlimited)"},
		{"negative concurrency", Limits{Concurrency: -4}, "concurrency"},
		{"zero quota", Limits{Quotas: []Quota{{0, UnitRequests, PeriodDay}}}, "the limit must be 1"},
		{"unknown unit", Limits{Quotas: []Quota{{5, "bytes", PeriodDay}}}, `unit "bytes"`},
		{"unknown quota period", Limits{Quotas: []Quota{{5, UnitTokens, "week"}}}, `period "week"`},
		{"two daily request quotas", Limits{Quotas: []Quota{{5, UnitRequests, PeriodDay}, {6, UnitRequests, PeriodDay}}}, "two requests quotas per day"},
		{"zero budget", Limits{Budgets: []Budget{{0, PeriodDay}}}, "must be more than 0"},
		{"unknown budget period", Limits{Budgets: []Budget{{5, ""}}}, `period ""`},
		{"two monthly budgets", Limits{Budgets: []Budget{{5, PeriodMonth}, {6, PeriodMonth}}}, "two budgets per month"},
	} {
		err := tc.l.Validate()
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Validate() = %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}

func TestLimitsIsZeroAndJSON(t *testing.T) {
	t.Parallel()
	if !(Limits{}).IsZero() || (Limits{Budgets: []Budget{{1, PeriodDay}}}).IsZero() || (Limits{RPH: 1}).IsZero() {
		t.Error("IsZero is wrong")
	}
	b, err := json.Marshal(Limits{})
	if err != nil || string(b) != "{}" {
		t.Errorf("empty limits encode as %s, %v; want {}", b, err)
	}
	l := Limits{RPM: 60, TPM: 200_000, Concurrency: 4,
		Quotas: []Quota{{5000, UnitRequests, PeriodDay}}, Budgets: []Budget{{20_000_000, PeriodMonth}}}
	b, err = json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"rpm":60,"tpm":200000,"concurrency":4,"quotas":[{"limit":5000,"unit":"requests","period":"day"}],"budgets":[{"micro_usd":20000000,"period":"month"}]}`
	if string(b) != want {
		t.Errorf("limits encode as\n%s\nwant\n%s", b, want)
	}
	var back Limits
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, l) {
		t.Errorf("decoded %+v, %v; want %+v", back, err, l)
	}
}
