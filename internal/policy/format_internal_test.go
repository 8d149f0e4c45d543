package policy

import (
	"testing"
	"time"
)

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0", 7.4: "7", 999: "999", 999.6: "1,000", 8770.4: "8,770", 4385: "4,385",
		1234567: "1,234,567", -1234: "-1,234", -12: "-12",
	} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	for in, want := range map[time.Duration]string{
		0: "0s", 30 * time.Second: "30s", 45 * time.Minute: "45m", 2 * time.Hour: "2h0m",
		2*time.Hour - 10*time.Second: "2h0m", 50*time.Hour + 5*time.Minute: "50h5m",
	} {
		if got := ago(in); got != want {
			t.Errorf("ago(%v) = %q, want %q", in, got, want)
		}
	}
}
