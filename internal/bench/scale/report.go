package scale

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints the report as a small table for people.
func (r Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "keygate with %d keys\t\n", r.Keys)
	fmt.Fprintf(tw, "start (exec to first /healthz 200)\t%s\n", round(r.Start))
	fmt.Fprintf(tw, "RSS after start\t%s\n", mib(r.MemStart.RSS))
	fmt.Fprintf(tw, "RSS with %d keys cached\t%s\n", r.SpreadKeys, mib(r.MemSpread.RSS))
	fmt.Fprintf(tw, "RSS at end (peak)\t%s (%s)\n", mib(r.MemEnd.RSS), mib(r.MemEnd.Peak))
	fmt.Fprintf(tw, "stop (SIGTERM to exit)\t%s\n", round(r.Stop))
	fmt.Fprintf(tw, "unknown key\t%d\n", r.UnknownStatus)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "GET /v1/models, sequential\trequests\tnot 200\tp50\tp99\tmax\tmean\t\n")
	for _, c := range []struct {
		name string
		l    Latency
	}{
		{"hot key (cached)", r.Hot},
		{"cold keys (store lookup)", r.Cold},
		{fmt.Sprintf("%d keys cycled (cached)", r.SpreadKeys), r.Spread},
	} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", c.name, c.l.Requests, c.l.Failures,
			round(c.l.P50), round(c.l.P99), round(c.l.Max), round(c.l.Mean))
	}
	tw.Flush()

	if r.HotRate.Requests == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "throughput, %d clients for %s\trequests\tnot 200\treq/s\t\n", r.Concurrency, r.RateDuration)
	fmt.Fprintf(tw, "one key\t%d\t%d\t%.0f\t\n", r.HotRate.Requests, r.HotRate.Failures, r.HotRate.PerSec)
	fmt.Fprintf(tw, "%d keys\t%d\t%d\t%.0f\t\n", r.SpreadKeys, r.SpreadRate.Requests, r.SpreadRate.Failures, r.SpreadRate.PerSec)
	tw.Flush()
	fmt.Fprintf(w, "throughput over %d keys against one key: %+.1f%%\n", r.SpreadKeys, -100*r.SpreadCost())
}

func mib(b int64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
