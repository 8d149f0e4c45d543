package bench

import (
	"fmt"
	"io"
	"time"
)

// Row looks up a target's row at a concurrency.
func (r *Report) Row(target string, c int) (Row, bool) {
	for _, row := range r.Rows {
		if row.Target == target && row.Concurrency == c {
			return row, true
		}
	}
	return Row{}, false
}

// Ratio is keygate's throughput over the baseline's at a concurrency.
func (r *Report) Ratio(c int) float64 {
	k, ok1 := r.Row(Keygate, c)
	b, ok2 := r.Row(Baseline, c)
	if !ok1 || !ok2 || b.RPS == 0 {
		return 0
	}
	return k.RPS / b.RPS
}

// WriteMarkdown prints the report as Markdown tables.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s\n", r.Machine)
	fmt.Fprintf(w, "Load: POST /v1/chat/completions, closed loop, %d alternating rounds of %s per target and concurrency (vegeta).\n\n",
		r.Options.Rounds, r.Options.Round)
	fmt.Fprintln(w, "| conc | target | req/s | p50 | p99 | p99.9 | p50 added over direct | req/s vs baseline | errors |")
	fmt.Fprintln(w, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range r.Options.Concurrencies {
		d, _ := r.Row(Direct, c)
		b, _ := r.Row(Baseline, c)
		for _, t := range []string{Direct, Baseline, Pooled, Keygate, NoLeaks, Limited, Translated, Redis, Traced, ManyKeys} {
			row, ok := r.Row(t, c)
			if !ok {
				continue
			}
			added, ratio := "", ""
			if row.Target != Direct {
				added = dur(row.P50 - d.P50)
			}
			if t == ManyKeys {
				t = fmt.Sprintf("keygate, %d keys", r.Options.Keys)
			}
			if row.Target != Direct && b.RPS > 0 {
				ratio = fmt.Sprintf("%.2fx", row.RPS/b.RPS)
			}
			fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %s | %s | %s | %d |\n",
				c, t, row.RPS, dur(row.P50), dur(row.P99), dur(row.P999), added, ratio, row.Errors)
		}
	}
	for _, c := range r.Options.Concurrencies {
		k, ok1 := r.Row(Keygate, c)
		t, ok2 := r.Row(Traced, c)
		if ok1 && ok2 && k.RPS > 0 {
			ratio := r.Options.TracingRatio
			if ratio <= 0 {
				ratio = 1
			}
			fmt.Fprintf(w, "\nTracing (sample ratio %g) at c=%d: %.0f req/s against %.0f untraced (%+.1f%%), p50 %s against %s.\n",
				ratio, c, t.RPS, k.RPS, (t.RPS/k.RPS-1)*100, dur(t.P50), dur(k.P50))
		}
	}
	for _, c := range r.Options.Concurrencies {
		k, ok1 := r.Row(Keygate, c)
		n, ok2 := r.Row(NoLeaks, c)
		if ok1 && ok2 && n.RPS > 0 {
			fmt.Fprintf(w, "\nCredential check at c=%d: %.0f req/s with it (keygate) against %.0f without (%+.1f%%), p50 %s against %s.\n",
				c, k.RPS, n.RPS, (k.RPS/n.RPS-1)*100, dur(k.P50), dur(n.P50))
		}
	}
	if len(r.TTFB) > 0 {
		fmt.Fprintf(w, "\nStreaming: time to the first byte, and to the first whole event carrying text (%d sequential requests each):\n\n", r.Options.StreamSamples)
		fmt.Fprintln(w, "| target | first byte p50 | p99 | first text p50 | p99 |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
		for _, t := range r.TTFB {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.Target, dur(t.P50), dur(t.P99), dur(t.TextP50), dur(t.TextP99))
		}
	}
	if len(r.Memory) > 0 {
		fmt.Fprintln(w, "\nResident memory after the run (anonymous: the process's own; the rest of RSS is the executable's pages):")
		fmt.Fprintln(w, "\n| process | RSS | peak RSS | anonymous |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: |")
		for _, m := range r.Memory {
			fmt.Fprintf(w, "| %s | %.1f MiB | %.1f MiB | %.1f MiB |\n", m.Target, float64(m.RSS)/(1<<20), float64(m.Peak)/(1<<20), float64(m.Anon)/(1<<20))
		}
	}
}

func dur(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + dur(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	default:
		return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
	}
}
