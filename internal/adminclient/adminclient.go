// Package adminclient is a small typed client for keygate's admin REST API.
// The keygate CLI does everything through it, so the CLI and the API cannot
// disagree: the wire types come from internal/adminapi, shared with the server.
package adminclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// DefaultTimeout bounds each admin API request made with the default HTTP client.
const DefaultTimeout = 30 * time.Second

// maxBody caps how much of an admin API answer the client reads.
const maxBody = 16 << 20

// Client talks to one keygate admin listener with one admin credential.
// It is safe for concurrent use.
type Client struct {
	base     *url.URL
	token    secret.String
	approval string // sent as adminapi.ApprovalHeader, when set
	hc       *http.Client
	// streamHC sends requests whose answers are streamed, such as a backup.
	// It is hc without an overall timeout when hc is the client's own
	// default; stream bounds each wait for data instead.
	streamHC *http.Client
}

// Option configures a Client.
type Option func(*options)

type options struct {
	hc          *http.Client
	caFile      string
	plainHTTPOK bool
	approval    string
}

// WithApproval sends every request with an approval id (the
// Keygate-Approval header): a request that needed a second person's
// approval, once approved, runs when sent again with it.
func WithApproval(id string) Option {
	return func(o *options) { o.approval = strings.TrimSpace(id) }
}

// WithHTTPClient makes the client send its requests with hc instead of a
// default client with DefaultTimeout that does not follow redirects.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.hc = hc }
}

// WithCAFile makes the client trust the PEM certificates in path, on top of
// the system roots, for an admin listener served over HTTPS with a
// self-signed certificate (the one `keygate serve` writes out).
func WithCAFile(path string) Option {
	return func(o *options) { o.caFile = path }
}

// AllowPlainHTTP lets the client send its credential over plain http:// to
// a host that is not loopback, which New otherwise refuses. It is for a
// network the operator trusts to keep it, such as a service mesh that
// encrypts every connection itself.
func AllowPlainHTTP() Option {
	return func(o *options) { o.plainHTTPOK = true }
}

// New returns a client for the admin API at baseURL ("http://127.0.0.1:8788")
// that authenticates with token. The token is sent only as a bearer
// credential in the Authorization header, and never over plain http:// to
// another machine unless AllowPlainHTTP is given: New refuses such a URL
// with an error wrapping ErrPlainHTTP.
func New(baseURL string, token secret.String, opts ...Option) (*Client, error) {
	base, err := parseBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if token.IsZero() {
		return nil, errors.New("keygate admin client: the admin credential is empty")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if !o.plainHTTPOK {
		if err := CheckCleartext(base); err != nil {
			return nil, fmt.Errorf("keygate admin client: refusing to send the admin credential to %s: %w", base.Redacted(), err)
		}
	}
	hc := o.hc
	if hc == nil {
		hc = &http.Client{
			Timeout: DefaultTimeout,
			// The admin API never redirects; a redirect means a proxy or a
			// wrong address, and the credential must not follow it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.caFile != "" {
		hc, err = withCA(hc, o.caFile)
		if err != nil {
			return nil, err
		}
	}
	streamHC := hc
	if o.hc == nil {
		c := *hc
		c.Timeout = 0
		streamHC = &c
	}
	return &Client{base: base, token: token, approval: o.approval, hc: hc, streamHC: streamHC}, nil
}

func parseBaseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keygate admin client: admin URL %q is not valid: use http://HOST:PORT or https://HOST:PORT, as in http://127.0.0.1:8788", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("keygate admin client: admin URL %s must not carry user info, a query or a fragment", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// withCA returns a copy of hc whose transport also trusts the certificates in caFile.
func withCA(hc *http.Client, caFile string) (*http.Client, error) {
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("keygate admin client: read CA certificate: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("keygate admin client: %s holds no PEM certificate; pass the certificate file `keygate serve` wrote", caFile)
	}
	var tr *http.Transport
	switch t := hc.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		return nil, fmt.Errorf("keygate admin client: a CA file needs an *http.Transport, and the HTTP client given uses %T", t)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.RootCAs = pool
	if tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		tr.TLSClientConfig.MinVersion = tls.VersionTLS12
	}
	c := *hc
	c.Transport = tr
	return &c, nil
}

// BaseURL returns the admin API address the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// Format implements fmt.Formatter so that printing a Client with any verb
// shows its address and never its credential (fmt cannot reach the redacting
// methods of an unexported field).
func (c Client) Format(f fmt.State, _ rune) {
	base := "<nil>"
	if c.base != nil {
		base = c.base.String()
	}
	_, _ = fmt.Fprintf(f, "adminclient.Client(%s)", base)
}

// APIError is an error answer from the admin API: a non-2xx status with the
// ErrorBody the API sends.
type APIError struct {
	Status  int    // HTTP status code
	Code    string // stable code: bad_request, unauthorized, forbidden, not_found, conflict, internal; empty if the answer had none
	Message string // what went wrong, for people
}

// Error reads as a sentence for a person, as in
// `keygate admin API: not found: no key named "x"`.
func (e *APIError) Error() string {
	what := strings.ReplaceAll(e.Code, "_", " ")
	if what == "" {
		what = fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
		msg := e.Message
		if msg == "" {
			msg = "the answer did not come from keygate's admin API; check that the admin URL points at the admin listener (port 8788 by default)"
		}
		return "keygate admin API: " + strings.TrimSpace(what) + ": " + msg
	}
	if e.Message == "" {
		return "keygate admin API: " + what
	}
	return "keygate admin API: " + what + ": " + e.Message
}

// NotRunningError reports that nothing accepted a connection at the admin URL.
type NotRunningError struct {
	URL string // the admin URL that refused the connection
	Err error  // the underlying network error
}

// Error says keygate does not seem to be running and how to fix that.
func (e *NotRunningError) Error() string {
	return fmt.Sprintf("keygate does not seem to be running at %s (connection refused): "+
		"start it with `keygate serve`, or point at another address with --admin-url or KEYGATE_ADMIN_URL", e.URL)
}

// Unwrap returns the underlying network error.
func (e *NotRunningError) Unwrap() error { return e.Err }

// WhoAmI describes the admin credential the client uses; it is the cheapest
// way to check that a credential works.
func (c *Client) WhoAmI(ctx context.Context) (adminapi.WhoAmI, error) {
	var out adminapi.WhoAmI
	err := c.do(ctx, http.MethodGet, "/whoami", nil, &out)
	return out, err
}

// CreateProvider registers an upstream provider with its API key.
func (c *Client) CreateProvider(ctx context.Context, req adminapi.CreateProviderRequest) (adminapi.Provider, error) {
	var out adminapi.Provider
	err := c.do(ctx, http.MethodPost, "/providers", req, &out)
	return out, err
}

// ListProviders returns every provider.
func (c *Client) ListProviders(ctx context.Context) ([]adminapi.Provider, error) {
	var out adminapi.ProviderList
	err := c.do(ctx, http.MethodGet, "/providers", nil, &out)
	return out.Providers, err
}

// GetProvider returns the provider called name.
func (c *Client) GetProvider(ctx context.Context, name string) (adminapi.Provider, error) {
	var out adminapi.Provider
	p, err := segment("/providers/", "provider name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// DeleteProvider removes the provider called name and its stored key.
func (c *Client) DeleteProvider(ctx context.Context, name string) error {
	p, err := segment("/providers/", "provider name", name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// CreateKey creates a keygate API key. The answer carries its secret, which
// the admin API shows only this once.
func (c *Client) CreateKey(ctx context.Context, req adminapi.CreateKeyRequest) (adminapi.CreatedKey, error) {
	var out adminapi.CreatedKey
	err := c.do(ctx, http.MethodPost, "/keys", req, &out)
	return out, err
}

// ListKeys returns every keygate API key, without secrets.
func (c *Client) ListKeys(ctx context.Context) ([]adminapi.Key, error) {
	var out adminapi.KeyList
	err := c.do(ctx, http.MethodGet, "/keys", nil, &out)
	return out.Keys, err
}

// GetKey returns the key whose id or name is ref.
func (c *Client) GetKey(ctx context.Context, ref string) (adminapi.Key, error) {
	var out adminapi.Key
	p, err := segment("/keys/", "key id or name", ref)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// RevokeKey revokes the key whose id or name is ref and returns it as revoked.
func (c *Client) RevokeKey(ctx context.Context, ref string) (adminapi.Key, error) {
	var out adminapi.Key
	p, err := segment("/keys/", "key id or name", ref)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/revoke", nil, &out)
	return out, err
}

// segment builds prefix + the escaped path segment v, refusing an empty one.
func segment(prefix, what, v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("keygate admin client: the %s is empty", what)
	}
	return prefix + url.PathEscape(v), nil
}

// newRequest builds an authenticated request for path, which is relative to
// the API prefix and may end in a "?query".
func (c *Client) newRequest(ctx context.Context, method, path, accept string, body any) (*http.Request, error) {
	path, query, _ := strings.Cut(path, "?")
	u := *c.base
	u.RawPath = c.base.EscapedPath() + adminapi.Prefix + path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("keygate admin client: build request path: %w", err)
	}
	u.Path = p
	u.RawQuery = query
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("keygate admin client: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("keygate admin client: build request: %w", err)
	}
	if !c.token.IsZero() {
		req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	}
	if c.approval != "" {
		req.Header.Set(adminapi.ApprovalHeader, c.approval)
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "keygate-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends one request and decodes a 2xx JSON answer into out (when non-nil)
// or a non-2xx answer into an *APIError. path may end in a "?query".
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	req, err := c.newRequest(ctx, method, path, "application/json", body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.transportError(method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("keygate admin API: %s %s: read answer: %w", method, adminapi.Prefix+path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp.StatusCode, data)
	}
	if pending := approvalPending(resp.StatusCode, data); pending != nil {
		return pending
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("keygate admin API: %s %s: the answer is not the JSON keygate sends (%v); check that the admin URL points at keygate's admin listener", method, adminapi.Prefix+path, err)
	}
	return nil
}

// stream sends one request and copies a 2xx answer of the content type
// want into w, or decodes a non-2xx answer into an *APIError. It gives up
// when the server sends nothing for DefaultTimeout, but sets no bound on the
// whole transfer. It returns the number of bytes written to w.
func (c *Client) stream(ctx context.Context, method, path, want string, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := &idleTimer{}
	idle.t = time.AfterFunc(DefaultTimeout, func() { idle.fired.Store(true); cancel() })
	defer idle.t.Stop()

	req, err := c.newRequest(ctx, method, path, want, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.streamHC.Do(req)
	if err != nil {
		if idle.fired.Load() {
			return 0, fmt.Errorf("keygate admin API at %s: %s %s: no answer within %s: check that keygate is healthy and try again", c.BaseURL(), method, adminapi.Prefix+path, DefaultTimeout)
		}
		return 0, c.transportError(method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return 0, decodeError(resp.StatusCode, data)
	}
	if resp.StatusCode == http.StatusAccepted {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if pending := approvalPending(resp.StatusCode, data); pending != nil {
			return 0, pending
		}
	}
	if ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), want) {
		return 0, fmt.Errorf("keygate admin API: %s %s: the answer is %q, not the %s keygate sends; check that the admin URL points at keygate's admin listener", method, adminapi.Prefix+path, ct, want)
	}
	n, err := io.Copy(w, &idleReader{r: resp.Body, idle: idle})
	if err != nil {
		if idle.fired.Load() {
			return n, fmt.Errorf("keygate admin API: %s %s: the server sent nothing for %s after %d bytes: try again", method, adminapi.Prefix+path, DefaultTimeout, n)
		}
		return n, fmt.Errorf("keygate admin API: %s %s: copying the answer after %d bytes: %w", method, adminapi.Prefix+path, n, err)
	}
	return n, nil
}

// idleTimer cancels a streamed request that makes no progress.
type idleTimer struct {
	t     *time.Timer
	fired atomic.Bool
}

// idleReader pushes its idleTimer back after every read that returns data.
type idleReader struct {
	r    io.Reader
	idle *idleTimer
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.idle.t.Reset(DefaultTimeout)
	}
	return n, err
}

// ApprovalPendingError is the answer to a request that waits for a second
// person's approval: nothing ran yet.
type ApprovalPendingError struct {
	Pending adminapi.ApprovalPending
}

// Error says what waits and what to do.
func (e *ApprovalPendingError) Error() string {
	return "keygate admin API: waiting for approval " + e.Pending.Approval.ID + ": " + e.Pending.Message
}

// approvalPending reads a 202 answer that is an approval request, or nil.
func approvalPending(status int, data []byte) *ApprovalPendingError {
	if status != http.StatusAccepted {
		return nil
	}
	var p adminapi.ApprovalPending
	if json.Unmarshal(data, &p) != nil || !strings.HasPrefix(p.Approval.ID, "apr_") {
		return nil
	}
	return &ApprovalPendingError{Pending: p}
}

func decodeError(status int, data []byte) *APIError {
	e := &APIError{Status: status}
	var body adminapi.ErrorBody
	if json.Unmarshal(data, &body) == nil {
		e.Code = body.Error.Code
		e.Message = body.Error.Message
	}
	return e
}

func (c *Client) transportError(method, path string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &NotRunningError{URL: c.BaseURL(), Err: err}
	}
	var unknownCA x509.UnknownAuthorityError
	var invalidCert x509.CertificateInvalidError
	var hostErr x509.HostnameError
	if errors.As(err, &unknownCA) || errors.As(err, &invalidCert) || errors.As(err, &hostErr) {
		return fmt.Errorf("keygate admin API at %s: the server's TLS certificate is not trusted (%v): "+
			"pass the certificate `keygate serve` wrote with --admin-ca or KEYGATE_ADMIN_CA", c.BaseURL(), err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("keygate admin API at %s: %s %s timed out: %w", c.BaseURL(), method, adminapi.Prefix+path, err)
	}
	return fmt.Errorf("keygate admin API at %s: %s %s: %w", c.BaseURL(), method, adminapi.Prefix+path, err)
}
