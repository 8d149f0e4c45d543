package chaos

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is what callers saw during one phase of the run.
type Row struct {
	// Phase names the fault (or the steady state, the soak, the whole run).
	Phase string
	// Does says what the fault did.
	Does string
	// Requests is how many calls started in the phase; Failed how many
	// were answered wrongly or not at all; Refused how many were refused
	// by design (a key's rate, quota or budget, a revoked key).
	Requests, Failed, Refused int
	// Availability is the share answered correctly.
	Availability float64
	// LongestFailure is the longest stretch of failed calls: failures
	// less than a second apart are one stretch, from the first's start to
	// the last's answer.
	LongestFailure time.Duration
	// P50 and P99 are the latency of the calls keygate served (2xx)
	// started in the phase; refusals are left out, as a refused key's
	// failed authentications are slowed down by design.
	P50, P99 time.Duration
	// Why lists the commonest failures.
	Why string
}

// Report is everything a run measured and checked.
type Report struct {
	// Setup describes the cluster, the load and the machine.
	Setup string
	// Rows are the steady state, each fault, the soak and the whole run.
	Rows []Row
	// Checks are the things that must hold.
	Checks []Check
	// NotFaulted lists what could not be faulted here, and why.
	NotFaulted []string
	// Skipped is how many offered calls were dropped because every worker
	// was busy (the load is bounded).
	Skipped int64
}

// Failed names the checks that did not hold.
func (r *Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

func (s *suite) report(ctx context.Context) *Report {
	rs := s.load.snapshot()
	sort.Slice(rs, func(i, j int) bool { return rs[i].start.Before(rs[j].start) })
	rep := &Report{Setup: s.setup(), NotFaulted: s.c.notFaulted(), Skipped: s.load.skipped.Load()}
	for _, p := range s.phases {
		var in []result
		for _, r := range rs {
			if !r.start.Before(p.start) && r.start.Before(p.end) {
				in = append(in, r)
			}
		}
		row := summarize(p.name, in)
		row.Does = p.does
		rep.Rows = append(rep.Rows, row)
	}
	overall := summarize("whole run", rs)
	rep.Rows = append(rep.Rows, overall)
	rep.Checks = s.checks(ctx, rs, overall)
	return rep
}

func summarize(name string, rs []result) Row {
	row := Row{Phase: name, Requests: len(rs)}
	var ds []time.Duration
	why := map[string]int{}
	var stretchStart, stretchEnd, lastFail time.Time
	for _, r := range rs {
		if r.admitted() {
			ds = append(ds, r.end.Sub(r.start))
		}
		switch {
		case r.refused:
			row.Refused++
		case !r.ok:
			row.Failed++
			k := string(r.kind)
			if r.kind == kindBudgetChat {
				k = "chat with a " + r.class.String() + " key"
			}
			why[k+": "+r.why]++
			if lastFail.IsZero() || r.start.Sub(lastFail) > time.Second {
				stretchStart = r.start
				stretchEnd = r.end
			}
			lastFail = r.start
			stretchEnd = later(stretchEnd, r.end)
			row.LongestFailure = max(row.LongestFailure, stretchEnd.Sub(stretchStart))
		}
	}
	if row.Requests > 0 {
		row.Availability = float64(row.Requests-row.Failed) / float64(row.Requests)
	}
	row.P50, row.P99 = quantile(ds, 0.5), quantile(ds, 0.99)
	type kv struct {
		k string
		v int
	}
	var top []kv
	for k, v := range why {
		top = append(top, kv{k, v})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v || (top[i].v == top[j].v && top[i].k < top[j].k) })
	var parts []string
	for _, t := range top[:min(3, len(top))] {
		parts = append(parts, fmt.Sprintf("%d× %s", t.v, t.k))
	}
	row.Why = strings.Join(parts, "; ")
	return row
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1)+0.5)]
}

func (s *suite) setup() string {
	o := s.c.o
	ver := func(bin string, args ...string) string {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			return bin + " (version unknown)"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return fmt.Sprintf("3 keygate nodes on PostgreSQL and Redis (%s), behind %s; 4 fake providers, 2 per alias; %.0f calls/s offered, at most %d in flight; each fault held %v, then %v to recover; %d CPUs, %s/%s, %s",
		ver("redis-server", "--version"), ver("haproxy", "-v"), o.Rate, o.Workers, o.Hold, o.Recover, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func ms(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	if d < 10*time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func pct(a float64) string { return fmt.Sprintf("%.3f%%", a*100) }

// WriteText writes the report as aligned columns, then the checks.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintln(w, r.Setup)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tcalls\tavailability\trefused by design\tfailed\tlongest failure\tp50\tp99\tcommonest failures")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", row.Phase, row.Requests, pct(row.Availability), row.Refused, row.Failed,
			ms(row.LongestFailure), ms(row.P50), ms(row.P99), row.Why)
	}
	tw.Flush()
	r.writeChecks(w, "")
}

// WriteMarkdown writes the report as Markdown tables, for the README.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "%s\n\n", r.Setup)
	fmt.Fprintln(w, "| phase | calls | availability | refused by design | failed | longest failure | p50 | p99 |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, row := range r.Rows {
		name := row.Phase
		if row.Phase == "whole run" {
			name = "**whole run**"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %s | %s | %s |\n", name, row.Requests, pct(row.Availability), row.Refused, row.Failed,
			ms(row.LongestFailure), ms(row.P50), ms(row.P99))
	}
	fmt.Fprintln(w)
	r.writeChecks(w, "- ")
}

func (r *Report) writeChecks(w io.Writer, bullet string) {
	fmt.Fprintln(w)
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		if bullet != "" {
			mark = "**" + strings.TrimSpace(mark) + "**"
		}
		fmt.Fprintf(w, "%s%s %s: %s\n", bullet, mark, c.Name, strings.ReplaceAll(c.Detail, "\n", "\n      "))
	}
	fmt.Fprintln(w)
	item := "  "
	if bullet != "" {
		item = "  - "
	}
	fmt.Fprintf(w, "%snot faulted here:\n", bullet)
	for _, n := range r.NotFaulted {
		fmt.Fprintf(w, "%s%s\n", item, n)
	}
	if r.Skipped > 0 {
		fmt.Fprintf(w, "\n%s%d offered calls were not made because every worker was busy (the load is bounded)\n", bullet, r.Skipped)
	}
	var failures []string
	for _, row := range r.Rows {
		if row.Why != "" && row.Phase != "whole run" {
			failures = append(failures, fmt.Sprintf("%s%s: %s", item, row.Phase, row.Why))
		}
	}
	if len(failures) > 0 {
		fmt.Fprintf(w, "\n%scommonest failures by phase:\n%s\n", bullet, strings.Join(failures, "\n"))
	}
}
