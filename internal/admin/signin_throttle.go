package admin

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/limit"
)

// Failed sign-ins are throttled in the limiter failed admin credentials
// are (authfail.go), with three counters of failures per window:
//   - per client address, across users: past it, the address is refused
//     whatever it sends, even a right password;
//   - per user name (a known user or not, so the answer does not tell):
//     past it, the user is refused only from addresses that have failed
//     for that user within the window, so someone guessing at a user
//     cannot lock the user out of a sign-in from elsewhere;
//   - per user and address: what the user counter checks.
// Unlike an admin token (256 random bits), a password can be guessed, so
// a blocked source is refused before its credential is checked: a right
// guess is not told apart from a wrong one while blocked.

// signInLimits is the allowance failed sign-ins are counted against.
func (a *API) signInLimits() *AuthFailureLimits {
	if a.opts.SignIn != nil && a.opts.SignIn.Failures != nil {
		return a.opts.SignIn.Failures
	}
	return a.opts.AuthFailures
}

// signInKeys are the counters of a sign-in as who (a user name, or an
// admin token's prefix) from r's address.
func (a *API) signInKeys(r *http.Request, who string) (addr, user, pair limit.Check) {
	lo := a.signInLimits()
	client := a.clientOf(r)
	who = strings.ToLower(who)
	mk := func(k string) limit.Check {
		return limit.Check{Key: k, Kind: limit.Rate, Limit: lo.Max, Period: lo.Window}
	}
	return mk("signin:addr:" + client), mk("signin:user:" + who), mk("signin:pair:" + who + "\x00" + client)
}

// signInAllowed refuses a sign-in from a blocked source with 429 before
// any credential is checked; it returns false when it did.
func (a *API) signInAllowed(w http.ResponseWriter, r *http.Request, method, who string) bool {
	lo := a.signInLimits()
	if lo == nil || lo.Limiter == nil || lo.Max <= 0 {
		return true
	}
	addr, user, pair := a.signInKeys(r, who)
	ctx := r.Context()
	var wait time.Duration
	msg := ""
	if d, ok := peek(ctx, lo, addr); ok && !d.Allowed {
		wait, msg = d.RetryAfter, "too many failed sign-ins from this address"
	} else if who != "" {
		if d, ok := peek(ctx, lo, user); ok && !d.Allowed {
			if p, ok := peek(ctx, lo, pair); ok && (!p.Allowed || p.Remaining[0] < lo.Max) {
				wait, msg = max(d.RetryAfter, p.RetryAfter), "too many failed sign-ins for this user from this address"
			}
		}
	}
	if msg == "" {
		return true
	}
	secs := int64(math.Ceil(max(wait, time.Second).Seconds()))
	a.auditSignIn(r, method, who, "", "", "deny", "throttled")
	a.opts.Log.Warn("sign-in throttled", "request_id", requestID(r), "client", a.clientOf(r), "method", method)
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	writeError(w, http.StatusTooManyRequests, "too_many_auth_failures", fmt.Sprintf("%s; retry in %ds", msg, secs))
	return false
}

// signInFailed records a failed sign-in (the audit trail, the counters)
// and answers it.
func (a *API) signInFailed(w http.ResponseWriter, r *http.Request, method, who, userID, reason string, status int, code, msg string) {
	a.auditSignIn(r, method, who, userID, "", "deny", reason)
	a.countSignInFailure(r, who)
	writeError(w, status, code, msg)
}

// countSignInFailure counts a failed sign-in against the client's address
// and, when one is named, the user (alone and from that address).
func (a *API) countSignInFailure(r *http.Request, who string) {
	if lo := a.signInLimits(); lo != nil && lo.Limiter != nil && lo.Max > 0 {
		addr, user, pair := a.signInKeys(r, who)
		checks := []limit.Check{addr}
		if who != "" {
			checks = append(checks, user, pair)
		}
		for _, c := range checks {
			// Each counter on its own: one already in debt does not keep
			// the others from counting.
			if d, err := lo.Limiter.Admit(context.Background(), []limit.Check{c}); err == nil && d.Allowed {
				_ = lo.Limiter.Settle(context.Background(), d.Reservation, []int64{1})
			}
		}
	}
}

// peek reads a counter without charging it.
func peek(ctx context.Context, lo *AuthFailureLimits, c limit.Check) (limit.Decision, bool) {
	d, err := lo.Limiter.Admit(ctx, []limit.Check{c})
	if err != nil {
		return d, false
	}
	if d.Allowed {
		_ = lo.Limiter.Settle(context.Background(), d.Reservation, []int64{0})
	}
	return d, true
}
