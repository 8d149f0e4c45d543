package gateway

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/web"
)

// Failed authentication is throttled per failing source, never per
// credential that verifies: a guesser, or someone who only wants to lock
// others out, cannot make a valid key or token be refused.
//
// Every presented credential is verified first. One that verifies is let
// through whatever failures its address or key prefix has piled up. One
// that fails is charged to two buckets, each allowing
// Limits.AuthFailures per Limits.AuthFailureWindow:
//   - the client address (from the socket, or a trusted proxy), so one
//     source cannot guess at many keys;
//   - the key prefix it names (kg_live_4fTq), for a well-formed keygate
//     key, so many sources cannot guess at one key. A JWT or a malformed
//     string names no identity: every JWT starts with the same characters,
//     so grouping them would let fourteen junk tokens lock out every
//     token holder.
// A failure from a source already over its allowance is answered 429 with
// Retry-After instead of 401, and every failure past half the allowance is
// slowed down (up to 2 s), so guessing costs time. The detectors still see
// each failure and raise the failed-authentication alerts.

// throttled is a failed authentication from a source over its allowance:
// it is answered 429 with Retry-After.
type throttled struct {
	retryAfter time.Duration
	msg        string
}

// write answers a throttled failure in the caller's dialect.
func (t *throttled) write(g *Gateway, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(t.retryAfter/time.Second), 10))
	g.deny(w, r, http.StatusTooManyRequests, "too_many_auth_failures", t.msg)
}

// authFailure charges a failed authentication to its address and, for a
// keygate key, its key prefix, and delays the caller as the allowance runs
// out. It returns non-nil when the source was already over its allowance.
func (g *Gateway) authFailure(r *http.Request, raw string) *throttled {
	lo := &g.opts.Limits
	if lo.Local == nil || lo.AuthFailures <= 0 {
		return nil
	}
	addr := web.ClientAddr(r, g.opts.TrustedProxies).String()
	checks := make([]limit.Check, 1, 2)
	checks[0] = limit.Check{Key: "af:addr:" + addr, Kind: limit.Rate, Limit: lo.AuthFailures, Period: lo.AuthFailureWindow}
	ident := failingIdentity(raw)
	if ident != "" {
		checks = append(checks, limit.Check{Key: "af:key:" + ident, Kind: limit.Rate, Limit: lo.AuthFailures, Period: lo.AuthFailureWindow})
	}
	// Cost 0 consumes nothing: it asks whether earlier failures have put
	// either bucket into debt.
	d, err := lo.Local.Admit(r.Context(), checks)
	if err != nil {
		return nil
	}
	// Charge this failure in full: past the allowance the buckets go into
	// debt, and further failures from the source wait it out.
	actual := make([]int64, len(checks))
	for i := range actual {
		actual[i] = 1
	}
	if d.Allowed {
		_ = lo.Local.Settle(context.Background(), d.Reservation, actual)
	} else if d2, err := lo.Local.Admit(context.Background(), zeroCost(checks, d.Denied)); err == nil {
		// The refusing bucket is already in debt; charge the others so a
		// source cannot hide behind another's throttle.
		_ = lo.Local.Settle(context.Background(), d2.Reservation, actual[:len(d2.Remaining)])
	}
	left := d.Remaining[0]
	if len(d.Remaining) > 1 {
		left = min(left, d.Remaining[1])
	}
	if left < lo.AuthFailures/2 {
		delay := time.Duration(lo.AuthFailures/2-left) * 200 * time.Millisecond
		t := time.NewTimer(min(delay, 2*time.Second))
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if d.Allowed {
		return nil
	}
	who := "address " + addr
	if d.Denied == 1 {
		who = "key prefix " + ident
	}
	g.opts.Log.Warn("authentication failures throttled", "request_id", web.RequestID(r.Context()), "client", who)
	secs := int64(math.Ceil(max(d.RetryAfter, time.Second).Seconds()))
	t := &throttled{retryAfter: time.Duration(secs) * time.Second,
		msg: fmt.Sprintf("too many failed authentications from this client; retry in %ds", secs)}
	if d.Denied == 1 {
		t.msg = fmt.Sprintf("too many failed authentications with this key prefix; retry in %ds", secs)
	}
	return t
}

// zeroCost returns checks without the one at skip: the buckets still to
// charge when that one is in debt.
func zeroCost(checks []limit.Check, skip int) []limit.Check {
	out := make([]limit.Check, 0, len(checks)-1)
	for i, c := range checks {
		if i != skip {
			out = append(out, c)
		}
	}
	return out
}

// failingIdentity is the identity a failed credential is charged to
// besides its address: the public prefix of a well-formed keygate key, or
// "" for anything else (a JWT, a malformed string).
func failingIdentity(raw string) string {
	if token.LooksLikeJWT(raw) {
		return ""
	}
	p, err := apikey.Parse(raw)
	if err != nil {
		return ""
	}
	return p.Prefix
}
