package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/limit/redisscripts"
	"github.com/keygate/keygate/internal/pricing"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/usage"
)

// limited is a gateway with admission control over a real memory limiter,
// a real usage recorder and a fake OpenAI upstream.
type limited struct {
	*gw
	keys  *keys
	up    *fake
	usage *usage.Recorder
}

func limitsJSON(t *testing.T, l adminapi.Limits) []byte {
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newLimited(t *testing.T, fo fakeprovider.Options, edit func(*gateway.LimitOptions)) *limited {
	t.Helper()
	k := newKeys(t)
	up := newFake(t, "openai", fo)
	prices, err := pricing.NewTable(map[string]pricing.Price{"gpt-4o-mini": pricing.USD(1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	rec := usage.NewRecorder(k.st, time.UTC, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mem := limit.NewMemory()
	g := newGatewayWith(t, k.verifier(), nil, func(o *gateway.Options) {
		o.Limits = gateway.LimitOptions{
			Shared: mem, Local: mem, Prices: prices, Location: time.UTC, DefaultMaxTokens: 100, Usage: rec,
			AuthFailures: 3, AuthFailureWindow: time.Minute,
		}
		if edit != nil {
			edit(&o.Limits)
		}
	}, up.upstream("openai", "openai", "gpt-*"))
	return &limited{gw: g, keys: k, up: up, usage: rec}
}

func (l *limited) key(t *testing.T, name string, lim adminapi.Limits) string {
	return l.keys.issue(name, func(k *store.Key) { k.Limits = limitsJSON(t, lim) })
}

func (l *limited) chat(t *testing.T, key, body string) answer {
	return send(t, "POST", l.url+"/v1/chat/completions", body, "Authorization", "Bearer "+key)
}

// concurrently sends n requests at once and counts the statuses.
func concurrently(t *testing.T, n int, do func() answer) map[int]int {
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			a := do()
			mu.Lock()
			counts[a.status]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return counts
}

func TestRateLimitHeadersAndRetryAfter(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	key := l.key(t, "rpm3", adminapi.Limits{RPM: 3})
	for i := 3; i > 0; i-- {
		a := l.chat(t, key, chatBody)
		if a.status != 200 || a.header.Get("X-Ratelimit-Limit") != "3" || a.header.Get("X-Ratelimit-Remaining") != strconv.Itoa(i-1) {
			t.Fatalf("request %d: %d limit=%q remaining=%q", 4-i, a.status, a.header.Get("X-Ratelimit-Limit"), a.header.Get("X-Ratelimit-Remaining"))
		}
	}
	a := l.chat(t, key, chatBody)
	msg, code := openAIError(t, a, http.StatusTooManyRequests)
	if code != "rate_limit_exceeded" || !strings.Contains(msg, "3 requests per 1m0s") {
		t.Fatalf("429: code %q msg %q", code, msg)
	}
	if ra, _ := strconv.Atoi(a.header.Get("Retry-After")); ra < 1 || ra > 20 {
		t.Fatalf("Retry-After %q, want about 20s (one request refills every 20s)", a.header.Get("Retry-After"))
	}
	if n := l.up.RequestCount(); n != 3 {
		t.Fatalf("upstream saw %d requests, want 3: a refused request must not reach it", n)
	}
	// Another key is not affected.
	if a := l.chat(t, l.key(t, "other", adminapi.Limits{RPM: 3}), chatBody); a.status != 200 {
		t.Fatalf("another key: %d", a.status)
	}
}

// TestExactUnderConcurrency: 50 concurrent calls against a budget for
// exactly 2, and against a 5-request limit: exactly 2 and 5 pass.
func TestExactUnderConcurrency(t *testing.T) {
	// The upstream holds each call, so none settles (and refunds) before
	// the others have been decided.
	l := newLimited(t, fakeprovider.Options{Latency: 300 * time.Millisecond}, nil)
	// The body is 72 bytes: 18 input tokens reserved, plus max_tokens 100,
	// at $1 and $2 per million: 18 + 200 = 218 micro-dollars.
	body := `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`
	est := pricing.USD(1, 2).Cost(int64(len(body)+3)/4, 100)
	budget := l.key(t, "budget2", adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: 2 * est, Period: adminapi.PeriodTotal}}})
	got := concurrently(t, 50, func() answer { return l.chat(t, budget, body) })
	if got[200] != 2 || got[429] != 48 {
		t.Fatalf("budget for 2 calls, 50 at once: %v", got)
	}
	rate := l.key(t, "rate5", adminapi.Limits{RPM: 5})
	got = concurrently(t, 50, func() answer { return l.chat(t, rate, chatBody) })
	if got[200] != 5 || got[429] != 45 {
		t.Fatalf("5-request limit, 50 at once: %v", got)
	}
	conc := l.key(t, "conc2", adminapi.Limits{Concurrency: 2})
	got = concurrently(t, 10, func() answer { return l.chat(t, conc, chatBody) })
	if got[200] != 2 || got[429] != 8 {
		t.Fatalf("concurrency 2, 10 at once: %v", got)
	}
	if n := l.up.RequestCount(); n != 9 {
		t.Fatalf("upstream saw %d calls, want 9", n)
	}
}

// TestSettlesToActualUsage: a request reserves its worst case and is
// charged what it used, so a token quota lets through as many requests as
// the real usage allows; usage is recorded per model.
func TestSettlesToActualUsage(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{ReplyText: "one two three"}, nil)
	// Each call reserves 18+100 tokens but uses far fewer.
	key := l.key(t, "tokens", adminapi.Limits{Quotas: []adminapi.Quota{{Limit: 300, Unit: adminapi.UnitTokens, Period: adminapi.PeriodDay}}})
	passed := 0
	for range 20 {
		if a := l.chat(t, key, chatBody); a.status == 200 {
			passed++
		}
	}
	if passed < 10 {
		t.Fatalf("%d calls passed a 300-token quota; each uses 5 tokens, so settling to real usage should allow far more than 2", passed)
	}
	// A stream without include_usage gets it asked for, and settles on it.
	a := l.chat(t, key, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if a.status != 200 || !strings.Contains(string(a.body), `"usage":{"prompt_tokens"`) {
		t.Fatalf("stream: %d %s", a.status, a.body)
	}
	reqs := l.up.Requests()
	if !strings.Contains(string(reqs[len(reqs)-1].Body), `"stream_options":{"include_usage":true}`) {
		t.Fatalf("keygate did not ask the stream for usage: %s", reqs[len(reqs)-1].Body)
	}
	l.usage.Flush(context.Background())
	rows, err := l.keys.st.ListUsage(context.Background(), "key_tokens", "2000-01-01")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Model != "gpt-4o-mini" || rows[0].Requests != int64(passed+1) ||
		rows[0].InputTokens != int64(passed+1) || rows[0].OutputTokens != 3*int64(passed+1) ||
		rows[0].Denials != int64(20-passed) || rows[0].MicroUSD <= 0 {
		t.Fatalf("usage %+v after %d passed calls and a stream", rows, passed)
	}
}

func TestBudgetNeedsAPrice(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	key := l.key(t, "b", adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: 1_000_000, Period: adminapi.PeriodMonth}}})
	a := l.chat(t, key, `{"model":"gpt-unpriced","messages":[]}`)
	if _, code := openAIError(t, a, http.StatusForbidden); code != "budget_unpriced" {
		t.Fatalf("code %q", code)
	}
	if l.up.RequestCount() != 0 {
		t.Fatal("an unpriced request under a budget reached the upstream")
	}
}

// TestQuotasFailClosed: when the shared limiter cannot be reached, a key
// with a quota or budget is refused, while a key with only rate limits is
// served on this node's counters.
func TestQuotasFailClosed(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { down.Close() })
	l := newLimited(t, fakeprovider.Options{}, func(o *gateway.LimitOptions) { o.Shared = limit.NewRedis(redisscripts.New(down)) })
	quota := l.key(t, "q", adminapi.Limits{Quotas: []adminapi.Quota{{Limit: 100, Unit: adminapi.UnitRequests, Period: adminapi.PeriodDay}}})
	if _, code := openAIError(t, l.chat(t, quota, chatBody), http.StatusServiceUnavailable); code != "limits_unavailable" {
		t.Fatalf("quota with the limiter down: %q", code)
	}
	rate := l.key(t, "r", adminapi.Limits{RPM: 2})
	for i, want := range []int{200, 200, 429} {
		if a := l.chat(t, rate, chatBody); a.status != want {
			t.Fatalf("rate-limited request %d with the shared limiter down: %d, want %d", i+1, a.status, want)
		}
	}
	if n := l.up.RequestCount(); n != 2 {
		t.Fatalf("upstream saw %d", n)
	}
}

// TestFailedAuthenticationIsThrottled: after a burst of bad keys from one
// address, further failures from it are refused with 429 and Retry-After
// (a spoofed X-Forwarded-For from an untrusted socket changes nothing),
// while a valid key from the same address is still served: a credential
// that verifies is never refused for failures charged to someone else.
func TestFailedAuthenticationIsThrottled(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	good := l.key(t, "good", adminapi.Limits{})
	bad := "kg_live_" + strings.Repeat("A", 43) + "AAAAAA"
	statuses := []int{}
	for i := range 6 {
		a := send(t, "POST", l.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+bad, "X-Forwarded-For", "203.0.113."+strconv.Itoa(i))
		statuses = append(statuses, a.status)
	}
	if statuses[0] != 401 || statuses[5] != 429 {
		t.Fatalf("statuses for 6 bad keys: %v; want 401s then 429", statuses)
	}
	a := send(t, "POST", l.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+bad)
	if _, code := openAIError(t, a, http.StatusTooManyRequests); code != "too_many_auth_failures" {
		t.Fatalf("another bad key from the throttled address: %q", code)
	}
	if a.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	if a := l.chat(t, good, chatBody); a.status != 200 {
		t.Fatalf("a valid key from the throttled address: %d %s", a.status, a.body)
	}
	if l.up.RequestCount() != 1 {
		t.Fatalf("the upstream saw %d requests; want only the valid key's", l.up.RequestCount())
	}
	if !strings.Contains(l.log.String(), "authentication failures throttled") {
		t.Fatal("the throttling was not recorded")
	}
}

// TestUpstreamRateLimitHeadersDoNotLeak: the provider's own rate-limit
// headers describe keygate's upstream account and are not passed on.
func TestUpstreamRateLimitHeadersDoNotLeak(t *testing.T) {
	k := newKeys(t)
	var calls atomic.Int64
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("x-ratelimit-remaining-requests", "4999")
		w.Header().Set("anthropic-ratelimit-tokens-remaining", "100")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	key := k.issue("h", nil)
	g := newGateway(t, k.verifier(), nil, upstreamAt("openai", "openai", up.URL+"/v1", "test-upstream-key", "gpt-*"))
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
	if a.status != 200 || calls.Load() != 1 {
		t.Fatalf("status %d", a.status)
	}
	for name := range a.header {
		if strings.Contains(strings.ToLower(name), "ratelimit") {
			t.Fatalf("upstream header %s reached the client", name)
		}
	}
}

// TestStreamCutOffSettlesWhatWasStreamed: a client that goes away mid-stream
// is charged for the text it was sent, not the whole reservation and not
// nothing.
func TestStreamCutOffSettlesWhatWasStreamed(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{Chunks: 40, ChunkDelay: 20 * time.Millisecond, ReplyBytes: 4000}, nil)
	key := l.key(t, "cut", adminapi.Limits{TPM: 1_000_000})
	// The client asks for usage itself but never sees the final chunk.
	body := `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":2000,"messages":[{"role":"user","content":"hi"}]}`
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", l.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	got := 0
	for got < 1500 {
		n, err := resp.Body.Read(buf)
		got += n
		if err != nil {
			t.Fatalf("stream ended early: %v", err)
		}
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.usage.Flush(context.Background())
		rows, _ := l.keys.st.ListUsage(context.Background(), "key_cut", "2000-01-01")
		if len(rows) == 1 {
			out := rows[0].OutputTokens
			if out <= 0 || out >= 1000 {
				t.Fatalf("a stream cut after %d bytes was charged %d output tokens; want what was streamed (more than 0, well under the 1000 the whole reply holds)", got, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cut-off stream was never settled")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
