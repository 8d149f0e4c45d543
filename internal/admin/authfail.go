package admin

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/web"
)

// Failed admin authentication is throttled as the gateway throttles its
// own (internal/gateway/authfail.go): per failing source, never per
// credential that verifies. Every credential is checked first; one that
// verifies is let through whatever failures its address or prefix have
// piled up, so nobody can lock a valid admin out by failing on purpose. A
// failure is charged to its client address and, for a well-formed
// kg_admin_ credential, to its prefix (so many sources cannot guess at one
// credential); past the allowance it is answered 429 with Retry-After,
// and past half of it each failure is slowed down, up to 2 s.

// FailureLimiter is the limiter failures are counted in: internal/limit's
// in-process Memory.
type FailureLimiter interface {
	Admit(ctx context.Context, checks []limit.Check) (limit.Decision, error)
	Settle(ctx context.Context, r limit.Reservation, actual []int64) error
}

// AuthFailureLimits bounds failed admin authentication: Max failures per
// Window from one address, or against one credential prefix.
type AuthFailureLimits struct {
	Limiter FailureLimiter
	Max     int64
	Window  time.Duration
}

// throttled is a failure from a source over its allowance.
type throttled struct {
	retryAfter time.Duration
	msg        string
}

// authFailure charges a failed authentication to its address and prefix,
// and delays the caller as the allowance runs out. It returns non-nil when
// the source was already over its allowance.
func (a *API) authFailure(r *http.Request, raw string) *throttled {
	lo := a.opts.AuthFailures
	if lo == nil || lo.Limiter == nil || lo.Max <= 0 {
		return nil
	}
	addr := web.ClientAddr(r, a.opts.TrustedProxies).String()
	checks := []limit.Check{{Key: "admin-af:addr:" + addr, Kind: limit.Rate, Limit: lo.Max, Period: lo.Window}}
	prefix := failingPrefix(raw)
	if prefix != "" {
		checks = append(checks, limit.Check{Key: "admin-af:key:" + prefix, Kind: limit.Rate, Limit: lo.Max, Period: lo.Window})
	}
	d, err := lo.Limiter.Admit(r.Context(), checks)
	if err != nil {
		return nil
	}
	actual := make([]int64, len(checks))
	for i := range actual {
		actual[i] = 1
	}
	if d.Allowed {
		_ = lo.Limiter.Settle(context.Background(), d.Reservation, actual)
	} else if d2, err := lo.Limiter.Admit(context.Background(), without(checks, d.Denied)); err == nil {
		// The refusing bucket is in debt already; charge the others so a
		// source cannot hide behind another's throttle.
		_ = lo.Limiter.Settle(context.Background(), d2.Reservation, actual[:len(d2.Remaining)])
	}
	left := d.Remaining[0]
	if len(d.Remaining) > 1 {
		left = min(left, d.Remaining[1])
	}
	if left < lo.Max/2 {
		t := time.NewTimer(min(time.Duration(lo.Max/2-left)*200*time.Millisecond, 2*time.Second))
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if d.Allowed {
		return nil
	}
	secs := int64(math.Ceil(max(d.RetryAfter, time.Second).Seconds()))
	who, msg := "address "+addr, fmt.Sprintf("too many failed admin authentications from this client; retry in %ds", secs)
	if d.Denied == 1 {
		who, msg = "admin credential prefix "+prefix, fmt.Sprintf("too many failed authentications with this admin credential prefix; retry in %ds", secs)
	}
	a.opts.Log.Warn("admin authentication failures throttled", "request_id", requestID(r), "client", who)
	return &throttled{retryAfter: time.Duration(secs) * time.Second, msg: msg}
}

// without returns checks without the one at skip.
func without(checks []limit.Check, skip int) []limit.Check {
	out := make([]limit.Check, 0, len(checks)-1)
	for i, c := range checks {
		if i != skip {
			out = append(out, c)
		}
	}
	return out
}
