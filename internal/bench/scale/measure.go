package scale

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate/keygate/internal/apikey"
)

// Options configures Measure. Zero counts take the defaults shown.
type Options struct {
	// Binary is the keygate executable to run (required).
	Binary string
	// DataDir is a data directory prepared by Seed (required).
	DataDir string
	// Keys are the raw keys Seed returned. Measure needs at least
	// 1 + ColdKeys + SpreadKeys of them, and uses disjoint ones per case.
	Keys []string

	// HotRequests is how many sequential requests reuse one key (2,000).
	HotRequests int
	// ColdKeys is how many keys are each used once, for the first time since
	// keygate started, so every one is looked up in the store (1,000).
	ColdKeys int
	// SpreadKeys is how many distinct keys the spread case cycles (10,000).
	SpreadKeys int
	// SpreadPasses is how many times the spread case cycles its keys (3).
	// The first pass fills keygate's key cache and is not timed.
	SpreadPasses int

	// Concurrency is the number of concurrent clients in the throughput
	// comparison (GOMAXPROCS).
	Concurrency int
	// ThroughputDuration is how long each throughput case runs; zero skips
	// the comparison.
	ThroughputDuration time.Duration

	// StartTimeout bounds the wait for keygate to answer /healthz (60s).
	StartTimeout time.Duration
	// Env adds settings to keygate's environment, such as
	// KEYGATE_KEY_CACHE_TTL=1m. KEYGATE_* variables of this process are not
	// passed on, so that only these and the defaults apply.
	Env []string
	// Logs receives keygate's log (its standard error); nil discards it.
	// Its standard output, which carries the one-time admin credential on
	// a first start, is always discarded.
	Logs io.Writer
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.HotRequests, 2000)
	def(&o.ColdKeys, 1000)
	def(&o.SpreadKeys, 10_000)
	def(&o.SpreadPasses, 3)
	def(&o.Concurrency, runtime.GOMAXPROCS(0))
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Logs == nil {
		o.Logs = io.Discard
	}
}

// Latency summarizes the round-trip times of one case's requests.
type Latency struct {
	Requests int           // requests timed
	Failures int           // requests not answered 200
	P50, P99 time.Duration // percentiles
	Max      time.Duration
	Mean     time.Duration
}

// Memory is a keygate process's resident memory, read from
// /proc/<pid>/status (zero where that is not available).
type Memory struct {
	RSS  int64 // VmRSS: resident now, in bytes
	Peak int64 // VmHWM: the highest resident size so far, in bytes
}

// Throughput is the request rate of one case of the concurrent comparison.
type Throughput struct {
	Requests int           // requests answered
	Failures int           // of those, answers other than 200
	Elapsed  time.Duration // time spent sending them
	PerSec   float64       // Requests / Elapsed
}

// Report is what Measure found.
type Report struct {
	// Keys is the number of keys Measure was given (the keys in the
	// database when the directory was seeded once).
	Keys int
	// Start is the time from starting the process to the first 200 answer
	// from the gateway's /healthz.
	Start time.Duration
	// MemStart is read right after start; MemSpread after every case,
	// when SpreadKeys keys are in keygate's key cache; MemEnd after the
	// throughput comparison.
	MemStart, MemSpread, MemEnd Memory

	// Hot repeats one key, always answered from keygate's key cache.
	Hot Latency
	// Cold uses each key once, so each verification reads the store.
	Cold Latency
	// Spread cycles SpreadKeys distinct keys after one untimed pass.
	Spread     Latency
	SpreadKeys int

	// HotRate and SpreadRate compare concurrent throughput with one key and
	// with SpreadKeys keys; both are zero when the comparison was skipped.
	HotRate, SpreadRate Throughput
	Concurrency         int
	RateDuration        time.Duration

	// UnknownStatus is the gateway's answer to a well-formed key it never
	// issued (401 expected).
	UnknownStatus int
	// Stop is the time from SIGTERM to the process's exit.
	Stop time.Duration
}

// SpreadCost is how much lower throughput with SpreadKeys keys was than with
// one key, as a fraction (0.05 is 5% slower; negative is faster). It is 0
// when the comparison was skipped.
func (r Report) SpreadCost() float64 {
	if r.HotRate.PerSec == 0 {
		return 0
	}
	return 1 - r.SpreadRate.PerSec/r.HotRate.PerSec
}

// Measure starts opts.Binary as `keygate serve` on opts.DataDir, with its
// defaults (SQLite, key_cache_ttl 10s) and the access log off, and measures:
// start time, resident memory, sequential verification latency through
// GET /v1/models for a hot key, cold keys and a spread of keys, optionally
// concurrent throughput with one key against the spread, and the answer to
// an unknown key. It then stops keygate with SIGTERM.
//
// GET /v1/models is keygate's cheapest authenticated call: with no provider
// registered it answers an empty list after verifying the key, so the
// latency measured is keygate's own.
func Measure(ctx context.Context, opts Options) (Report, error) {
	opts.defaults()
	if opts.Binary == "" || opts.DataDir == "" {
		return Report{}, errors.New("scale: Measure needs Options.Binary and Options.DataDir")
	}
	if need := 1 + opts.ColdKeys + opts.SpreadKeys; len(opts.Keys) < need {
		return Report{}, fmt.Errorf("scale: Measure needs at least %d keys (1 hot, %d cold, %d spread), got %d; seed more or lower the counts",
			need, opts.ColdKeys, opts.SpreadKeys, len(opts.Keys))
	}
	hot, cold, spread := pick(opts.Keys, opts.ColdKeys, opts.SpreadKeys)
	rep := Report{Keys: len(opts.Keys), SpreadKeys: len(spread)}

	p, err := start(ctx, opts)
	if err != nil {
		return rep, err
	}
	defer p.kill()
	rep.Start = p.started
	rep.MemStart = readMemory(p.cmd.Process.Pid)

	c := newClient(p.gateway, opts.Concurrency)
	defer c.http.CloseIdleConnections()
	if status, body, err := c.get(ctx, hot); err != nil || status != http.StatusOK {
		return rep, fmt.Errorf("scale: GET /v1/models with a seeded key: status %d, err %v, body %q; was the directory seeded by Seed and is the key from it?", status, err, body)
	}

	// A short untimed run warms the connection and keygate's own start-up
	// allocations, so the hot case measures the steady state.
	if _, err = c.sequential(ctx, repeat(hot, min(opts.HotRequests, 200))); err != nil {
		return rep, err
	}
	if rep.Hot, err = c.sequential(ctx, repeat(hot, opts.HotRequests)); err != nil {
		return rep, err
	}
	if rep.Cold, err = c.sequential(ctx, cold); err != nil {
		return rep, err
	}
	if _, err = c.sequential(ctx, spread); err != nil { // fills the cache
		return rep, err
	}
	passes := make([]string, 0, len(spread)*(opts.SpreadPasses-1))
	for range opts.SpreadPasses - 1 {
		passes = append(passes, spread...)
	}
	if rep.Spread, err = c.sequential(ctx, passes); err != nil {
		return rep, err
	}
	rep.MemSpread = readMemory(p.cmd.Process.Pid)

	if opts.ThroughputDuration > 0 {
		rep.Concurrency, rep.RateDuration = opts.Concurrency, opts.ThroughputDuration
		if rep.HotRate, rep.SpreadRate, err = c.compare(ctx, []string{hot}, spread, opts.Concurrency, opts.ThroughputDuration); err != nil {
			return rep, err
		}
	}

	unknown, err := apikey.Generate("live")
	if err != nil {
		return rep, err
	}
	if rep.UnknownStatus, _, err = c.get(ctx, unknown.Reveal()); err != nil {
		return rep, err
	}
	rep.MemEnd = readMemory(p.cmd.Process.Pid)

	c.http.CloseIdleConnections()
	if rep.Stop, err = p.stop(30 * time.Second); err != nil {
		return rep, err
	}
	return rep, nil
}

// pick splits keys into a hot key, cold keys spread evenly over the table
// and a block of spread keys at its end, with no key in two cases.
func pick(keys []string, nCold, nSpread int) (hot string, cold, spread []string) {
	spread = keys[len(keys)-nSpread:]
	rest := keys[1 : len(keys)-nSpread]
	cold = make([]string, 0, nCold)
	for i := range nCold {
		cold = append(cold, rest[i*len(rest)/nCold])
	}
	return keys[0], cold, spread
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// process is a running keygate.
type process struct {
	cmd     *exec.Cmd
	gateway string
	started time.Duration
	done    chan error
	exited  bool
}

// start runs keygate on two free loopback ports and waits for /healthz.
func start(ctx context.Context, opts Options) (*process, error) {
	gw, err := freePort()
	if err != nil {
		return nil, err
	}
	adm, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(opts.Binary, "serve", "--data-dir", opts.DataDir, "--listen", gw, "--admin-listen", adm)
	cmd.Env = append(childEnv(opts.DataDir), opts.Env...)
	cmd.Stdout = io.Discard
	cmd.Stderr = opts.Logs
	p := &process{cmd: cmd, gateway: "http://" + gw, done: make(chan error, 1)}

	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scale: start %s: %w", opts.Binary, err)
	}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.NewTimer(opts.StartTimeout)
	defer deadline.Stop()
	for {
		resp, err := probe.Get(p.gateway + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.started = time.Since(began)
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			p.exited = true
			return nil, fmt.Errorf("scale: keygate exited before it answered /healthz (%v); see its log", err)
		case <-deadline.C:
			p.kill()
			return nil, fmt.Errorf("scale: keygate did not answer /healthz within %s", opts.StartTimeout)
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// childEnv is this process's environment without KEYGATE_* settings, which
// could point keygate elsewhere, plus a quiet access log and a HOME inside
// the data directory.
func childEnv(dataDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYGATE_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+dataDir, "KEYGATE_LOG_REQUESTS=false")
}

// stop sends SIGTERM and waits up to grace for the exit.
func (p *process) stop(grace time.Duration) (time.Duration, error) {
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("scale: stop keygate: %w", err)
	}
	select {
	case err := <-p.done:
		p.exited = true
		if err != nil {
			return time.Since(began), fmt.Errorf("scale: keygate exited with %v after SIGTERM; see its log", err)
		}
		return time.Since(began), nil
	case <-time.After(grace):
		p.kill()
		return time.Since(began), fmt.Errorf("scale: keygate did not exit within %s of SIGTERM", grace)
	}
}

// kill ends the process if it is still running and reaps it.
func (p *process) kill() {
	if p.exited {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.exited = true
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("scale: find a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// readMemory reads VmRSS and VmHWM of pid from /proc.
func readMemory(pid int) Memory {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			m.RSS = kb << 10
		case "VmHWM":
			m.Peak = kb << 10
		}
	}
	return m
}

// client sends GET /v1/models to one keygate gateway over kept-alive connections.
type client struct {
	http *http.Client
	url  string
}

func newClient(gateway string, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns + 1,
		MaxIdleConnsPerHost: conns + 1,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &client{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, url: gateway + "/v1/models"}
}

// get sends one request with key and returns the status and, for a
// failure, the start of the body.
func (c *client) get(ctx context.Context, key string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, "", err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, string(b), nil
}

// sequential sends one request per key, one after another, and times each.
func (c *client) sequential(ctx context.Context, keys []string) (Latency, error) {
	times := make([]time.Duration, 0, len(keys))
	failures := 0
	for _, k := range keys {
		t0 := time.Now()
		status, _, err := c.get(ctx, k)
		d := time.Since(t0)
		if err != nil {
			return Latency{}, fmt.Errorf("scale: GET /v1/models: %w", err)
		}
		if status != http.StatusOK {
			failures++
		}
		times = append(times, d)
	}
	return summarize(times, failures), nil
}

// concurrent runs workers clients for d, each cycling keys from its own
// starting point, and counts answered requests.
func (c *client) concurrent(ctx context.Context, keys []string, workers int, d time.Duration) (Throughput, error) {
	var done, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	began := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w * len(keys) / workers; ctx.Err() == nil; i++ {
				status, _, err := c.get(ctx, keys[i%len(keys)])
				if err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				done.Add(1)
				if status != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	if firstErr != nil {
		return Throughput{}, fmt.Errorf("scale: GET /v1/models under load: %w", firstErr)
	}
	n := int(done.Load())
	return Throughput{Requests: n, Failures: int(failed.Load()), Elapsed: elapsed, PerSec: float64(n) / elapsed.Seconds()}, nil
}

// compare measures throughput with keys a and with keys b for d each, in
// the order a, b, b, a with half of d per run, so that drift in the
// machine's speed (warm-up, other load) weighs on both alike. An untimed
// warm-up with a opens the connections first.
func (c *client) compare(ctx context.Context, a, b []string, workers int, d time.Duration) (ta, tb Throughput, err error) {
	if _, err := c.concurrent(ctx, a, workers, min(d/4, 500*time.Millisecond)); err != nil {
		return ta, tb, err
	}
	var sums [2]Throughput
	for _, which := range []int{0, 1, 1, 0} {
		keys := a
		if which == 1 {
			keys = b
		}
		t, err := c.concurrent(ctx, keys, workers, d/2)
		if err != nil {
			return ta, tb, err
		}
		sums[which].Requests += t.Requests
		sums[which].Failures += t.Failures
		sums[which].Elapsed += t.Elapsed
	}
	for i := range sums {
		sums[i].PerSec = float64(sums[i].Requests) / sums[i].Elapsed.Seconds()
	}
	return sums[0], sums[1], nil
}

func summarize(times []time.Duration, failures int) Latency {
	if len(times) == 0 {
		return Latency{}
	}
	slices.Sort(times)
	var sum time.Duration
	for _, t := range times {
		sum += t
	}
	pct := func(p float64) time.Duration { return times[min(len(times)-1, int(p*float64(len(times))))] }
	return Latency{
		Requests: len(times), Failures: failures,
		P50: pct(0.50), P99: pct(0.99), Max: times[len(times)-1],
		Mean: sum / time.Duration(len(times)),
	}
}
