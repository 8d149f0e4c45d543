package policy

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// thousands formats x rounded to a whole number with comma separators:
// 8770.4 becomes "8,770".
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// ago formats an elapsed time for a reason: "2h0m", "45m", "30s".
func ago(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	d = d.Round(time.Minute)
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	if h == 0 {
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

// percent formats a share (0.0125) as "1.25%".
func percent(share float64) string {
	return strconv.FormatFloat(share*100, 'f', 2, 64) + "%"
}
