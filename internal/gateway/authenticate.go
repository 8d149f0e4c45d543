package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/web"
)

// authenticate reads the caller's keygate key or access token and
// verifies it. A credential that verifies is accepted whatever failures
// others have charged to its address or prefix; one that fails is charged
// to its source.
func (g *Gateway) authenticate(r *http.Request, c *call) (*principal.Principal, *Denial) {
	raw, ok := c.dialect.ClientKey(r.Header)
	if !ok {
		return nil, deny(http.StatusUnauthorized, "missing_api_key",
			"no API key: send your keygate key as 'Authorization: Bearer kg_...' or 'x-api-key: kg_...'")
	}
	c.cred = raw
	now := g.opts.Now()
	var key *principal.Principal
	var err error
	if g.opts.Tokens != nil && token.LooksLikeJWT(raw) {
		key, err = g.verifyToken(r.Context(), r, raw, now)
		switch {
		case errors.Is(err, token.ErrInvalid):
			if den := g.authFailure(r, raw); den != nil {
				return nil, den
			}
			msg := "invalid access token"
			if errors.Is(err, token.ErrExpired) {
				msg = "the access token has expired; exchange your key or refresh token for a new one at /oauth/token"
			}
			return nil, deny(http.StatusUnauthorized, "invalid_api_key", msg)
		case errors.Is(err, errUnbound), errors.Is(err, errWrongResource):
			return nil, deny(http.StatusUnauthorized, "invalid_api_key", err.Error())
		case errors.Is(err, errSuspended):
			return nil, deny(http.StatusForbidden, "key_suspended", "the key this token was issued for is suspended")
		}
	} else {
		key, err = g.opts.Keys.Verify(r.Context(), raw, now)
		if errors.Is(err, apikey.ErrMalformed) || errors.Is(err, apikey.ErrUnknown) {
			c.presentedPrefix = failingIdentity(raw)
			if den := g.authFailure(r, raw); den != nil {
				return nil, den
			}
		}
	}
	switch {
	case err == nil:
		if g.opts.KeyUsed != nil {
			g.opts.KeyUsed(key.ID, now)
		}
		c.keyID = key.ID
		return key, nil
	case errors.Is(err, apikey.ErrMalformed):
		why := apikey.MalformedReason(err)
		if why == "" {
			why = "keygate keys start with kg_"
		}
		return nil, deny(http.StatusUnauthorized, "invalid_api_key", "the API key is not a valid keygate key ("+why+"); use the key `keygate key create` printed")
	case errors.Is(err, apikey.ErrUnknown):
		return nil, deny(http.StatusUnauthorized, "invalid_api_key", "invalid API key")
	case errors.Is(err, apikey.ErrRevoked):
		return nil, deny(http.StatusUnauthorized, "revoked_api_key", "this API key has been revoked")
	case errors.Is(err, apikey.ErrExpired):
		return nil, deny(http.StatusUnauthorized, "expired_api_key", "this API key has expired")
	}
	g.opts.Log.Error("key verification failed", "request_id", web.RequestID(r.Context()), "err", err)
	return nil, deny(http.StatusServiceUnavailable, "auth_unavailable", "keygate could not verify the API key right now; try again shortly")
}

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

// authFailure charges a failed authentication to its address and, for a
// keygate key, its key prefix, and delays the caller as the allowance runs
// out. It returns a 429 denial when the source was already over its
// allowance.
func (g *Gateway) authFailure(r *http.Request, raw string) *Denial {
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
	den := denyf(http.StatusTooManyRequests, "too_many_auth_failures", "too many failed authentications from this client; retry in %ds", secs)
	if d.Denied == 1 {
		den.Message = fmt.Sprintf("too many failed authentications with this key prefix; retry in %ds", secs)
	}
	den.RetryAfter = time.Duration(secs) * time.Second
	return den
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
