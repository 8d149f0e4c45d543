package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/scrub"
)

// TransportOptions tunes the connections to upstream providers.
type TransportOptions struct {
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	MaxIdleConnsPerHost   int
}

// NewTransport returns the upstream transport: keep-alive pools sized for
// concurrency, HTTP/2 where the provider offers it, bounded connect and
// first-byte waits.
func NewTransport(o TransportOptions) *http.Transport {
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // provider keys never take a detour through an ambient proxy
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          o.MaxIdleConnsPerHost * 4,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// bufferPool lends ReverseProxy its copy buffers; without one it allocates
// and clears 32 KiB for every response.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

// Get returns a buffer.
func (b *bufferPool) Get() []byte { return *b.p.Get().(*[]byte) }

// Put returns a buffer to the pool.
func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// rewrite builds the upstream request. httputil.ReverseProxy has already
// removed hop-by-hop headers (including any named in Connection) and the
// X-Forwarded-* set before this runs, so nothing a client sends can remove
// the credential injected here.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	c := callFrom(pr.In.Context())
	out := pr.Out
	out.URL.RawQuery = pr.In.URL.RawQuery
	out.Host = ""
	c.dialect.StripCredentials(out.Header)
	stripClientHeaders(out.Header)
	stripCredentialCopies(out, c.cred)
	if c.alias != nil {
		return // the failover transport points it at each deployment in turn
	}
	// forward checked the target with checkTarget: this cannot fail.
	_ = g.target(out, c, c.upstream, pr.In.URL.Path, c.sentModel)
	c.sentAt = time.Now()
	out.Body = io.NopCloser(bytes.NewReader(c.body))
	out.ContentLength = int64(len(c.body))
	out.Header.Set("Content-Length", strconv.Itoa(len(c.body)))
	out.GetBody = nil
}

// target points an outbound request at an upstream: its URL for the
// client's path, and its real credential in place of the client's. model
// is the model the request names upstream (a preset's deployment name).
func (g *Gateway) target(out *http.Request, c *call, up *route.Upstream, clientPath, model string) error {
	if c.bedrockPath != "" {
		bedrockTarget(out, c, up)
		return nil
	}
	d, path := c.dialect, clientPath
	if d == g.gemini {
		// Gemini names the model in the path: the upstream's, there.
		path = c.gemini.Path(model)
	} else if up.Dialect != d.Name() {
		// A translated call: the provider's own endpoint, and none of the
		// client dialect's version headers.
		d, path = g.wire(up), translatedPath(clientPath)
		for name := range out.Header {
			if strings.HasPrefix(name, "Anthropic-") || strings.HasPrefix(name, "Openai-") {
				delete(out.Header, name)
			}
		}
	}
	out.GetBody = nil
	if up.Preset != nil {
		return up.Preset.Prepare(out, up.BaseURL, path, model, up.Key, up.APIVersion)
	}
	out.URL.Scheme = up.BaseURL.Scheme
	out.URL.Host = up.BaseURL.Host
	out.URL.Path = d.UpstreamPath(up.BaseURL.Path, path)
	out.URL.RawPath = ""
	d.InjectAuth(out.Header, up.Key)
	return nil
}

// checkTarget reports whether a request can be pointed at up, before any
// limit is taken: a preset may refuse a model name it cannot put in a URL.
func checkTarget(up *route.Upstream, clientPath, model string) error {
	if up.Preset == nil {
		return nil
	}
	scratch := &http.Request{URL: &url.URL{}, Header: http.Header{}}
	return up.Preset.Prepare(scratch, up.BaseURL, clientPath, model, up.Key, up.APIVersion)
}

// stripClientHeaders removes what a client may not pass upstream besides
// its credential. keygate is the upstream's client: addresses a client
// claims for itself are not passed on (X-Forwarded-* and Forwarded are
// already gone). The transport negotiates compression itself and decodes
// it, so error bodies can be scrubbed and the client receives plain bytes.
func stripClientHeaders(h http.Header) {
	for _, name := range clientAddressHeaders {
		h.Del(name)
	}
	h.Del("Accept-Encoding")
}

// noTrailers drops a response's trailers when its body is closed, which is
// after the transport has read them and before ReverseProxy copies them.
type noTrailers struct {
	io.ReadCloser
	resp *http.Response
}

// Close closes the body and forgets its trailers.
func (n *noTrailers) Close() error {
	err := n.ReadCloser.Close()
	n.resp.Trailer = nil
	return err
}

// clientAddressHeaders are the headers that claim a client address.
var clientAddressHeaders = []string{"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Cluster-Client-Ip"}

// maxErrorBody bounds how much of an upstream error body is read whole to
// rewrite it into another shape (a preset's, or the other dialect's);
// error bodies are small.
const maxErrorBody = 1 << 20

// modifyResponse removes the upstream credential from anything the provider
// echoes back: header names and values, and every body, decoded first.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	c := callFrom(resp.Request.Context())
	if g.opts.Metrics != nil {
		g.opts.Metrics.Upstream(c.upstream.Name, time.Since(c.sentAt))
	}
	resp.Header.Del("Set-Cookie") // provider session cookies belong to keygate's credential, not the client
	// Before anything reads the body: decode it, scrub headers, wrap it.
	set := g.scrubs.ForRequest(resp.Request, c.upstream.Key)
	if err := set.Response(resp); err != nil {
		return err // *scrub.EncodingError, answered 502 by proxyError
	}
	// Trailers arrive with the end of the body, after this runs, and
	// ReverseProxy forwards them once it has closed the body. The APIs
	// keygate fronts send none, so none pass: they could echo the key.
	resp.Body = &noTrailers{ReadCloser: resp.Body, resp: resp}
	// The provider's rate-limit headers describe keygate's upstream account,
	// not the client's limits, which keygate reports itself.
	for name := range resp.Header {
		if strings.HasPrefix(name, "X-Ratelimit-") || strings.HasPrefix(name, "Anthropic-Ratelimit-") {
			delete(resp.Header, name)
		}
	}
	resp.Body = newMeteredBody(g, c, resp)
	if c.ownsResponse && resp.StatusCode == http.StatusOK {
		resp.Body = &responseIDBody{ReadCloser: resp.Body, g: g, c: c}
	}
	// Rewritten bodies are scrubbed again: decoding and re-encoding JSON
	// can turn an escaped form of the key into a plain one.
	if c.upstream.Preset != nil && resp.StatusCode >= 400 {
		normalizeError(resp, c.upstream.Preset)
		resp.Body = set.Body(resp.Body)
	}
	if c.translate {
		if err := g.translateResponse(resp, c); err != nil {
			return err
		}
		resp.Body = set.Body(resp.Body)
	}
	if err := g.checkAnswer(c, resp); err != nil {
		return err
	}
	g.setOverhead(c, resp.Header)
	return nil
}

// normalizeError rewrites a preset service's own error body (Gemini's
// array, xAI's and vLLM's bare strings, Mistral's detail) into the OpenAI
// error shape its clients' SDKs parse. The body is already scrubbed.
func normalizeError(resp *http.Response, p *provider.Preset) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return
	}
	msg, code := p.ParseError(resp.StatusCode, b)
	setBody(resp, provider.OpenAIErrorBody(resp.StatusCode, code, msg), resp.Body.(io.Closer))
}

// proxyError answers when the provider could not be reached or did not answer
// in time. The message names the provider, never its address or the cause's
// text, which may hold internal host names; those go to the log.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	c := callFrom(r.Context())
	if r.Context().Err() != nil {
		c.failure = "client_gone"
		return
	}
	g.refuse(w, r, g.upstreamFailure(c, err))
}

// upstreamFailure is the answer to a model call whose upstream could not
// be used, recording the failure on the call.
func (g *Gateway) upstreamFailure(c *call, err error) *Denial {
	if nd, ok := errNoDeployment(err); ok {
		c.failure = "no_deployment"
		den := denyf(http.StatusServiceUnavailable, "model_unavailable",
			"every deployment of model %q is failing, cooling down or at its own rate limit; retry shortly", nd.alias)
		den.RetryAfter = nd.retryAfter
		return den
	}
	name := c.upstream.Name
	if c.alias != nil {
		name = c.alias.Name
	}
	var ee *scrub.EncodingError
	if errors.As(err, &ee) {
		c.failure = "upstream_encoding"
		g.opts.Log.Warn("upstream answer refused", "request_id", c.requestID, "provider", c.upstream.Name, "err", err)
		return denyf(http.StatusBadGateway, "upstream_encoding", "upstream provider %q: %s", name, ee.Error())
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		c.failure = "upstream_timeout"
		g.opts.Log.Warn("upstream timed out", "request_id", c.requestID, "provider", c.upstream.Name, "err", err)
		return denyf(http.StatusGatewayTimeout, "upstream_timeout", "upstream provider %q did not answer in time", name)
	}
	c.failure = "upstream_unreachable"
	g.opts.Log.Warn("upstream unreachable", "request_id", c.requestID, "provider", c.upstream.Name, "err", err)
	return denyf(http.StatusBadGateway, "upstream_unreachable", "keygate could not reach upstream provider %q", name)
}
