package passthrough

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/secret"
)

// serviceKey is the context key under which WithService stores the service.
type serviceKey struct{}

// WithService returns a copy of ctx that tells the transport which service
// a request is for. The transport refuses requests without one. Attach it
// to the incoming request's context before handing the request to
// httputil.ReverseProxy, whose outgoing request inherits it.
func WithService(ctx context.Context, s *Service) context.Context {
	return context.WithValue(ctx, serviceKey{}, s)
}

// ServiceFrom returns the service attached by WithService, or nil.
func ServiceFrom(ctx context.Context) *Service {
	s, _ := ctx.Value(serviceKey{}).(*Service)
	return s
}

// BlockedError reports a request the transport refused to send: the
// upstream address is private or special-purpose, the request's host is
// not its service's, or no service was attached. It never holds the
// credential.
type BlockedError struct {
	Service string     // the service the request was for, if known
	Host    string     // the host the request was addressed to (host:port when dialling)
	IP      netip.Addr // the resolved address refused at dial time; zero for other refusals
	Reason  string     // why the request was refused and what to do
}

// Error describes the refusal.
func (e *BlockedError) Error() string {
	if e.IP.IsValid() {
		return fmt.Sprintf("passthrough: service %q: refused to connect to %q at %s: %s", e.Service, e.Host, e.IP, e.Reason)
	}
	return fmt.Sprintf("passthrough: service %q: refused request to %q: %s", e.Service, e.Host, e.Reason)
}

// UpstreamError wraps a failure to exchange a request with an upstream,
// such as a refused connection, a timeout or a TLS failure. Its message has
// the injected credential replaced by secret.Redacted wherever the
// underlying error repeated it. Unwrap gives the underlying error, for
// errors.Is(err, context.DeadlineExceeded) and net.Error checks; log this
// error, not the one it wraps.
type UpstreamError struct {
	Service string // the service the request was for
	Err     error  // the underlying error
	msg     string // Err's message with the credential redacted
}

// newUpstreamError wraps err, redacting the strings in hide from its message.
func newUpstreamError(service string, err error, hide []secret.String) *UpstreamError {
	msg := err.Error()
	for _, h := range hide {
		if v := h.Reveal(); v != "" {
			msg = strings.ReplaceAll(msg, v, secret.Redacted)
		}
	}
	return &UpstreamError{Service: service, Err: err, msg: msg}
}

// Error describes the failure without the credential.
func (e *UpstreamError) Error() string {
	msg := e.msg
	if msg == "" && e.Err != nil {
		msg = "(details withheld)"
	}
	return fmt.Sprintf("passthrough: service %q: upstream request failed: %s", e.Service, msg)
}

// Unwrap returns the underlying error.
func (e *UpstreamError) Unwrap() error { return e.Err }

// TransportOptions tunes the connections to passthrough upstreams. Zero
// values select the defaults noted on each field.
type TransportOptions struct {
	// DialTimeout bounds connecting, and the TLS handshake. Default 10s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response headers once
	// the request is written. Default 0: no bound beyond the request's context.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes pooled connections idle this long. Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost sizes each upstream's keep-alive pool. Default 16.
	MaxIdleConnsPerHost int
	// TLSClientConfig, when set, is cloned for upstream TLS, for example to
	// trust a private certificate authority. Default: the system roots.
	TLSClientConfig *tls.Config
}

// Transport is the http.RoundTripper for passthrough requests; build it
// with NewTransport. One Transport serves every service: each request
// names its service through WithService.
//
// It refuses a request unless its scheme, host and Host header match its
// service's base URL, and it checks every address it actually connects to,
// after DNS resolution, so a name that resolves (or later rebinds) to a
// private address is refused too; see egress.Classify. It uses no proxy from the
// environment and, being a RoundTripper, never follows redirects: a 3xx
// goes back to the client as it came (pass its headers through
// ScrubLocation). Services with AllowPrivate use a separate connection
// pool, so a connection opened for one is never reused by a service
// without it.
type Transport struct {
	public  *http.Transport // dials only addresses egress.Classify calls public
	private *http.Transport // dials anything; for AllowPrivate services
}

// NewTransport returns a Transport configured by o.
func NewTransport(o TransportOptions) *Transport {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 16
	}
	return &Transport{public: newHTTPTransport(o, false), private: newHTTPTransport(o, true)}
}

// newHTTPTransport builds one of the two pools.
func newHTTPTransport(o TransportOptions, allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.ControlContext = refuseSpecialAddr
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		var b *BlockedError
		if err != nil && errors.As(err, &b) {
			b.Host = addr
			return nil, b
		}
		return c, err
	}
	t := &http.Transport{
		Proxy:                 nil, // credentials never take a detour through an ambient proxy
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          o.MaxIdleConnsPerHost * 4,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       o.IdleConnTimeout,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	if o.TLSClientConfig != nil {
		t.TLSClientConfig = o.TLSClientConfig.Clone()
	}
	return t
}

// refuseSpecialAddr is the dialer's ControlContext: it runs after DNS
// resolution, just before connecting, with the address actually dialled.
func refuseSpecialAddr(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Reason: "the dialled address could not be checked; refusing to connect"}
	}
	if public, reason := egress.Classify(ap.Addr()); !public {
		return &BlockedError{IP: ap.Addr().WithZone(""), Reason: reason + " is not reachable through passthrough; set AllowPrivate on the service if this upstream is meant to be internal"}
	}
	return nil
}

// RoundTrip sends req to its service's upstream. It always closes the
// request body. Errors are *BlockedError for refusals and *UpstreamError
// for failed exchanges.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := ServiceFrom(req.Context())
	if err := t.check(req, s); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	pool := t.public
	if s.AllowPrivate {
		pool = t.private
	}
	resp, err := pool.RoundTrip(req)
	if err != nil {
		var b *BlockedError
		if errors.As(err, &b) {
			b.Service = s.Name
			return nil, b
		}
		return nil, newUpstreamError(s.Name, err, sentCredential(req, s))
	}
	return resp, nil
}

// check refuses a request that is not addressed to its service's base URL.
func (t *Transport) check(req *http.Request, s *Service) error {
	if s == nil {
		return &BlockedError{Reason: "no passthrough service is attached to the request; attach it with WithService"}
	}
	if req.URL == nil {
		return &BlockedError{Service: s.Name, Reason: "the request has no URL"}
	}
	if err := s.Validate(); err != nil {
		return &BlockedError{Service: s.Name, Host: req.URL.Host, Reason: err.Error()}
	}
	base := s.BaseURL
	switch {
	case req.URL.Scheme != base.Scheme:
		return &BlockedError{Service: s.Name, Host: req.URL.Host,
			Reason: fmt.Sprintf("scheme %q does not match the service's base URL scheme %q; build the request with Rewrite", req.URL.Scheme, base.Scheme)}
	case !sameHost(req.URL.Host, base):
		return &BlockedError{Service: s.Name, Host: req.URL.Host,
			Reason: fmt.Sprintf("host does not match the service's base URL host %q; build the request with Rewrite", base.Host)}
	case req.Host != "" && !sameHost(req.Host, base):
		return &BlockedError{Service: s.Name, Host: req.URL.Host,
			Reason: fmt.Sprintf("Host header %q does not match the service's base URL host %q; build the request with Rewrite", req.Host, base.Host)}
	case req.URL.Opaque != "":
		return &BlockedError{Service: s.Name, Host: req.URL.Host,
			Reason: "the request URL is opaque, so its path was not checked; build the request with Rewrite"}
	case req.URL.User != nil:
		return &BlockedError{Service: s.Name, Host: req.URL.Host,
			Reason: "the request URL carries user info; build the request with Rewrite"}
	}
	return nil
}

// sameHost reports whether host, in host[:port] form, names the same host
// and port as base, reading a missing port as the scheme's default.
func sameHost(host string, base *url.URL) bool {
	return strings.EqualFold(hostPort(&url.URL{Scheme: base.Scheme, Host: host}), hostPort(base))
}

// CloseIdleConnections closes the idle connections of both pools.
func (t *Transport) CloseIdleConnections() {
	t.public.CloseIdleConnections()
	t.private.CloseIdleConnections()
}

// sentCredential returns the credential-bearing strings of a request built
// by Rewrite, for UpstreamError to keep out of its message.
func sentCredential(req *http.Request, s *Service) []secret.String {
	var out []secret.String
	switch s.Auth.Kind {
	case AuthHeader:
		if v := req.Header.Get(s.Auth.Name); v != "" {
			out = append(out, secret.New(v))
			if k := strings.TrimPrefix(v, s.Auth.Prefix); k != "" {
				out = append(out, secret.New(k))
			}
		}
	case AuthBearer, AuthBasic:
		if v := req.Header.Get("Authorization"); v != "" {
			out = append(out, secret.New(v))
			if _, k, ok := strings.Cut(v, " "); ok && k != "" {
				out = append(out, secret.New(k))
			}
		}
	case AuthQuery:
		for _, k := range req.URL.Query()[s.Auth.Name] {
			if k != "" {
				out = append(out, secret.New(k), secret.New(url.QueryEscape(k)))
			}
		}
	}
	return out
}
