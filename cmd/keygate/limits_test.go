package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/netfault"
	"github.com/keygate/keygate/internal/store/storetest"
)

const redisEnv = "KEYGATE_TEST_REDIS_URL"

func redisURL(t *testing.T) string {
	u := os.Getenv(redisEnv)
	if u == "" {
		t.Skip("set " + redisEnv + "=redis://127.0.0.1:6379/0 to run the tests that share limits through Redis")
	}
	return u
}

// gatewayURLRe finds the gateway address a keygate process prints.
func gatewayOf(t *testing.T, p *proc) string {
	t.Helper()
	for _, line := range strings.Split(p.out.String(), "\n") {
		if _, rest, ok := strings.Cut(line, "keygate gateway listening on "); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no gateway address in:\n%s", p.out.String())
	return ""
}

// TestLimitsAcrossNodes: three keygate processes on loopback share Redis
// and PostgreSQL; 600 requests spread across them against a 100/min limit:
// between 100 and 102 pass (a token bucket refills 100 per minute, so a
// run that takes a second or so may admit one or two more).
func TestLimitsAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three keygate processes")
	}
	rurl := redisURL(t)
	db := storetest.PostgresURL(t)
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	env := map[string]string{
		"KEYGATE_DATABASE":         db,
		"KEYGATE_LIMITS_REDIS":     rurl,
		"KEYGATE_KEK":              randomKeyURL(t),
		"KEYGATE_PROVIDER_REFRESH": "200ms",
		"KEYGATE_LOG_REQUESTS":     "false",
	}
	var nodes []*proc
	for i := range 3 {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i))
		nodes = append(nodes, startProc(t, env, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"))
	}
	admin := nodes[0].admin
	if admin == "" {
		t.Fatal("the first node printed no admin credential")
	}
	in := &instance{t: t, admin: admin}
	in.addrs.Admin = nodes[0].adminU
	in.register(up)
	key := in.createKey("--name", "shared", "--rpm", "100")
	probe := in.createKey("--name", "probe")
	gateways := []string{gatewayOf(t, nodes[0]), gatewayOf(t, nodes[1]), gatewayOf(t, nodes[2])}
	// Wait until every node routes to the provider (they load it on their
	// refresh timer).
	for _, gw := range gateways {
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, _ := postJSON(t, gw+"/v1/chat/completions", probe, `{"model":"gpt-4o-mini","messages":[]}`)
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s never became ready (last status %d)", gw, code)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	before := up.openai.RequestCount()

	var passed, refused, other atomic.Int64
	var wg sync.WaitGroup
	work := make(chan int, 600)
	for i := range 600 {
		work <- i
	}
	close(work)
	start := time.Now()
	for range 30 {
		wg.Go(func() {
			for i := range work {
				code, _ := postJSON(t, gateways[i%3]+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
				switch code {
				case 200:
					passed.Add(1)
				case 429:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("600 requests over 3 nodes in %v: %d passed, %d refused, %d other", time.Since(start), passed.Load(), refused.Load(), other.Load())
	if p := passed.Load(); p < 100 || p > 102 || other.Load() != 0 {
		t.Fatalf("%d passed and %d failed otherwise; want 100 to 102 passed and the rest refused", p, other.Load())
	}
	if n := up.openai.RequestCount() - before; n != passed.Load() {
		t.Fatalf("the upstream saw %d calls for %d admitted", n, passed.Load())
	}
}

// TestBudgetExactWithRedis is the gateway's concurrency promise with the
// limits kept in Redis: 50 concurrent calls against a budget for exactly 2.
func TestBudgetExactWithRedis(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.Redis = redisURL(t)
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{Latency: 2 * time.Second}, fakeprovider.Options{})
	in.register(up)
	body := `{"model":"gpt-4o-mini","max_tokens":1000,"messages":[{"role":"user","content":"hello"}]}`
	// gpt-4o-mini lists at $0.15 and $0.60 per million tokens; the call
	// reserves (len(body)+3)/4 input and 1000 output tokens.
	in.mustCLI(nil, "", "group", "create", "team")
	in1 := int64(len(body)+3) / 4
	est := (in1*150_000 + 1000*600_000 + 999_999) / 1_000_000
	budget := fmt.Sprintf("%gusd", float64(2*est)/1e6)
	key := in.createKey("--name", "two-calls", "--budget", budget, "--group", "team")
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			code, body := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, body)
			switch code {
			case 200:
				ok.Add(1)
			case 429:
				if !strings.Contains(body, "budget_exceeded") {
					t.Errorf("429 without budget_exceeded: %s", body)
				}
				refused.Add(1)
			default:
				t.Errorf("status %d: %s", code, body)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 2 || refused.Load() != 48 {
		t.Fatalf("budget %s for exactly 2 calls: %d passed, %d refused", budget, ok.Load(), refused.Load())
	}

	// The usage report shows the two calls, their spend and the denials.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var u adminapi.KeyUsage
		decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "usage", "two-calls"), &u)
		if len(u.Rows) == 1 && u.Rows[0].Requests == 2 {
			if u.Rows[0].Denials != 48 || u.Rows[0].MicroUSD <= 0 || u.Rows[0].Model != "gpt-4o-mini" {
				t.Fatalf("usage row %+v", u.Rows[0])
			}
			// Each call's audit event carries what it cost: the trail
			// alone accounts for the spend.
			var evs struct {
				Events []struct {
					Decision string            `json:"decision"`
					Fields   map[string]string `json:"fields"`
				} `json:"events"`
			}
			decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "request"), &evs)
			var sum int64
			for _, ev := range evs.Events {
				if ev.Decision == "allow" {
					var m int64
					fmt.Sscan(ev.Fields["micro_usd"], &m)
					sum += m
					if ev.Fields["output_tokens"] == "" || ev.Fields["input_tokens"] == "" {
						t.Fatalf("an allowed call's audit event lacks its tokens: %v", ev.Fields)
					}
				}
			}
			if sum != u.Rows[0].MicroUSD {
				t.Fatalf("the audit trail's micro_usd add up to %d, the usage row to %d", sum, u.Rows[0].MicroUSD)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage never showed the calls: %+v", u.Rows)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestQuotaThroughARedisOutage: two nodes share a quota through Redis; one
// is cut off from Redis (its link is cut, as a partition or a stopped Redis
// would). It keeps serving the quota from its lease and only then refuses
// with 503 limits_unavailable, while the other node keeps spending the
// same quota through Redis. Together they never admit more than the quota,
// and once the link is back, exactly the quota: what the cut-off node spent
// is reconciled, its unspent lease returned.
func TestQuotaThroughARedisOutage(t *testing.T) {
	r, err := url.Parse(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.PostgresURL(t)
	kek := randomKeyURL(t)
	node := func(admin string) (*instance, *netfault.Proxy) {
		p, err := netfault.New(r.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		cfg := testConfig(t, t.TempDir())
		cfg.Database, cfg.KEK = db, kek
		// A Redis database of the test's own: the nodes of one keygate
		// lease every quota any node on their Redis uses, so other tests'
		// keygates on the shared database 0 would add leases of theirs to
		// the count this test reads.
		cfg.Limits.Redis = "redis://" + p.Addr() + "/9"
		cfg.Limits.OutageLease = 0.1
		cfg.Log.Requests = false
		return start(t, cfg, admin), p
	}
	a, _ := node("")
	b, cut := node(a.admin)
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	a.register(up)
	key := a.createKey("--name", "quota-outage", "--quota", "200/day")
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	ok := 0
	send := func(in *instance) (int, string) {
		code, resp := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, body)
		if code == 200 {
			ok++
		}
		return code, resp
	}
	// Both nodes serve the quota, so both lease a slice of it.
	for _, in := range []*instance{a, b} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			if code, _ := send(in); code == 200 && metric(t, in, "keygate_limits_leases") == "1" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s took no lease of a quota it serves", in.addrs.Gateway)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The load balancer has seen the node ready, Redis included.
	if code, body := readyz(t, b); code != 200 {
		t.Fatalf("/readyz before the cut = %d %q", code, body)
	}
	cut.Cut(true)
	served, refusedB := 0, false
	for range 100 {
		code, resp := send(b)
		if code == 503 && strings.Contains(resp, "limits_unavailable") {
			refusedB = true
			break
		}
		if code != 200 {
			t.Fatalf("node cut off from Redis answered %d: %s", code, resp)
		}
		served++
	}
	if !refusedB || served == 0 {
		t.Fatalf("the cut-off node served %d requests from its lease (refused after: %v); want some, then 503", served, refusedB)
	}
	// Each check's result stands for a second: the next one sees Redis gone.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body := readyz(t, b)
		if code == 200 && strings.Contains(body, "limits degraded") {
			break
		}
		if code != 200 || time.Now().After(deadline) {
			t.Fatalf("/readyz of the cut-off node = %d %q; want it ready, limits degraded", code, body)
		}
	}
	// The other node spends the rest through Redis meanwhile.
	for {
		code, resp := send(a)
		if code == 429 {
			break
		}
		if code != 200 {
			t.Fatalf("node with Redis answered %d: %s", code, resp)
		}
	}
	if ok > 200 {
		t.Fatalf("%d requests admitted against a quota of 200 while one node was cut off", ok)
	}

	cut.Cut(false)
	deadline := time.Now().Add(15 * time.Second)
	for ok < 200 && time.Now().Before(deadline) {
		if code, _ := send(a); code == 429 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if ok != 200 {
		t.Fatalf("%d requests admitted in all against a quota of 200 once the link was back, want exactly 200", ok)
	}
	if n := up.openai.RequestCount(); n != int64(ok) {
		t.Fatalf("the provider saw %d calls for %d admitted", n, ok)
	}
	for deadline := time.Now().Add(5 * time.Second); metric(t, b, "keygate_limits_redis_up") != "1"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node reconnected to Redis does not say so on /metrics")
		}
	}
}

// metric returns the value of an unlabelled series on in's /metrics.
func metric(t *testing.T, in *instance, name string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", in.addrs.Admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+in.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
