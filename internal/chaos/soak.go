package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// soakSample is one node's resources at one moment of the soak, with the
// latency of the calls started since the previous sample.
type soakSample struct {
	at         time.Time
	node       string
	rss        int64 // bytes, /proc/PID/status VmRSS
	fds        int   // entries in /proc/PID/fd
	goroutines int   // go_goroutines from the node's /metrics
	p50, p99   time.Duration
}

// Soak bounds: the late part of the soak against its early part (after a
// warm-up), per node. Stated in docs/chaos.md.
const (
	soakRSSGrowth       = 1.25     // late resident memory at most 1.25x early ...
	soakRSSSlack        = 16 << 20 // ... plus 16 MiB
	soakGoroutineGrowth = 1.20     // late goroutines at most 1.2x early ...
	soakGoroutineSlack  = 25       // ... plus 25
	soakFDSlack         = 25       // late open files at most early plus 25
	soakP99Growth       = 2.0      // late p99 latency at most 2x early ...
	soakP99Slack        = 50 * time.Millisecond
)

// runSoak holds the load steady for d and samples every node.
func (s *suite) runSoak(ctx context.Context, d time.Duration) {
	p := &phase{name: "soak", does: "steady load, no fault", start: time.Now()}
	s.addPhase(p)
	every := d / 12
	if every < 5*time.Second {
		every = 5 * time.Second
	}
	if every > time.Minute {
		every = time.Minute
	}
	end := p.start.Add(d)
	last := p.start
	for time.Now().Before(end) && ctx.Err() == nil {
		sleep(ctx, min(every, time.Until(end)))
		now := time.Now()
		p50, p99 := latencyBetween(s.load.snapshot(), last, now)
		last = now
		for _, n := range s.c.nodes {
			pid := n.pid()
			if pid == 0 || !n.running() {
				continue
			}
			smp := soakSample{at: now, node: n.name, rss: vmRSS(pid), fds: openFiles(pid), goroutines: s.c.goroutines(ctx, n), p50: p50, p99: p99}
			s.mu.Lock()
			s.soak = append(s.soak, smp)
			s.mu.Unlock()
			s.c.progress("soak %s: rss %.1f MiB, %d goroutines, %d open files, p50 %v p99 %v",
				n.name, float64(smp.rss)/(1<<20), smp.goroutines, smp.fds, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
		}
	}
	p.end = time.Now()
}

// latencyBetween is the p50 and p99 of calls served (2xx) that started
// in [from, to).
func latencyBetween(rs []result, from, to time.Time) (p50, p99 time.Duration) {
	var ds []time.Duration
	for _, r := range rs {
		if r.admitted() && !r.start.Before(from) && r.start.Before(to) {
			ds = append(ds, r.end.Sub(r.start))
		}
	}
	return quantile(ds, 0.5), quantile(ds, 0.99)
}

// vmRSS reads a process's resident memory in bytes.
func vmRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// openFiles counts a process's open file descriptors.
func openFiles(pid int) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(es)
}

// goroutines reads go_goroutines from a node's /metrics (admin API).
func (c *cluster) goroutines(ctx context.Context, n *node) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.cred.Reveal())
	resp, err := c.probe.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f)
		}
	}
	return 0
}

// soakVerdict compares, per node, the late part of the soak with its
// early part. It returns one line per node and whether all stayed flat.
func soakVerdict(samples []soakSample) (lines []string, ok bool) {
	byNode := map[string][]soakSample{}
	var names []string
	for _, s := range samples {
		if byNode[s.node] == nil {
			names = append(names, s.node)
		}
		byNode[s.node] = append(byNode[s.node], s)
	}
	ok = true
	for _, name := range names {
		ss := byNode[name]
		if len(ss) < 4 {
			lines = append(lines, fmt.Sprintf("%s: %d samples, too few to judge (a longer --soak gives more)", name, len(ss)))
			continue
		}
		// Skip the first fifth (warm-up); early is the next fifth, late the last.
		q := max(1, len(ss)/5)
		early, late := ss[q:2*q], ss[len(ss)-q:]
		e, l := mean(early), mean(late)
		var bad []string
		if float64(l.rss) > float64(e.rss)*soakRSSGrowth+soakRSSSlack {
			bad = append(bad, fmt.Sprintf("resident memory grew %.1f -> %.1f MiB", mib(e.rss), mib(l.rss)))
		}
		if float64(l.goroutines) > float64(e.goroutines)*soakGoroutineGrowth+soakGoroutineSlack {
			bad = append(bad, fmt.Sprintf("goroutines grew %d -> %d", e.goroutines, l.goroutines))
		}
		if l.fds > e.fds+soakFDSlack {
			bad = append(bad, fmt.Sprintf("open files grew %d -> %d", e.fds, l.fds))
		}
		if float64(l.p99) > float64(e.p99)*soakP99Growth+float64(soakP99Slack) {
			bad = append(bad, fmt.Sprintf("p99 latency grew %v -> %v", e.p99.Round(time.Millisecond), l.p99.Round(time.Millisecond)))
		}
		line := fmt.Sprintf("%s: rss %.1f -> %.1f MiB, goroutines %d -> %d, open files %d -> %d, p99 %v -> %v",
			name, mib(e.rss), mib(l.rss), e.goroutines, l.goroutines, e.fds, l.fds, e.p99.Round(time.Millisecond), l.p99.Round(time.Millisecond))
		if len(bad) > 0 {
			ok = false
			line += ": NOT FLAT: " + strings.Join(bad, "; ")
		}
		lines = append(lines, line)
	}
	return lines, ok
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func mean(ss []soakSample) soakSample {
	var m soakSample
	for _, s := range ss {
		m.rss += s.rss
		m.fds += s.fds
		m.goroutines += s.goroutines
		m.p99 += s.p99
	}
	n := len(ss)
	m.rss /= int64(n)
	m.fds /= n
	m.goroutines /= n
	m.p99 /= time.Duration(n)
	return m
}
