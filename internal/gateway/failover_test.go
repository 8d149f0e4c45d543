package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/store"
)

// aliasGateway serves a gateway whose table has the given providers and
// routing configuration.
func aliasGateway(t *testing.T, k *keys, r config.Routing, edit func(*gateway.Options), ups ...*route.Upstream) *gw {
	t.Helper()
	if err := route.ValidateRouting(r); err != nil {
		t.Fatal(err)
	}
	g := newGatewayWith(t, k.verifier(), nil, edit, ups...)
	g.SetTable(route.NewTable(ups).WithRouting(r, nil))
	return g
}

func deployment(name, provider, model string) config.Deployment {
	return config.Deployment{Name: name, Provider: provider, Model: model}
}

// deadUpstream is a provider address nothing listens on.
func deadUpstream(t testing.TB, name string) *route.Upstream {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return upstreamAt(name, "openai", "http://"+addr+"/v1", "test-upstream-key-"+name+"-not-real")
}

func chatFor(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
}

// TestAliasFailsOverToTheNextDeployment: a deployment nothing answers on
// and one answering 429 are passed over for the next, within one request;
// the client sees the answer of the one that worked, its model renamed to
// the deployment's.
func TestAliasFailsOverToTheNextDeployment(t *testing.T) {
	k := newKeys(t)
	busy := newFake(t, "openai", fakeprovider.Options{FailStatus: 429})
	good := newFake(t, "openai", fakeprovider.Options{})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("dead", "dead", "gpt-4o"), deployment("busy", "busy", "gpt-4o"), deployment("good", "good", "gpt-4o-mini")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"dead", "busy", "good"}}},
	}
	g := aliasGateway(t, k, r, nil, deadUpstream(t, "dead"), busy.upstream("busy", "openai"), good.upstream("good", "openai"))
	key := k.issue("failover", nil)
	a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key)
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if busy.RequestCount() != 1 || good.RequestCount() != 1 {
		t.Fatalf("busy saw %d requests, good %d; want 1 and 1", busy.RequestCount(), good.RequestCount())
	}
	var sent struct{ Model string }
	json.Unmarshal(good.Requests()[0].Body, &sent)
	if sent.Model != "gpt-4o-mini" {
		t.Fatalf("the deployment received model %q", sent.Model)
	}
	// The busy deployment asked to wait (retry-after: 1): the next request
	// does not even try it.
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key); a.status != 200 {
		t.Fatalf("second request: %d", a.status)
	}
	if busy.RequestCount() != 1 {
		t.Fatal("a deployment cooling down after its 429 was tried again")
	}
}

// TestAliasLastAnswerReachesTheClient: when every deployment fails, the
// client gets the last upstream answer (scrubbed), with its Retry-After.
func TestAliasLastAnswerReachesTheClient(t *testing.T) {
	k := newKeys(t)
	a1 := newFake(t, "openai", fakeprovider.Options{FailStatus: 503})
	a2 := newFake(t, "openai", fakeprovider.Options{FailStatus: 429})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("a1", "a1", "gpt-4o"), deployment("a2", "a2", "gpt-4o")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"a1", "a2"}, Timeout: 500 * time.Millisecond}},
	}
	g := aliasGateway(t, k, r, nil, a1.upstream("a1", "openai"), a2.upstream("a2", "openai"))
	key := k.issue("unlucky", nil)
	a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key)
	if a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q: %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	// Both are now out (one failed, one cooling): the next request is
	// refused by keygate without reaching either.
	n2 := a2.RequestCount()
	a = send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key)
	if a.status == 200 {
		t.Fatalf("status %d", a.status)
	}
	if a2.RequestCount() != n2 {
		t.Fatal("the deployment cooling down was tried")
	}
}

// TestAliasHonoursRetryAfter: the only deployment answers 429 with
// retry-after: 1 once; within the alias's deadline keygate waits and
// retries, and the client gets the answer.
func TestAliasHonoursRetryAfter(t *testing.T) {
	k := newKeys(t)
	only := newFake(t, "openai", fakeprovider.Options{FailStatus: 429, FailCount: 1})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("only", "only", "gpt-4o")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"only"}, MaxAttempts: 2, Timeout: 3 * time.Second}},
	}
	g := aliasGateway(t, k, r, nil, only.upstream("only", "openai"))
	key := k.issue("patient", nil)
	start := time.Now()
	a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key)
	if a.status != 200 || only.RequestCount() != 2 {
		t.Fatalf("status %d after %d upstream requests: %s", a.status, only.RequestCount(), a.body)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("answered after %v, before the upstream's Retry-After of 1s", waited)
	}
}

// TestAliasAttemptTimeout: a deployment that never answers is given up on
// after the attempt timeout, leaving time for the next.
func TestAliasAttemptTimeout(t *testing.T) {
	k := newKeys(t)
	hung := newFake(t, "openai", fakeprovider.Options{Hang: true})
	good := newFake(t, "openai", fakeprovider.Options{})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("hung", "hung", "gpt-4o"), deployment("good", "good", "gpt-4o")},
		Aliases: map[string]config.Alias{"smart": {Deployments: []string{"hung", "good"},
			Timeout: 5 * time.Second, AttemptTimeout: 200 * time.Millisecond}},
	}
	g := aliasGateway(t, k, r, nil, hung.upstream("hung", "openai"), good.upstream("good", "openai"))
	key := k.issue("impatient", nil)
	a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key)
	if a.status != 200 || good.RequestCount() != 1 {
		t.Fatalf("status %d, good saw %d: %s", a.status, good.RequestCount(), a.body)
	}
	// With only the hung deployment, the client gets a timeout, in time.
	r.Aliases["slow"] = config.Alias{Deployments: []string{"hung"}, Timeout: 300 * time.Millisecond}
	g.SetTable(route.NewTable([]*route.Upstream{hung.upstream("hung", "openai"), good.upstream("good", "openai")}).WithRouting(r, nil))
	start := time.Now()
	a = send(t, "POST", g.url+"/v1/chat/completions", chatFor("slow"), "Authorization", "Bearer "+key)
	if _, code := openAIError(t, a, http.StatusGatewayTimeout); code != "upstream_timeout" || time.Since(start) > 3*time.Second {
		t.Fatalf("code %q after %v", code, time.Since(start))
	}
}

// TestAliasWeights: a 1:3 weighted alias sends about a quarter of the
// requests to the first deployment.
func TestAliasWeights(t *testing.T) {
	k := newKeys(t)
	light := newFake(t, "openai", fakeprovider.Options{NoRecord: true})
	heavy := newFake(t, "openai", fakeprovider.Options{NoRecord: true})
	dl, dh := deployment("light", "light", "gpt-4o"), deployment("heavy", "heavy", "gpt-4o")
	dl.Weight, dh.Weight = 1, 3
	r := config.Routing{
		Deployments: []config.Deployment{dl, dh},
		Aliases:     map[string]config.Alias{"smart": {Strategy: "weighted", Deployments: []string{"light", "heavy"}}},
	}
	g := aliasGateway(t, k, r, nil, light.upstream("light", "openai"), heavy.upstream("heavy", "openai"))
	key := k.issue("weighted", nil)
	const n = 800
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 8)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key); a.status != 200 {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	p := 0.25
	sd := math.Sqrt(n * p * (1 - p))
	if got := float64(light.RequestCount()); math.Abs(got-n*p) > 4*sd {
		t.Fatalf("weight 1 of 4 got %v of %d requests, want %v ± %.0f", got, n, n*p, 4*sd)
	}
	t.Logf("weight 1:3 split %d:%d", light.RequestCount(), heavy.RequestCount())
}

// TestAliasCircuitBreaker: a failing deployment is taken out after the
// configured failures (requests go straight to the next), probed once
// after the cooldown, and back in once the probe succeeds.
func TestAliasCircuitBreaker(t *testing.T) {
	k := newKeys(t)
	flaky := newFake(t, "openai", fakeprovider.Options{FailStatus: 500, FailCount: 3})
	backup := newFake(t, "openai", fakeprovider.Options{})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("flaky", "flaky", "gpt-4o"), deployment("backup", "backup", "gpt-4o")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"flaky", "backup"}}},
	}
	g := aliasGateway(t, k, r, func(o *gateway.Options) {
		o.Breaker = balance.BreakerConfig{Failures: 3, Cooldown: 2 * time.Second}
	}, flaky.upstream("flaky", "openai"), backup.upstream("backup", "openai"))
	key := k.issue("breaker", nil)
	call := func() {
		t.Helper()
		if a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key); a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	}
	for range 3 {
		call() // flaky fails, backup answers
	}
	if flaky.RequestCount() != 3 || backup.RequestCount() != 3 {
		t.Fatalf("flaky %d, backup %d", flaky.RequestCount(), backup.RequestCount())
	}
	checkHealth(t, g, balance.Open, 3, 3)
	for range 5 {
		call() // open: flaky is not tried
	}
	if flaky.RequestCount() != 3 {
		t.Fatalf("an open breaker let %d requests through", flaky.RequestCount()-3)
	}
	time.Sleep(2100 * time.Millisecond)
	checkHealth(t, g, balance.HalfOpen, 3, 3)
	call() // half-open: one probe, which now succeeds (FailCount was 3)
	if flaky.RequestCount() != 4 {
		t.Fatalf("after the cooldown flaky saw %d requests, want the 1 probe", flaky.RequestCount()-3)
	}
	checkHealth(t, g, balance.Closed, 0, 3) // the errors stay listed
	for range 3 {
		call()
	}
	if flaky.RequestCount() != 7 {
		t.Fatalf("the closed breaker's deployment saw %d of 3 requests", flaky.RequestCount()-4)
	}
}

// checkHealth checks the routing health report of TestAliasCircuitBreaker:
// alias smart, deployment flaky with the breaker, failures in a row and
// 500s listed as given, and backup closed with no errors.
func checkHealth(t *testing.T, g *gw, breaker string, failures, errs int) {
	t.Helper()
	hs := g.RoutingHealth()
	if len(hs) != 1 || hs[0].Name != "smart" || len(hs[0].Deployments) != 2 {
		t.Fatalf("routing health: %+v", hs)
	}
	flaky, backup := hs[0].Deployments[0], hs[0].Deployments[1]
	if flaky.Name != "flaky" || flaky.Provider != "flaky" || flaky.Breaker != breaker || flaky.Failures != failures || len(flaky.Errors) != errs {
		t.Fatalf("flaky's health: %+v; want breaker %s, %d failures in a row, %d errors", flaky, breaker, failures, errs)
	}
	for _, e := range flaky.Errors {
		if e.Status != 500 || e.At.IsZero() || e.Reason != "the provider answered Internal Server Error" {
			t.Fatalf("flaky's error: %+v", e)
		}
	}
	if backup.Breaker != balance.Closed || backup.Failures != 0 || len(backup.Errors) != 0 {
		t.Fatalf("backup's health: %+v", backup)
	}
}

// TestAliasNeverExceedsUpstreamRPM: 50 concurrent requests against a
// deployment whose provider allows 5 a minute: exactly 5 reach it; the
// rest are refused by keygate with a Retry-After.
func TestAliasNeverExceedsUpstreamRPM(t *testing.T) {
	k := newKeys(t)
	up := newFake(t, "openai", fakeprovider.Options{NoRecord: true, Latency: 20 * time.Millisecond})
	d := deployment("capped", "capped", "gpt-4o")
	d.RPM = 5
	r := config.Routing{
		Deployments: []config.Deployment{d},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"capped"}, Timeout: time.Second}},
	}
	g := aliasGateway(t, k, r, nil, up.upstream("capped", "openai"))
	key := k.issue("busy-app", nil)
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key)
			switch {
			case a.status == 200:
				ok.Add(1)
			case a.status == 503 && a.header.Get("Retry-After") != "":
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || refused.Load() != 45 || up.RequestCount() != 5 {
		t.Fatalf("%d answered, %d refused with Retry-After, upstream saw %d; want 5, 45, 5", ok.Load(), refused.Load(), up.RequestCount())
	}
}

// TestAliasStreamIsNeverRetriedAfterItStarted: a deployment that breaks
// off mid-stream is not retried on the next: the client has already
// received part of the answer.
func TestAliasStreamIsNeverRetriedAfterItStarted(t *testing.T) {
	k := newKeys(t)
	breaks := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.Write([]byte(`data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}` + "\n\n"))
		w.(http.Flusher).Flush()
		// Break the connection mid-stream.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	backup := newFake(t, "openai", fakeprovider.Options{})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("breaks", "breaks", "gpt-4o"), deployment("backup", "backup", "gpt-4o")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"breaks", "backup"}}},
	}
	g := aliasGateway(t, k, r, nil, upstreamAt("breaks", "openai", breaks.URL+"/v1", upstreamKey(t, "breaks")), backup.upstream("backup", "openai"))
	key := k.issue("streamer", nil)
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(`{"model":"smart","stream":true,"messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	var got strings.Builder
	for sc.Scan() {
		got.WriteString(sc.Text())
	}
	if !strings.Contains(got.String(), `"Hel"`) {
		t.Fatalf("the client did not get the streamed start: %q", got.String())
	}
	if backup.RequestCount() != 0 {
		t.Fatal("a stream that had started was retried on another deployment")
	}
}

// TestAliasScopes: a key's environment, providers and models narrow an
// alias's deployments; /v1/models lists the aliases the key may use.
func TestAliasScopes(t *testing.T) {
	k := newKeys(t)
	prod := newFake(t, "openai", fakeprovider.Options{})
	dev := newFake(t, "openai", fakeprovider.Options{})
	prodUp, devUp := prod.upstream("prod-openai", "openai"), dev.upstream("dev-openai", "openai")
	prodUp.Env = "prod"
	r := config.Routing{
		Deployments: []config.Deployment{deployment("p", "prod-openai", "gpt-4o"), deployment("d", "dev-openai", "gpt-4o")},
		Aliases: map[string]config.Alias{
			"smart":     {Deployments: []string{"p", "d"}},
			"prod-only": {Deployments: []string{"p"}},
		},
	}
	g := aliasGateway(t, k, r, nil, prodUp, devUp)
	devKey := k.issue("dev-app", func(key *store.Key) { key.Env = "dev" })
	for range 3 {
		if a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+devKey); a.status != 200 {
			t.Fatalf("dev key on smart: %d %s", a.status, a.body)
		}
	}
	if prod.RequestCount() != 0 || dev.RequestCount() != 3 {
		t.Fatalf("a dev key reached the prod deployment: prod %d, dev %d", prod.RequestCount(), dev.RequestCount())
	}
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/chat/completions", chatFor("prod-only"), "Authorization", "Bearer "+devKey), 403); code != "environment_not_allowed" {
		t.Fatalf("dev key on a prod-only alias: %q", code)
	}
	narrow := k.issue("narrow", func(key *store.Key) { key.Env, key.AllowProviders = "prod", []string{"dev-openai"} })
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/chat/completions", chatFor("prod-only"), "Authorization", "Bearer "+narrow), 403); code != "provider_not_allowed" {
		t.Fatalf("a key limited to another provider: %q", code)
	}
	a := send(t, "GET", g.url+"/v1/models", "", "Authorization", "Bearer "+devKey)
	var list struct{ Data []struct{ ID string } }
	json.Unmarshal(a.body, &list)
	ids := map[string]bool{}
	for _, m := range list.Data {
		ids[m.ID] = true
	}
	if !ids["smart"] || ids["prod-only"] {
		t.Fatalf("dev key's /v1/models: %v", ids)
	}
}

// BenchmarkAliasFailover measures what failover costs a request, on real
// loopback connections: a provider called directly (the baseline), the
// same through a one-deployment alias, and through an alias whose first
// deployment answers 503 or refuses the connection before the second
// answers. The time keygate adds to a failover is the failover case minus
// the baseline minus the failed upstream call itself (503-direct).
func BenchmarkAliasFailover(b *testing.B) {
	k := newKeys(b)
	good := newFakeTB(b, fakeprovider.Options{NoRecord: true})
	failing := newFakeTB(b, fakeprovider.Options{NoRecord: true, FailStatus: 503})
	dead := deadUpstream(b, "dead")
	goodUp := upstreamAt("good", "openai", good.url+"/v1", good.key, "gpt-*")
	failUp := upstreamAt("failing", "openai", failing.url+"/v1", failing.key, "fail-*")
	r := config.Routing{
		Deployments: []config.Deployment{deployment("good", "good", "gpt-4o"), deployment("failing", "failing", "gpt-4o"), deployment("dead", "dead", "gpt-4o")},
		Aliases: map[string]config.Alias{
			"one":           {Deployments: []string{"good"}},
			"after-503":     {Deployments: []string{"failing", "good"}},
			"after-refused": {Deployments: []string{"dead", "good"}},
		},
	}
	ups := []*route.Upstream{goodUp, failUp, dead}
	g := gateway.New(gateway.Options{
		Keys: k.verifier(), Log: slog.New(slog.DiscardHandler), MaxBodyBytes: 1 << 20,
		Transport: gateway.NewTransport(gateway.TransportOptions{DialTimeout: time.Second, ResponseHeaderTimeout: 10 * time.Second, MaxIdleConnsPerHost: 16}),
		Breaker:   balance.BreakerConfig{Failures: math.MaxInt32}, // keep trying the failing ones
	}, route.NewTable(ups).WithRouting(r, nil))
	srv := httptest.NewServer(g)
	defer srv.Close()
	key := k.issue("bench", nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for _, c := range []struct{ name, model string }{
		{"direct", "gpt-4o"}, {"503-direct", "fail-x"}, {"alias", "one"}, {"alias-after-503", "after-503"}, {"alias-after-refused", "after-refused"},
	} {
		body := chatFor(c.model)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				want := 200
				if c.name == "503-direct" {
					want = 503
				}
				if resp.StatusCode != want {
					b.Fatalf("status %d, want %d", resp.StatusCode, want)
				}
			}
		})
	}
}

func newFakeTB(tb testing.TB, opts fakeprovider.Options) *fake {
	opts.APIKey = "test-upstream-key-bench-not-real"
	s := fakeprovider.NewOpenAI(opts)
	srv := httptest.NewServer(s)
	tb.Cleanup(srv.Close)
	return &fake{Server: s, key: opts.APIKey, url: srv.URL}
}

// TestAliasKeyPool: a deployment over a pool of upstream keys spreads
// requests over them, each key held to its own RPM; when every key is at
// its limit keygate refuses without calling any.
func TestAliasKeyPool(t *testing.T) {
	k := newKeys(t)
	a1 := newFake(t, "openai", fakeprovider.Options{})
	a2 := newFake(t, "openai", fakeprovider.Options{})
	pool := config.Deployment{Name: "pool", Providers: []string{"key-a", "key-b"}, Model: "gpt-4o", RPM: 2}
	r := config.Routing{
		Deployments: []config.Deployment{pool},
		Aliases:     map[string]config.Alias{"gpt": {Strategy: "least-busy", Deployments: []string{"pool"}, Timeout: time.Second}},
	}
	g := aliasGateway(t, k, r, nil, a1.upstream("key-a", "openai"), a2.upstream("key-b", "openai"))
	key := k.issue("pooled", nil)
	for i := range 4 {
		if a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("gpt"), "Authorization", "Bearer "+key); a.status != 200 {
			t.Fatalf("request %d: %d %s", i+1, a.status, a.body)
		}
	}
	if a1.RequestCount() != 2 || a2.RequestCount() != 2 {
		t.Fatalf("key a served %d, key b %d; want 2 each", a1.RequestCount(), a2.RequestCount())
	}
	a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("gpt"), "Authorization", "Bearer "+key)
	if _, code := openAIError(t, a, 503); code != "model_unavailable" || a1.RequestCount()+a2.RequestCount() != 4 {
		t.Fatalf("past every key's RPM: %q", code)
	}
}

// TestUnavailableAliasKeepsItsReasonsFromTheClient: an alias whose every
// deployment's provider key cannot be vouched for (its source is failing)
// answers 503 with Retry-After and names neither the provider's source
// nor why it fails: that is for the operator's log.
func TestUnavailableAliasKeepsItsReasonsFromTheClient(t *testing.T) {
	k := newKeys(t)
	good := newFake(t, "openai", fakeprovider.Options{})
	up := good.upstream("kept", "openai")
	up.Unavailable = `source aws-secrets-manager "arn:aws:secretsmanager:eu-west-1:000000000000:secret:team-x" AccessDeniedException`
	r := config.Routing{
		Deployments: []config.Deployment{deployment("only", "kept", "gpt-4o")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"only"}}},
	}
	g := aliasGateway(t, k, r, nil, up)
	key := k.issue("caller", nil)
	a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("smart"), "Authorization", "Bearer "+key)
	msg, code := openAIError(t, a, http.StatusServiceUnavailable)
	if code != "model_unavailable" || !strings.Contains(msg, `"smart"`) || a.header.Get("Retry-After") == "" {
		t.Fatalf("%q %q %v", code, msg, a.header)
	}
	for _, leak := range []string{"arn:", "AccessDenied", "kept", "aws"} {
		if strings.Contains(string(a.body), leak) {
			t.Fatalf("the refusal names %q: %s", leak, a.body)
		}
	}
	if good.RequestCount() != 0 {
		t.Fatal("a request reached a provider whose key cannot be vouched for")
	}
}
