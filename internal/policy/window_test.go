package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/policy"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s unavailable on this host (install tzdata): %v", name, err)
	}
	return loc
}

func TestParseWindowsString(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", ""},
		{"mon-fri 08:00-20:00 Europe/Berlin", "mon-fri 08:00-20:00 Europe/Berlin"},
		{"sat,sun 10:00-14:00 UTC", "sat,sun 10:00-14:00 UTC"},
		{"daily 00:00-24:00 America/New_York", "daily 00:00-24:00 America/New_York"},
		{"MON-FRI 8:00-20:00 Europe/Berlin", "mon-fri 08:00-20:00 Europe/Berlin"},
		{"Monday,Tuesday,Wednesday 09:00-17:00 UTC", "mon-wed 09:00-17:00 UTC"},
		{"mon-sun 09:00-17:00 UTC", "daily 09:00-17:00 UTC"},
		{"fri-mon 22:00-06:00 UTC", "mon,fri-sun 22:00-06:00 UTC"},
		{"sun,sat,mon 10:00-11:00 UTC", "mon,sat,sun 10:00-11:00 UTC"},
		{"wed 22:00-00:00 UTC", "wed 22:00-24:00 UTC"},
		{"mon-fri 08:00-20:00 Europe/Berlin;sat 10:00-14:00 UTC", "mon-fri 08:00-20:00 Europe/Berlin; sat 10:00-14:00 UTC"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			ws, err := policy.ParseWindows(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := ws.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			again, err := policy.ParseWindows(ws.String())
			if err != nil {
				t.Fatalf("String() form does not parse: %v", err)
			}
			if again.String() != ws.String() {
				t.Errorf("round trip: %q became %q", ws, again)
			}
			if ws.IsZero() != (tc.spec == "") {
				t.Errorf("IsZero() = %v", ws.IsZero())
			}
		})
	}
}

func TestParseWindowsErrors(t *testing.T) {
	for _, tc := range []struct{ spec, err string }{
		{"mon-fri 08:00-20:00", "want \"DAYS HH:MM-HH:MM ZONE\""},
		{"mon-fri 08:00 - 20:00 UTC", "want \"DAYS HH:MM-HH:MM ZONE\""},
		{"weekdays 08:00-20:00 UTC", `"weekdays" is not a day`},
		{"mon-fr 08:00-20:00 UTC", `"fr" is not a day`},
		{"mon, 08:00-20:00 UTC", `"" is not a day`},
		{"mon 0800-2000 UTC", `"0800" is not a time of day`},
		{"mon 08:00 UTC", `"08:00" is not a time span`},
		{"mon 08:00-25:00 UTC", `"25:00" is not a time of day`},
		{"mon 08:60-09:00 UTC", `"08:60" is not a time of day`},
		{"mon 24:30-09:00 UTC", `"24:30" is not a time of day`},
		{"mon 8-9:00 UTC", `"8" is not a time of day`},
		{"mon 08:0-09:00 UTC", `"08:0" is not a time of day`},
		{"mon 24:00-06:00 UTC", "cannot start at 24:00"},
		{"mon 08:00-08:00 UTC", "00:00-24:00"},
		{"mon 08:00-20:00 Mars/Olympus", `unknown time zone "Mars/Olympus"`},
		{"mon 08:00-20:00 Local", `"Local" depends on the server`},
		{"mon 08:00-20:00 UTC;", "empty entry"},
		{"mon 08:00-20:00 UTC; ; tue 08:00-20:00 UTC", "empty entry"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := policy.ParseWindows(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestWindowsAllows(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	ny := mustZone(t, "America/New_York")
	at := func(loc *time.Location, y int, m time.Month, d, hh, mm int) time.Time {
		return time.Date(y, m, d, hh, mm, 0, 0, loc)
	}
	for _, tc := range []struct {
		name, spec string
		t          time.Time
		want       bool
	}{
		{"zero allows all", "", time.Unix(0, 0), true},

		// 2025-03-26 is a Wednesday; 2025-03-29 a Saturday.
		{"weekday inside", "mon-fri 08:00-20:00 Europe/Berlin", at(berlin, 2025, 3, 26, 12, 0), true},
		{"weekday at start", "mon-fri 08:00-20:00 Europe/Berlin", at(berlin, 2025, 3, 26, 8, 0), true},
		{"weekday last minute", "mon-fri 08:00-20:00 Europe/Berlin", at(berlin, 2025, 3, 26, 19, 59), true},
		{"weekday at end", "mon-fri 08:00-20:00 Europe/Berlin", at(berlin, 2025, 3, 26, 20, 0), false},
		{"weekday before", "mon-fri 08:00-20:00 Europe/Berlin", at(berlin, 2025, 3, 26, 7, 59), false},
		{"weekend outside", "mon-fri 08:00-20:00 Europe/Berlin", at(berlin, 2025, 3, 29, 12, 0), false},
		{"judged in the window's zone", "mon-fri 08:00-20:00 Europe/Berlin", time.Date(2025, 3, 26, 6, 30, 0, 0, time.UTC), false},
		{"judged in the window's zone, inside", "mon-fri 08:00-20:00 Europe/Berlin", time.Date(2025, 3, 26, 7, 30, 0, 0, time.UTC), true},

		// Europe/Berlin moves from CET (UTC+1) to CEST (UTC+2) on 2025-03-30.
		// 06:30 UTC is 07:30 local on Friday the 28th but 08:30 on Monday the 31st.
		{"DST: before the change, 06:30Z is 07:30 local", "mon-fri 08:00-20:00 Europe/Berlin", time.Date(2025, 3, 28, 6, 30, 0, 0, time.UTC), false},
		{"DST: after the change, 06:30Z is 08:30 local", "mon-fri 08:00-20:00 Europe/Berlin", time.Date(2025, 3, 31, 6, 30, 0, 0, time.UTC), true},
		{"DST: spring-forward day", "sun 03:00-04:00 Europe/Berlin", time.Date(2025, 3, 30, 1, 30, 0, 0, time.UTC), true},
		{"DST: fall-back repeated hour, first", "sun 02:00-03:00 Europe/Berlin", time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC), true},
		{"DST: fall-back repeated hour, second", "sun 02:00-03:00 Europe/Berlin", time.Date(2025, 10, 26, 1, 30, 0, 0, time.UTC), true},

		{"weekend list", "sat,sun 10:00-14:00 UTC", time.Date(2025, 3, 30, 13, 59, 0, 0, time.UTC), true},
		{"weekend list, weekday", "sat,sun 10:00-14:00 UTC", time.Date(2025, 3, 31, 11, 0, 0, 0, time.UTC), false},
		{"daily whole day", "daily 00:00-24:00 America/New_York", at(ny, 2025, 11, 2, 23, 59), true},
		{"daily whole day, midnight", "daily 00:00-24:00 America/New_York", at(ny, 2025, 11, 2, 0, 0), true},

		// Crossing midnight: "fri 22:00-06:00" opens Friday evening and closes Saturday morning.
		{"overnight, evening of the day", "fri 22:00-06:00 UTC", time.Date(2025, 3, 28, 23, 0, 0, 0, time.UTC), true},
		{"overnight, next morning", "fri 22:00-06:00 UTC", time.Date(2025, 3, 29, 5, 59, 0, 0, time.UTC), true},
		{"overnight, next morning at end", "fri 22:00-06:00 UTC", time.Date(2025, 3, 29, 6, 0, 0, 0, time.UTC), false},
		{"overnight, morning of the day", "fri 22:00-06:00 UTC", time.Date(2025, 3, 28, 5, 0, 0, 0, time.UTC), false},
		{"overnight, midday", "fri 22:00-06:00 UTC", time.Date(2025, 3, 28, 12, 0, 0, 0, time.UTC), false},
		{"overnight, Saturday evening", "fri 22:00-06:00 UTC", time.Date(2025, 3, 29, 23, 0, 0, 0, time.UTC), false},
		{"overnight wraps the week", "sun 22:00-06:00 UTC", time.Date(2025, 3, 31, 3, 0, 0, 0, time.UTC), true},
		// America/New_York moves to EDT (UTC-4) at 02:00 on Sunday 2025-03-09.
		{"overnight across DST, 05:30 EDT", "sat 22:00-06:00 America/New_York", time.Date(2025, 3, 9, 9, 30, 0, 0, time.UTC), true},
		{"overnight across DST, 06:30 EDT", "sat 22:00-06:00 America/New_York", time.Date(2025, 3, 9, 10, 30, 0, 0, time.UTC), false},
		{"until midnight", "wed 22:00-00:00 UTC", time.Date(2025, 3, 26, 23, 59, 59, 0, time.UTC), true},
		{"until midnight, next day", "wed 22:00-00:00 UTC", time.Date(2025, 3, 27, 0, 0, 0, 0, time.UTC), false},

		{"second window", "mon-fri 08:00-20:00 Europe/Berlin; sat,sun 10:00-14:00 UTC", time.Date(2025, 3, 29, 12, 0, 0, 0, time.UTC), true},
		{"neither window", "mon-fri 08:00-20:00 Europe/Berlin; sat,sun 10:00-14:00 UTC", time.Date(2025, 3, 29, 15, 0, 0, 0, time.UTC), false},
		{"wrapping range", "fri-mon 09:00-17:00 UTC", time.Date(2025, 3, 30, 9, 0, 0, 0, time.UTC), true},
		{"wrapping range excludes midweek", "fri-mon 09:00-17:00 UTC", time.Date(2025, 3, 26, 9, 0, 0, 0, time.UTC), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := policy.ParseWindows(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := ws.Allows(tc.t); got != tc.want {
				t.Errorf("%q.Allows(%v) = %v, want %v", tc.spec, tc.t, got, tc.want)
			}
		})
	}
}

func TestWindowsText(t *testing.T) {
	var ws policy.Windows
	if err := ws.UnmarshalText([]byte("sat,sun 10:00-14:00 UTC")); err != nil {
		t.Fatal(err)
	}
	if b, _ := ws.MarshalText(); string(b) != "sat,sun 10:00-14:00 UTC" {
		t.Errorf("MarshalText = %q", b)
	}
	if err := ws.UnmarshalText([]byte("sometimes")); err == nil {
		t.Error("UnmarshalText accepted a bad window")
	}
}
