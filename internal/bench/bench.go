package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// Options configures a benchmark run.
type Options struct {
	// Binary is the keygate executable whose `serve` and `bench serve-*`
	// commands run the servers as child processes; "" runs them in-process
	// (no per-server memory figures then).
	Binary string
	// Concurrencies are the connection counts to drive, each a closed loop
	// of that many workers.
	Concurrencies []int
	// Round is how long one target is driven at one concurrency in one round.
	Round time.Duration
	// Rounds is how many alternating rounds run per concurrency.
	Rounds int
	// StreamSamples is how many streaming requests measure time to first byte.
	StreamSamples int
	// Keys, when above 1, adds a keygate target whose load cycles through
	// that many distinct keys instead of one hot key.
	Keys int
	// Redis, when set, adds a second keygate that keeps its limits in this
	// Redis (redis://...), driven with a key under limits that never refuse:
	// the cost of one shared-limiter round trip per request.
	Redis string
	// Tracing adds a keygate that traces every request (sample ratio 1)
	// and exports the spans over OTLP/HTTP to a collector in this process:
	// what OpenTelemetry costs, beside the same keygate untraced.
	Tracing bool
	// TracingRatio is that keygate's sample ratio (0 means 1: every request).
	TracingRatio float64
	// NoLeakCheck adds a keygate with the credential check on the data
	// path turned off: what the check costs, beside the same keygate with
	// it on (the default).
	NoLeakCheck bool
	// Logs receives the servers' logs (io.Discard when nil).
	Logs io.Writer
	// Progress receives a line per round (nothing when nil).
	Progress io.Writer
}

// Target names.
const (
	Direct   = "direct"                 // straight to the fake upstream
	Baseline = "baseline"               // bare httputil.ReverseProxy injecting the key
	Pooled   = "baseline+pool"          // the same with a copy-buffer pool
	Keygate  = "keygate"                // keygate with a realistic key
	ManyKeys = "keygate, many keys"     // keygate with the load spread over Options.Keys keys
	Limited  = "keygate+limits"         // keygate with a key under rate, token, concurrency, quota and budget limits (memory)
	Redis    = "keygate+redis"          // the same limits kept in Redis by a second keygate
	Traced   = "keygate+otlp"           // keygate tracing every request, exported over OTLP/HTTP
	NoLeaks  = "keygate, no leak check" // keygate with the credential check on the data path off
	// Translated is keygate serving the same OpenAI chat request for a model
	// whose provider speaks Anthropic's dialect: the request is translated to
	// a Messages request and the answer (JSON or stream) back.
	Translated = "keygate, translated"
)

// Row is one target at one concurrency, all rounds merged.
type Row struct {
	Target      string
	Concurrency int
	RPS         float64
	P50         time.Duration
	P99         time.Duration
	P999        time.Duration
	Requests    uint64
	Errors      uint64
}

// TTFB is time to first byte of streamed responses through one target,
// and to the first whole event carrying generated text: what a client's
// SDK can show first.
type TTFB struct {
	Target           string
	P50, P99         time.Duration
	TextP50, TextP99 time.Duration
}

// Memory is a server process's resident memory after the run: all of it
// (RSS), its peak, and the anonymous part (the process's own heap, stacks
// and runtime; the rest is the executable's pages, shared and reclaimable).
type Memory struct {
	Target          string
	RSS, Peak, Anon int64
}

// Report is everything one run measured.
type Report struct {
	Machine string
	Options Options
	Rows    []Row
	TTFB    []TTFB
	Memory  []Memory
}

// request is the chat completion every target serves, for requestModel
// unless a target names another.
const request = `{"model":"` + requestModel + `","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about reverse proxies."}],"max_tokens":128}`

// requestModel is the model request names; translatedModel is the one
// the translated target asks for instead, served by the Anthropic fake.
const (
	requestModel    = "gpt-4o-mini"
	translatedModel = "claude-haiku-4-5"
)

// Run starts the upstream, the baseline and keygate, then measures them.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Logs == nil {
		o.Logs = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	dir, err := os.MkdirTemp("", "keygate-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	l := launcher{binary: o.Binary, dir: dir, logs: o.Logs}

	upKey := "bench-upstream-key-" + randHex(16)
	up, err := l.upstream(ctx, upKey, false)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	defer up.stop()
	anthropicKey := "bench-anthropic-key-" + randHex(16)
	aup, err := l.upstream(ctx, anthropicKey, true)
	if err != nil {
		return nil, fmt.Errorf("Anthropic upstream: %w", err)
	}
	defer aup.stop()
	base, err := l.baseline(ctx, up.url+"/v1", upKey, false)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer base.stop()
	pooled, err := l.baseline(ctx, up.url+"/v1", upKey, true)
	if err != nil {
		return nil, fmt.Errorf("pooled baseline: %w", err)
	}
	defer pooled.stop()
	kg, err := l.keygate(ctx, "keygate", variant{})
	if err != nil {
		return nil, fmt.Errorf("keygate: %w", err)
	}
	defer kg.stop()
	kgKey, err := configure(ctx, kg, up.url+"/v1", upKey)
	if err != nil {
		return nil, fmt.Errorf("configure keygate: %w", err)
	}
	limitedKey, err := createLimitedKey(ctx, kg)
	if err != nil {
		return nil, fmt.Errorf("configure keygate: %w", err)
	}
	translatedKey, err := configureTranslated(ctx, kg, aup.url, anthropicKey)
	if err != nil {
		return nil, fmt.Errorf("configure keygate's Anthropic provider: %w", err)
	}

	targets := []target{
		{name: Direct, url: up.url, keys: []string{upKey}},
		{name: Baseline, url: base.url, keys: []string{"client-key-replaced-by-the-proxy"}},
		{name: Pooled, url: pooled.url, keys: []string{"client-key-replaced-by-the-proxy"}},
		{name: Keygate, url: kg.url, keys: []string{kgKey}},
		{name: Limited, url: kg.url, keys: []string{limitedKey}},
		{name: Translated, url: kg.url, keys: []string{translatedKey}, model: translatedModel},
	}
	if o.Redis != "" {
		rkg, err := l.keygate(ctx, "keygate-redis", variant{redis: o.Redis})
		if err != nil {
			return nil, fmt.Errorf("keygate with Redis: %w", err)
		}
		defer rkg.stop()
		if _, err := configure(ctx, rkg, up.url+"/v1", upKey); err != nil {
			return nil, fmt.Errorf("configure keygate with Redis: %w", err)
		}
		rkey, err := createLimitedKey(ctx, rkg)
		if err != nil {
			return nil, fmt.Errorf("configure keygate with Redis: %w", err)
		}
		targets = append(targets, target{name: Redis, url: rkg.url, keys: []string{rkey}})
	}
	if o.Tracing {
		col, err := startCollector()
		if err != nil {
			return nil, fmt.Errorf("OTLP collector: %w", err)
		}
		defer col.Close()
		ratio := o.TracingRatio
		if ratio <= 0 {
			ratio = 1
		}
		tkg, err := l.keygate(ctx, "keygate-otlp", variant{otlp: col.URL, ratio: ratio})
		if err != nil {
			return nil, fmt.Errorf("keygate with tracing: %w", err)
		}
		defer tkg.stop()
		tkey, err := configure(ctx, tkg, up.url+"/v1", upKey)
		if err != nil {
			return nil, fmt.Errorf("configure keygate with tracing: %w", err)
		}
		targets = append(targets, target{name: Traced, url: tkg.url, keys: []string{tkey}})
	}
	if o.NoLeakCheck {
		nkg, err := l.keygate(ctx, "keygate-noleaks", variant{leaksOff: true})
		if err != nil {
			return nil, fmt.Errorf("keygate without the credential check: %w", err)
		}
		defer nkg.stop()
		nkey, err := configure(ctx, nkg, up.url+"/v1", upKey)
		if err != nil {
			return nil, fmt.Errorf("configure keygate without the credential check: %w", err)
		}
		targets = append(targets, target{name: NoLeaks, url: nkg.url, keys: []string{nkey}})
	}
	if o.Keys > 1 {
		keys, err := manyKeys(ctx, kg, o.Keys)
		if err != nil {
			return nil, fmt.Errorf("create %d keys: %w", o.Keys, err)
		}
		targets = append(targets, target{name: ManyKeys, url: kg.url, keys: keys})
	}
	for _, t := range targets { // every target must answer before it is measured
		for _, k := range t.keys {
			if err := check(ctx, t, k); err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}

	rep := &Report{Machine: machine(), Options: o}
	for _, c := range o.Concurrencies {
		metrics := map[string]*vegeta.Metrics{}
		ok := map[string]uint64{}
		busy := map[string]time.Duration{}
		for _, t := range targets {
			metrics[t.name] = &vegeta.Metrics{}
			attack(ctx, t, c, time.Second/2, nil) // warm connections and caches
		}
		for r := 0; r < o.Rounds; r++ {
			order := make([]int, len(targets))
			for i := range order {
				order[i] = i
				if r%2 == 1 {
					order[i] = len(targets) - 1 - i
				}
			}
			for _, i := range order {
				t := targets[i]
				if len(t.keys) > 1 {
					// Keys in steady use: other targets' rounds leave these
					// keys idle longer than a real workload would, so touch
					// each once, unmeasured, before the round.
					touchAll(ctx, t, c)
				}
				n, d := attack(ctx, t, c, o.Round, metrics[t.name])
				ok[t.name] += n
				busy[t.name] += d
				fmt.Fprintf(o.Progress, "round %d/%d  c=%-4d %-8s done\n", r+1, o.Rounds, c, t.name)
			}
		}
		for _, t := range targets {
			m := metrics[t.name]
			m.Close()
			// Requests/s counts only the time this target was driven: vegeta's
			// own throughput would span the other targets' rounds too.
			rep.Rows = append(rep.Rows, Row{
				Target: t.name, Concurrency: c, RPS: float64(ok[t.name]) / busy[t.name].Seconds(),
				P50: m.Latencies.P50, P99: m.Latencies.P99, P999: m.Latencies.Quantile(0.999),
				Requests: m.Requests, Errors: m.Requests - ok[t.name],
			})
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	for _, t := range targets {
		switch t.name {
		case Direct, Baseline, Pooled, Keygate, NoLeaks, Translated:
			rep.TTFB = append(rep.TTFB, ttfb(ctx, t, o.StreamSamples))
		}
	}
	for _, p := range []struct {
		name string
		p    *proc
	}{{Baseline, base}, {Pooled, pooled}, {Keygate, kg}} {
		if p.p.pid != 0 {
			cur, peak, anon := rss(p.p.pid)
			rep.Memory = append(rep.Memory, Memory{Target: p.name, RSS: cur, Peak: peak, Anon: anon})
		}
	}
	return rep, nil
}

// configure registers the upstream in keygate and creates the kind of key a
// team hands an agent: scoped to one provider and a model family, expiring.
func configure(ctx context.Context, kg *proc, upstream, upKey string) (string, error) {
	if kg.cred == "" {
		return "", errors.New("keygate printed no admin credential")
	}
	c, err := adminclient.New(kg.admin, secret.New(kg.cred))
	if err != nil {
		return "", err
	}
	if _, err := c.CreateProvider(ctx, adminapi.CreateProviderRequest{Name: "openai", BaseURL: upstream, Models: []string{"gpt-*"}, APIKey: upKey}); err != nil {
		return "", err
	}
	k, err := c.CreateKey(ctx, adminapi.CreateKeyRequest{
		Name: "bench-agent", AllowModels: []string{"gpt-4o*"}, AllowProviders: []string{"openai"}, ExpiresIn: "30d",
	})
	if err != nil {
		return "", err
	}
	return k.Secret, nil
}

// createLimitedKey makes a key like the benchmark key under every kind of
// limit, set so high that none refuses: the measurement is the cost of
// checking, reserving and settling them.
func createLimitedKey(ctx context.Context, kg *proc) (string, error) {
	c, err := adminclient.New(kg.admin, secret.New(kg.cred))
	if err != nil {
		return "", err
	}
	const huge = 1 << 45
	k, err := c.CreateKey(ctx, adminapi.CreateKeyRequest{
		Name: "bench-limited", AllowModels: []string{"gpt-4o*"}, AllowProviders: []string{"openai"}, ExpiresIn: "30d",
		Limits: adminapi.Limits{
			RPS: 1 << 30, RPM: 1 << 27, TPM: 1 << 27, Concurrency: 100_000,
			Quotas:  []adminapi.Quota{{Limit: huge, Unit: adminapi.UnitRequests, Period: adminapi.PeriodDay}},
			Budgets: []adminapi.Budget{{MicroUSD: huge, Period: adminapi.PeriodMonth}},
		},
	})
	if err != nil {
		return "", err
	}
	return k.Secret, nil
}

// configureTranslated registers the Anthropic fake in keygate as an
// Anthropic-dialect provider of translatedModel, and creates a key like the
// benchmark key for it: OpenAI chat requests for that model are translated.
func configureTranslated(ctx context.Context, kg *proc, upstream, upKey string) (string, error) {
	c, err := adminclient.New(kg.admin, secret.New(kg.cred))
	if err != nil {
		return "", err
	}
	if _, err := c.CreateProvider(ctx, adminapi.CreateProviderRequest{Name: "anthropic", Dialect: "anthropic", BaseURL: upstream, Models: []string{"claude-*"}, APIKey: upKey}); err != nil {
		return "", err
	}
	k, err := c.CreateKey(ctx, adminapi.CreateKeyRequest{
		Name: "bench-agent-translated", AllowModels: []string{"claude-haiku-*"}, AllowProviders: []string{"anthropic"}, ExpiresIn: "30d",
	})
	if err != nil {
		return "", err
	}
	return k.Secret, nil
}

// target is one server under load, the keys its requests carry and the
// model they name ("" for requestModel).
type target struct {
	name, url string
	keys      []string
	model     string
}

// body is the chat request sent to t, streamed or not.
func (t target) body(stream bool) []byte {
	b := request
	if t.model != "" {
		b = strings.Replace(b, `"model":"`+requestModel+`"`, `"model":"`+t.model+`"`, 1)
	}
	if stream {
		b = strings.Replace(b, `"max_tokens":128`, `"max_tokens":128,"stream":true`, 1)
	}
	return []byte(b)
}

// manyKeys creates n more keys like the benchmark key, eight at a time.
func manyKeys(ctx context.Context, kg *proc, n int) ([]string, error) {
	c, err := adminclient.New(kg.admin, secret.New(kg.cred))
	if err != nil {
		return nil, err
	}
	keys := make([]string, n)
	errs := make(chan error, 8)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		go func() {
			for i := range next {
				k, err := c.CreateKey(ctx, adminapi.CreateKeyRequest{
					Name: fmt.Sprintf("bench-agent-%d", i), AllowModels: []string{"gpt-4o*"}, AllowProviders: []string{"openai"}, ExpiresIn: "30d",
				})
				if err != nil {
					errs <- err
					return
				}
				keys[i] = k.Secret
			}
			errs <- nil
		}()
	}
	var firstErr error
	for i := 0; i < n && firstErr == nil; i++ {
		select {
		case next <- i:
		case firstErr = <-errs:
		}
	}
	close(next)
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return keys, firstErr
}

// touchAll sends one request with each of the target's keys.
func touchAll(ctx context.Context, t target, c int) {
	tgts := make([]vegeta.Target, len(t.keys))
	for i, k := range t.keys {
		tgts[i] = targetFor(t, k)
	}
	var i int
	var mu sync.Mutex
	once := func(tgt *vegeta.Target) error {
		mu.Lock()
		defer mu.Unlock()
		if i == len(tgts) {
			return vegeta.ErrNoTargets
		}
		*tgt = tgts[i]
		i++
		return nil
	}
	a := vegeta.NewAttacker(vegeta.Workers(uint64(c)), vegeta.MaxWorkers(uint64(c)), vegeta.Connections(c), vegeta.KeepAlive(true))
	for range a.Attack(once, vegeta.ConstantPacer{}, 0, "") {
		if ctx.Err() != nil {
			a.Stop()
		}
	}
}

// targetFor is t's chat request carrying key.
func targetFor(t target, key string) vegeta.Target {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	h.Set("Content-Type", "application/json")
	return vegeta.Target{Method: "POST", URL: t.url + "/v1/chat/completions", Body: t.body(false), Header: h}
}

// attack drives one target with c closed-loop workers over c keep-alive
// connections for d, adding results to m when m is not nil. It returns the
// successful requests and the wall time from start to the last answer.
func attack(ctx context.Context, t target, c int, d time.Duration, m *vegeta.Metrics) (uint64, time.Duration) {
	a := vegeta.NewAttacker(
		vegeta.Workers(uint64(c)), vegeta.MaxWorkers(uint64(c)),
		vegeta.Connections(c), vegeta.MaxConnections(c),
		vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second), vegeta.Redirects(vegeta.NoFollow),
	)
	start := time.Now()
	tgts := make([]vegeta.Target, len(t.keys))
	for i, k := range t.keys {
		tgts[i] = targetFor(t, k)
	}
	res := a.Attack(vegeta.NewStaticTargeter(tgts...), vegeta.ConstantPacer{}, d, "")
	var ok uint64
	for {
		select {
		case <-ctx.Done():
			a.Stop()
		case r, open := <-res:
			if !open {
				return ok, time.Since(start)
			}
			if r.Code == http.StatusOK && r.Error == "" {
				ok++
			}
			if m != nil {
				m.Add(r)
			}
		}
	}
}

// check sends t's request once with key and requires an OpenAI chat
// completion naming the model asked for; for a translated target, one
// built from an Anthropic message.
func check(ctx context.Context, t target, key string) error {
	_, err := answer(ctx, t, key)
	return err
}

// answer is check returning the body it checked.
func answer(ctx context.Context, t target, key string) ([]byte, error) {
	vt := targetFor(t, key)
	req, err := vt.Request()
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"chat.completion"`)) {
		return b, fmt.Errorf("answered %d: %.200s", resp.StatusCode, b)
	}
	if t.model != "" && !bytes.Contains(b, []byte(`"model":"`+t.model+`"`)) {
		return b, fmt.Errorf("answered for another model than %s: %.200s", t.model, b)
	}
	if t.name == Translated && !bytes.Contains(b, []byte(`"id":"msg_`)) {
		return b, fmt.Errorf("answered a chat completion not translated from an Anthropic message: %.200s", b)
	}
	return b, nil
}

// firstText reports whether stream holds a whole event with generated
// text: a non-empty "content" followed by the blank line ending its event.
func firstText(stream []byte) bool {
	const key = `"content":"`
	for off := 0; ; {
		c := bytes.Index(stream[off:], []byte(key))
		if c < 0 {
			return false
		}
		c += off + len(key)
		if c < len(stream) && stream[c] != '"' {
			return bytes.Contains(stream[c:], []byte("\n\n"))
		}
		off = c
	}
}

// ttfb measures time to the first streamed byte, and to the end of the
// first event carrying text, over n sequential requests.
func ttfb(ctx context.Context, t target, n int) TTFB {
	body := t.body(true)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	var first, text []time.Duration
	for i := 0; i < n && ctx.Err() == nil; i++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", t.url+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+t.keys[0])
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		var seen []byte
		buf := make([]byte, 4096)
		gotFirst := false
		for resp.StatusCode == 200 {
			k, err := resp.Body.Read(buf)
			if k > 0 && !gotFirst {
				first, gotFirst = append(first, time.Since(start)), true
			}
			seen = append(seen, buf[:k]...)
			if firstText(seen) {
				text = append(text, time.Since(start))
				break
			}
			if err != nil {
				break
			}
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	q := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[int(p*float64(len(ds)-1))]
	}
	return TTFB{Target: t.name, P50: q(first, 0.5), P99: q(first, 0.99), TextP50: q(text, 0.5), TextP99: q(text, 0.99)}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
