package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/scrub"
	"github.com/keygate/keygate/internal/usage"
)

// /proxy/{service}/... forwards any HTTP API call to a configured service
// (services: in the configuration) with the service's credential from the
// vault injected where it wants it. The request passes the same steps as
// an API call: authentication, the key's scopes (paths, methods, networks,
// hours, providers, environment), risk rules, request limits, audit and
// detection. Only the service's own host is ever contacted, never a
// private address unless the service allows it, and redirects are handed
// back to the client, not followed.

// newPassthroughProxy builds the reverse proxy for /proxy/ requests.
func (g *Gateway) newPassthroughProxy(transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        g.passthroughRewrite,
		Transport:      transport,
		ModifyResponse: g.passthroughResponse,
		ErrorHandler:   g.passthroughError,
		BufferPool:     newBufferPool(),
		ErrorLog:       slog.NewLogLogger(g.opts.Log.Handler(), slog.LevelWarn),
	}
}

// authorizeService refuses a service that cannot be used now, and one
// the key (or its token) may not reach: services are deny-by-default
// (internal/authz decides).
func (g *Gateway) authorizeService(c *call, key *principal.Principal, svc *route.Service) *Denial {
	if svc.Unavailable != "" {
		// The reason names the vault secret behind the service: for the
		// operator's log, not the client.
		g.opts.Log.Warn("a request for an unavailable service was refused", "service", svc.Name, "reason", svc.Unavailable)
		den := denyf(http.StatusServiceUnavailable, "service_unavailable", "service %q cannot be used now: keygate cannot vouch for its credential; retry later or ask its operator", svc.Name)
		den.RetryAfter = 30 * time.Second
		return den
	}
	if d := authz.Authorize(c.principal(key), authz.Target{Kind: authz.Service, Provider: svc.Name, Env: svc.Env}); d != nil {
		return deny(http.StatusForbidden, d.Code, d.Message)
	}
	return nil
}

// upstreamOf is a service as the call's upstream, for metering and logs.
func upstreamOf(svc *route.Service) *route.Upstream {
	return &route.Upstream{Name: svc.Name, Key: svc.Key, Env: svc.Env}
}

// passthroughRewrite points the request at the service with its
// credential. Client credentials and claimed addresses never pass.
func (g *Gateway) passthroughRewrite(pr *httputil.ProxyRequest) {
	c := callFrom(pr.In.Context())
	out := pr.Out
	stripClientHeaders(out.Header)
	out.Header.Del("Authorization") // the keygate key, in whichever form it came
	out.Header.Del("X-Api-Key")
	stripCredentialCopies(out, c.cred)
	ctx := passthrough.WithService(out.Context(), c.service.Service)
	if err := c.service.Rewrite(out, c.passRest, out.URL.RawQuery, c.service.Key); err != nil {
		// Nothing may go out: without a service the transport refuses it.
		g.opts.Log.Error("passthrough request could not be prepared", "request_id", c.requestID, "service", c.service.Name, "err", err)
		ctx = passthrough.WithService(out.Context(), nil)
	}
	pr.Out = out.WithContext(ctx)
	c.sentAt = time.Now()
	pr.Out.GetBody = nil
	pr.Out.ContentLength = int64(len(c.body))
	pr.Out.Header.Del("Content-Length")
	pr.Out.Header.Del("Transfer-Encoding")
	if len(c.body) == 0 {
		pr.Out.Body = http.NoBody
		return
	}
	pr.Out.Body = io.NopCloser(bytes.NewReader(c.body))
	pr.Out.Header.Set("Content-Length", strconv.Itoa(len(c.body)))
}

// passthroughResponse scrubs the credential from what the service sends
// back and settles the request's limits when the answer has been read.
func (g *Gateway) passthroughResponse(resp *http.Response) error {
	c := callFrom(resp.Request.Context())
	if g.opts.Metrics != nil {
		g.opts.Metrics.Upstream(c.service.Name, time.Since(c.sentAt))
	}
	resp.Header.Del("Set-Cookie") // a session of keygate's credential, not the client's
	passthrough.ScrubLocation(resp.Header, c.service.Service, c.service.Key)
	if err := g.scrubs.ForRequest(resp.Request, c.service.Key).Response(resp); err != nil {
		return err // *scrub.EncodingError, answered 502 by passthroughError
	}
	c.used = usage.Usage{Complete: true} // a service's answer costs the request, however it ends
	resp.Body = &noTrailers{ReadCloser: resp.Body, resp: resp}
	g.setOverhead(c, resp.Header)
	return nil
}

// passthroughError answers when the service could not be reached, or
// keygate refused to contact it.
func (g *Gateway) passthroughError(w http.ResponseWriter, r *http.Request, err error) {
	c := callFrom(r.Context())
	if r.Context().Err() != nil {
		c.failure = "client_gone"
		return
	}
	name := c.service.Name
	var be *passthrough.BlockedError
	var ee *scrub.EncodingError
	var ne net.Error
	switch {
	case errors.As(err, &ee):
		c.failure = "upstream_encoding"
		g.opts.Log.Warn("passthrough answer refused", "request_id", c.requestID, "service", name, "err", err)
		g.refuse(w, r, denyf(http.StatusBadGateway, "upstream_encoding", "service %q: %s", name, ee.Error()))
	case errors.As(err, &be):
		c.failure = "upstream_blocked"
		g.opts.Log.Warn("passthrough request refused", "request_id", c.requestID, "service", name, "err", err)
		g.refuse(w, r, denyf(http.StatusBadGateway, "upstream_blocked",
			"keygate refused to contact service %q: its address is not a public one (set allow_private on the service if it is meant to be internal)", name))
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		c.failure = "upstream_timeout"
		g.opts.Log.Warn("passthrough service timed out", "request_id", c.requestID, "service", name, "err", err)
		g.refuse(w, r, denyf(http.StatusGatewayTimeout, "upstream_timeout", "service %q did not answer in time", name))
	default:
		c.failure = "upstream_unreachable"
		g.opts.Log.Warn("passthrough service unreachable", "request_id", c.requestID, "service", name, "err", err)
		g.refuse(w, r, denyf(http.StatusBadGateway, "upstream_unreachable", "keygate could not reach service %q", name))
	}
}

// emptyFields is what a passthrough body holds for admission: no model,
// no tokens.
var emptyFields = jsonpeek.Fields{}
