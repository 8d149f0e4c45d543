package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/route"
)

// A request for a model alias (routing.aliases in the configuration) is
// served by one of the alias's deployments. The route step narrows them to
// those the key may reach and orders them by the alias's strategy; the
// failover transport below then tries them in that order until one
// answers: a deployment whose breaker is open, that is cooling down after a
// 429, or whose own RPM/TPM would be exceeded is skipped; one that fails
// (no answer, a timeout, a 5xx, a 429) is left for the next, within the
// alias's attempts and deadline. Everything happens before the first byte
// of the answer reaches the client, so a stream is never retried once it
// started.

// aliasPrice is the worst case of the call's deployments, for the
// reservation; priced is false when any of them has no price.
func aliasPrice(order []*route.Deployment) (p estimate) {
	p.priced = true
	for _, d := range order {
		if !d.Priced {
			p.priced = false
			continue
		}
		if d.Price.Input > p.price.Input {
			p.price.Input = d.Price.Input
		}
		if d.Price.Output > p.price.Output {
			p.price.Output = d.Price.Output
		}
	}
	return p
}

// noDeploymentError means every deployment of an alias was skipped: open
// breakers, cool-downs, or their own rate limits.
type noDeploymentError struct {
	alias      string
	retryAfter time.Duration
}

func (e *noDeploymentError) Error() string {
	return fmt.Sprintf("no deployment of model alias %q can take a request right now", e.alias)
}

// failover is the proxy's transport: it passes single-provider requests
// straight through, and tries an alias's deployments in turn.
type failover struct {
	g    *Gateway
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	c := callFrom(req.Context())
	if c.ws { // a response.create on a WebSocket (responses_ws.go)
		if t := wsTurnFrom(req.Context()); t != nil && f.g.wsUpstreamable(c) {
			return t.roundTripWS(f.base, req, c)
		}
	}
	if c.alias == nil {
		if c.span == nil && !c.timed {
			if c.upstream != nil {
				// A cloud-identity upstream signs or authorizes the request here.
				return c.upstream.RoundTrip(req, f.base)
			}
			return f.base.RoundTrip(req)
		}
		return f.g.roundTrip(f.base, req, c, c.upstream, c.sentModel)
	}
	return f.g.tryDeployments(f.base, req, c)
}

// defaultCoolDown keeps a deployment that answered 429 without Retry-After
// out for a moment.
const defaultCoolDown = time.Second

func (g *Gateway) tryDeployments(base http.RoundTripper, req *http.Request, c *call) (*http.Response, error) {
	a := c.alias
	start := time.Now()
	deadline := start.Add(a.Timeout)
	used := make([]bool, len(c.order))
	var held *http.Response // the last answer, kept for the client if no other deployment answers
	var lastErr error
	attempts := 0
	for attempts < a.MaxAttempts {
		i, st, probe, wait := g.nextDeployment(req.Context(), c, used)
		if i < 0 {
			// Nothing can take the request now. If the wait for a
			// deployment's Retry-After or rate limit fits in the deadline,
			// honour it and try again.
			if wait <= 0 || time.Now().Add(wait).After(deadline) {
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-req.Context().Done():
				t.Stop()
				if held != nil {
					g.answeredBy(c, held)
					return held, nil
				}
				return nil, req.Context().Err()
			case <-t.C:
			}
			clear(used)
			continue
		}
		used[i] = true
		attempts++
		if held != nil {
			drain(held)
			held = nil
		}
		dep := c.order[i]
		until := deadline
		if a.AttemptTimeout > 0 {
			until = minTime(deadline, time.Now().Add(a.AttemptTimeout))
		}
		resp, err := g.attempt(base, req, c, dep, st, probe, until)
		if err != nil {
			if req.Context().Err() != nil {
				return nil, err // the client went away: nothing to retry for
			}
			lastErr = err
			g.opts.Log.Warn("deployment failed; trying the next", "alias", a.Name, "deployment", dep.Name, "err", err)
			continue
		}
		if !retryable(resp.StatusCode) {
			g.answeredBy(c, resp)
			return resp, nil
		}
		g.opts.Log.Warn("deployment refused; trying the next", "alias", a.Name, "deployment", dep.Name, "status", resp.StatusCode)
		held = resp
	}
	if held != nil {
		g.answeredBy(c, held)
		return held, nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	// Report the soonest any deployment could take the request.
	_, _, _, wait := g.nextDeployment(req.Context(), c, make([]bool, len(c.order)))
	return nil, &noDeploymentError{alias: a.Name, retryAfter: wait}
}

// retryable reports whether an upstream status means another deployment
// should be tried: it is overloaded, rate limited, or failed.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

// drain discards an answer that will not be used, letting its connection
// be reused when the rest is small.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// nextDeployment picks the first deployment in the call's order that is
// not used yet and can take a request now: breaker closed (or this is its
// half-open probe), not cooling down, and within its own RPM and TPM,
// which it then consumes. When none can, it returns -1 and the shortest
// wait after which one could (0 when none will).
func (g *Gateway) nextDeployment(ctx context.Context, c *call, used []bool) (int, *balance.State, bool, time.Duration) {
	now := time.Now()
	var wait time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	for i, dep := range c.order {
		st := g.health.Of(dep.Name)
		if used[i] {
			// Tried already: only a cool-down it asked for brings it back.
			if until := st.CoolingUntil(now); !until.IsZero() {
				soonest(until.Sub(now))
			}
			continue
		}
		ok, probe := st.Acquire(now)
		if !ok {
			if until := st.CoolingUntil(now); !until.IsZero() {
				soonest(until.Sub(now))
			}
			continue
		}
		if admitted, retry := g.upstreamAdmit(ctx, dep, c); !admitted {
			st.Release(probe)
			soonest(retry)
			continue
		}
		return i, st, probe, 0
	}
	return -1, nil, false, wait
}

// upstreamAdmit takes one request and its estimated tokens from a
// deployment's own limits, so keygate never sends a provider more than
// it allows. Tokens are charged on the estimate (input plus the output
// reserved), which can only be more than the real use.
func (g *Gateway) upstreamAdmit(ctx context.Context, dep *route.Deployment, c *call) (bool, time.Duration) {
	if dep.RPM <= 0 && dep.TPM <= 0 {
		return true, 0
	}
	checks := make([]limit.Check, 0, 2)
	if dep.RPM > 0 {
		checks = append(checks, limit.Check{Key: "deployment:" + dep.Name + ":rpm", Kind: limit.Rate, Limit: dep.RPM, Period: time.Minute, Cost: 1})
	}
	if dep.TPM > 0 {
		checks = append(checks, limit.Check{Key: "deployment:" + dep.Name + ":tpm", Kind: limit.Rate, Limit: dep.TPM, Period: time.Minute,
			Cost: min(max(c.est.in+c.est.out, 1), dep.TPM)})
	}
	lim := g.upstreamLimits
	d, err := lim.Admit(ctx, checks)
	if err != nil && g.opts.Limits.Local != nil && lim != g.opts.Limits.Local {
		d, err = g.opts.Limits.Local.Admit(ctx, checks)
	}
	if err != nil {
		g.opts.Log.Error("cannot check a deployment's own rate limits; skipping it", "deployment", dep.Name, "err", err)
		return false, 0
	}
	if !d.Allowed {
		return false, max(d.RetryAfter, 0)
	}
	return true, 0
}

// attempt sends the request to one deployment. The deadline bounds the
// wait for response headers only: once they arrive, the answer streams
// for as long as it takes.
func (g *Gateway) attempt(base http.RoundTripper, req *http.Request, c *call, dep *route.Deployment, st *balance.State, probe bool, deadline time.Time) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	out := req.Clone(ctx)
	body := g.deploymentBody(c, dep)
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if err := g.target(out, c, dep.Upstream, req.URL.Path, dep.Model); err != nil {
		cancel()
		return nil, fmt.Errorf("deployment %q: %w", dep.Name, err)
	}

	done := st.Start()
	timer := time.AfterFunc(time.Until(deadline), cancel)
	sent := time.Now()
	resp, err := g.roundTrip(base, out, c, dep.Upstream, dep.Model)
	expired := !timer.Stop()
	if err == nil && expired {
		_ = resp.Body.Close()
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		done()
		if expired {
			err = fmt.Errorf("deployment %q: no answer in time: %w", dep.Name, context.DeadlineExceeded)
		}
		if req.Context().Err() != nil {
			st.Release(probe)
		} else {
			now := time.Now()
			st.Failure(now)
			st.RecordError(upstreamError(now, 0, err))
		}
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		now := time.Now()
		wait, ok := balance.ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		if !ok {
			wait = defaultCoolDown
		}
		st.CoolUntil(now.Add(wait))
		st.Release(probe)
		st.RecordError(upstreamError(now, resp.StatusCode, nil))
	case retryable(resp.StatusCode):
		now := time.Now()
		st.Failure(now)
		st.RecordError(upstreamError(now, resp.StatusCode, nil))
	default:
		st.Success(time.Since(sent))
	}
	resp.Body = &attemptBody{ReadCloser: resp.Body, end: func() { cancel(); done() }, dep: dep, sent: sent}
	return resp, nil
}

// answeredBy makes the call's answer the one of the attempt that
// produced resp: its provider's credential is scrubbed from it, its
// dialect translated, its price charged.
func (g *Gateway) answeredBy(c *call, resp *http.Response) {
	ab := resp.Body.(*attemptBody)
	dep := ab.dep
	c.upstream, c.deployment, c.sentAt = dep.Upstream, dep, ab.sent
	c.translate, c.upDialect = dep.Upstream.Dialect != c.dialect.Name(), g.wire(dep.Upstream)
	if dep.Priced {
		c.est.price, c.est.priced = dep.Price, true
	}
}

// attemptBody ends an attempt's context and in-flight count when the
// answer has been read.
type attemptBody struct {
	io.ReadCloser
	end  func()
	dep  *route.Deployment
	sent time.Time
}

// Close closes the answer and ends the attempt.
func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}

// deploymentBody is the client's body for one deployment: its model name,
// and a request for the stream's usage.
func (g *Gateway) deploymentBody(c *call, dep *route.Deployment) []byte {
	if c.dialect == g.gemini {
		return c.raw // the model is in the path (target)
	}
	if dep.Upstream.Dialect != c.dialect.Name() {
		if b, err := g.translateRequest(context.Background(), c, c.raw, dep.Model); err == nil {
			return b
		}
		// routeAlias left out deployments the request cannot be translated for.
	}
	body := c.raw
	if dep.Model != c.fields.Model {
		body = jsonpeek.ReplaceString(body, c.fields.ModelSpan, dep.Model)
	}
	if c.fields.Stream && c.dialect == g.openai && c.path != "/v1/responses" {
		body = askForStreamUsage(body)
	}
	return body
}

// errNoDeployment reports whether err says no deployment could take the
// request, and when one could.
func errNoDeployment(err error) (*noDeploymentError, bool) {
	var nd *noDeploymentError
	return nd, errors.As(err, &nd)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
