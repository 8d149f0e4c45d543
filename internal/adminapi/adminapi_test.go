package adminapi

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30d", 30 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"12h", 12 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{" 2d ", 48 * time.Hour, true},
		{"", 0, false},
		{"0d", 0, false},
		{"-1h", 0, false},
		{"xd", 0, false},
		{"3 days", 0, false},
		{"10", 0, false},
		{"36500d", 36500 * 24 * time.Hour, true},
		{"213504d", 0, false}, // would overflow time.Duration into a near expiry
		{"2147483647d", 0, false},
		{"900000h", 0, false}, // over 100 years in hours
	} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseToolLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MCPToolLimit
		ok   bool
	}{
		{"create_issue=rpm:10,concurrency:2,per_day:100", MCPToolLimit{Tool: "create_issue", RPM: 10, Concurrency: 2, PerDay: 100}, true},
		{" delete_* = per_day:5 ", MCPToolLimit{Tool: "delete_*", PerDay: 5}, true},
		{"x=concurrency: 1", MCPToolLimit{Tool: "x", Concurrency: 1}, true},
		{"create_issue", MCPToolLimit{}, false},
		{"=rpm:1", MCPToolLimit{}, false},
		{"x=", MCPToolLimit{}, false},
		{"x=rpm:0", MCPToolLimit{}, false},
		{"x=rpm:-1", MCPToolLimit{}, false},
		{"x=rpm:ten", MCPToolLimit{}, false},
		{"x=rpm:1,rpm:2", MCPToolLimit{}, false},
		{"x=tpm:1", MCPToolLimit{}, false},
	} {
		got, err := ParseToolLimit(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseToolLimit(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok {
			if back, err := ParseToolLimit(got.String()); err != nil || back != got {
				t.Errorf("ParseToolLimit(%q.String()) = %+v, %v", tc.in, back, err)
			}
		}
	}
}
