package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/limit/redisscripts"
	"github.com/keygate/keygate/internal/pricing"
)

// limiters are the shared limiters keygate can run with: every admission
// property holds for each of them.
func limiters(t *testing.T) map[string]func(t *testing.T) gateway.Limiter {
	return map[string]func(t *testing.T) gateway.Limiter{
		"memory": func(t *testing.T) gateway.Limiter { return limit.NewMemory() },
		"redis": func(t *testing.T) gateway.Limiter {
			url := os.Getenv("KEYGATE_TEST_REDIS_URL")
			if url == "" {
				t.Skip("set KEYGATE_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run the gateway's Redis limiter tests")
			}
			opts, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(opts)
			t.Cleanup(func() { c.Close() })
			var b [8]byte
			rand.Read(b[:])
			prefix := "keygate:gatewaytest:" + hex.EncodeToString(b[:]) + ":"
			t.Cleanup(func() {
				ctx := context.Background()
				iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
				for iter.Next(ctx) {
					c.Del(ctx, iter.Val())
				}
			})
			return limit.NewRedis(redisscripts.New(c), limit.WithPrefix(prefix))
		},
	}
}

// TestAbsurdMaxTokensIsRefusedBeforeAnyReservation: an output cap that is
// negative, zero, fractional, a string, or large enough to wrap a price
// around is a 400 naming the field, answered before any limit is touched:
// fifty such requests at once leave a budget for two untouched, with each
// limiter.
func TestAbsurdMaxTokensIsRefusedBeforeAnyReservation(t *testing.T) {
	for name, newLimiter := range limiters(t) {
		t.Run(name, func(t *testing.T) {
			lim := newLimiter(t)
			l := newLimited(t, fakeprovider.Options{Latency: 600 * time.Millisecond}, func(o *gateway.LimitOptions) { o.Shared = lim })
			body := `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}`
			est := pricing.USD(1, 2).Cost(int64(len(body)+3)/4, 100)
			key := l.key(t, "budget2", adminapi.Limits{
				Budgets: []adminapi.Budget{{MicroUSD: 2 * est, Period: adminapi.PeriodTotal}},
				TPM:     1_000_000, Quotas: []adminapi.Quota{{Limit: 1_000_000, Unit: adminapi.UnitTokens, Period: adminapi.PeriodDay}},
			})
			// 2^64 / 2,000,000 micro-dollars per million tokens, and
			// neighbours: each wraps out*price to a tiny or negative cost.
			for _, v := range []string{"9223372036854775807", "9223372036854", "9223372036855", "4611686018427388",
				"-1", "-9223372036854775808", "0", "1.5", "1e3", `"100"`, "10000001"} {
				for _, field := range []string{"max_tokens", "max_completion_tokens", "max_output_tokens"} {
					bad := `{"model":"gpt-4o-mini","` + field + `":` + v + `,"messages":[{"role":"user","content":"hello"}]}`
					got := concurrently(t, 5, func() answer { return l.chat(t, key, bad) })
					if got[400] != 5 {
						t.Fatalf("%s=%s: statuses %v, want five 400s", field, v, got)
					}
					msg, code := openAIError(t, l.chat(t, key, bad), http.StatusBadRequest)
					if code != "invalid_field" || !strings.Contains(msg, field) || !strings.Contains(msg, "whole number from 1 to 10000000") {
						t.Fatalf("%s=%s: %q %q; want invalid_field naming the field and its range", field, v, code, msg)
					}
				}
			}
			// Fifty at once with the reviewer's value: none passes.
			wrap := `{"model":"gpt-4o-mini","max_completion_tokens":9223372036854,"messages":[{"role":"user","content":"hello"}]}`
			if got := concurrently(t, 50, func() answer { return l.chat(t, key, wrap) }); got[400] != 50 {
				t.Fatalf("50 overflowing requests at once: %v", got)
			}
			if n := l.up.RequestCount(); n != 0 {
				t.Fatalf("%d refused requests reached the upstream", n)
			}
			// Nothing was reserved: the budget still holds exactly two.
			got := concurrently(t, 50, func() answer { return l.chat(t, key, body) })
			if got[200] != 2 || got[429] != 48 {
				t.Fatalf("the budget for 2 after the refusals, 50 at once: %v", got)
			}
		})
	}
}

// recorder wraps a limiter and keeps the cost of every check it is asked
// to reserve, by what the check limits (tpm, tokens:total, usd:month).
type recorder struct {
	gateway.Limiter
	mu    sync.Mutex
	costs map[string]int64 // the last cost asked for, by kind of check
	ok    bool             // the last admission's verdict
}

func (r *recorder) Admit(ctx context.Context, checks []limit.Check) (limit.Decision, error) {
	d, err := r.Limiter.Admit(ctx, checks)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.costs = map[string]int64{}
	for _, c := range checks {
		_, kind, _ := strings.Cut(c.Key[2:], ":") // k:KEYID:tpm, k:KEYID:usd:total...
		r.costs[kind] = c.Cost
	}
	r.ok = err == nil && d.Allowed
	return d, err
}

func (r *recorder) last() (map[string]int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.costs, r.ok
}

// TestReservationNeverDecreasesAsMaxTokensGrows is the property the
// overflow broke: with each limiter, for output caps from 1 to the
// largest accepted, every reserved cost (tokens per minute, the token
// quota, the budget) is at least what any smaller cap reserved, and once
// a budget refuses a cap it refuses every larger one.
func TestReservationNeverDecreasesAsMaxTokensGrows(t *testing.T) {
	for name, newLimiter := range limiters(t) {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{Limiter: newLimiter(t)}
			l := newLimited(t, fakeprovider.Options{}, func(o *gateway.LimitOptions) {
				o.Shared = rec
				p, _ := pricing.NewTable(map[string]pricing.Price{"gpt-4o-mini": {Input: pricing.MaxPrice, Output: pricing.MaxPrice}})
				o.Prices = p
			})
			// Limits at MaxValue: every reservation is admitted and its
			// cost recorded, the budget's saturating where it must.
			wide := l.key(t, "wide", adminapi.Limits{TPM: 100_000_000, Quotas: []adminapi.Quota{{Limit: limit.MaxValue, Unit: adminapi.UnitTokens, Period: adminapi.PeriodTotal}},
				Budgets: []adminapi.Budget{{MicroUSD: limit.MaxValue, Period: adminapi.PeriodTotal}}})
			tight := l.key(t, "tight", adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: 5_000_000_000, Period: adminapi.PeriodMonth}}})
			r := mrand.New(mrand.NewPCG(7, 11))
			caps := []int64{1, 2, 100, 4096, 4_611_686, 9_223_372, 9_999_999, 10_000_000}
			for range 60 {
				caps = append(caps, 1+r.Int64N(10_000_000))
			}
			slices.Sort(caps)
			prev := map[string]int64{}
			refusedAt := int64(0)
			for _, m := range caps {
				body := fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":%d,"messages":[{"role":"user","content":"hello"}]}`, m)
				a := l.chat(t, wide, body)
				costs, _ := rec.last()
				if a.status != 200 {
					t.Fatalf("max_tokens %d under limits at their maximum: %d %s", m, a.status, a.body)
				}
				for kind, c := range costs {
					if c < prev[kind] {
						t.Fatalf("max_tokens %d reserves %d for %s, less than %d for a smaller cap", m, c, kind, prev[kind])
					}
					if c < 0 || c > limit.MaxValue {
						t.Fatalf("max_tokens %d reserves %d for %s, outside 0..MaxValue", m, c, kind)
					}
					prev[kind] = c
				}
				if len(costs) != 3 {
					t.Fatalf("recorded %v; want the tpm, token quota and budget checks", costs)
				}
				a = l.chat(t, tight, body)
				if _, ok := rec.last(); !ok {
					if refusedAt == 0 {
						refusedAt = m
					}
					if a.status != http.StatusTooManyRequests {
						t.Fatalf("max_tokens %d refused by the limiter but answered %d", m, a.status)
					}
				} else if refusedAt != 0 {
					t.Fatalf("the budget refused max_tokens %d but admitted %d", refusedAt, m)
				}
			}
			if refusedAt == 0 {
				t.Fatal("the tight budget admitted every cap; the test proves nothing")
			}
		})
	}
}

// TestSpentBudgetSaysWhichAndWhen: a refusal names the budget, says it is
// spent (not that the request alone is too big) and when it resets, with
// Retry-After; a lifetime budget says it never resets; a request whose
// worst case exceeds the whole budget is told to lower max_tokens.
func TestSpentBudgetSaysWhichAndWhen(t *testing.T) {
	// Each answer uses more output than the 50 tokens reserved, so the
	// first call alone spends the budget.
	l := newLimited(t, fakeprovider.Options{ReplyBytes: 2000}, nil)
	body := `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`
	est := pricing.USD(1, 2).Cost(int64(len(body)+3)/4, 50)
	for _, tc := range []struct {
		period, resets string
	}{{adminapi.PeriodMonth, "; it resets at "}, {adminapi.PeriodTotal, "; it does not reset"}} {
		key := l.key(t, "spent-"+tc.period, adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: est, Period: tc.period}}})
		if a := l.chat(t, key, body); a.status != 200 {
			t.Fatalf("first call: %d %s", a.status, a.body)
		}
		var a answer
		deadline := time.Now().Add(5 * time.Second)
		for {
			// The first call settles to what it used, in the background.
			a = l.chat(t, key, body)
			if a.status == http.StatusTooManyRequests || time.Now().After(deadline) {
				break
			}
		}
		msg, code := openAIError(t, a, http.StatusTooManyRequests)
		if code != "budget_exceeded" || strings.Contains(msg, "alone") || !strings.Contains(msg, "spend budget of $") || !strings.Contains(msg, " is spent") || !strings.Contains(msg, tc.resets) {
			t.Fatalf("%s budget spent: %q %q", tc.period, code, msg)
		}
		if ra := a.header.Get("Retry-After"); (tc.period == adminapi.PeriodTotal) != (ra == "") {
			t.Fatalf("%s budget spent: Retry-After %q", tc.period, ra)
		}
	}
	small := l.key(t, "small", adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: 10, Period: adminapi.PeriodDay}}})
	msg, _ := openAIError(t, l.chat(t, small, body), http.StatusTooManyRequests)
	if !strings.Contains(msg, "more than the whole spend budget of $0.00001 per day; lower max_tokens") {
		t.Fatalf("a request above the whole budget: %q", msg)
	}
}
