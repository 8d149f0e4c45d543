package workload

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// maxIssuerDocument bounds a discovery document or key set keygate reads.
const maxIssuerDocument = 1 << 20

// asymmetricAlgs are the signing algorithms keygate accepts from an
// issuer that does not list its own: never "none", never HMAC.
var asymmetricAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// issuer is one trusted issuer. Its key set is found once, through OIDC
// discovery or at a configured URL, and then kept by go-oidc's remote key
// set, which caches the keys and reads them again when a token names a
// key it does not hold (the issuer rotated). Every read of the issuer
// goes through a throttle: a flood of tokens naming unknown keys costs
// the issuer one request per refresh interval, not one each.
type issuer struct {
	url      string
	jwksURL  string // configured; "" until discovery finds it
	client   *http.Client
	throttle *throttle
	retry    time.Duration // least time between two failed discoveries

	mu      sync.Mutex
	keys    oidc.KeySet
	algs    []string
	tried   time.Time
	lastErr error
}

func newIssuer(url string, o IssuerOptions, timeout, refresh time.Duration) (*issuer, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", o.CAFile)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	th := &throttle{base: base, every: refresh, last: map[string]*fetched{}}
	return &issuer{
		url: url, jwksURL: o.JWKSURL, throttle: th, retry: refresh,
		client: &http.Client{Transport: th, Timeout: timeout},
	}, nil
}

// keySet returns the issuer's key set and the algorithms it signs with,
// finding them on first use. A failed discovery is tried again at most
// once per refresh interval; until then its error is returned.
func (is *issuer) keySet(ctx context.Context) (oidc.KeySet, []string, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.keys != nil {
		return is.keys, is.algs, nil
	}
	if !is.tried.IsZero() && time.Since(is.tried) < is.retry {
		return nil, nil, is.lastErr
	}
	is.tried = time.Now()
	jwks, algs := is.jwksURL, asymmetricAlgs
	if jwks == "" {
		dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, is.client), is.client.Timeout)
		p, err := oidc.NewProvider(dctx, is.url)
		cancel()
		if err != nil {
			is.lastErr = fmt.Errorf("discovery of issuer %s: %w", is.url, err)
			return nil, nil, is.lastErr
		}
		var doc struct {
			JWKS string   `json:"jwks_uri"`
			Algs []string `json:"id_token_signing_alg_values_supported"`
		}
		if err := p.Claims(&doc); err != nil || doc.JWKS == "" {
			is.lastErr = fmt.Errorf("issuer %s publishes no jwks_uri in its discovery document", is.url)
			return nil, nil, is.lastErr
		}
		jwks, algs = doc.JWKS, supported(doc.Algs)
	}
	is.jwksURL = jwks
	is.keys = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), is.client), jwks)
	is.algs = algs
	return is.keys, is.algs, nil
}

// supported keeps the asymmetric algorithms of an issuer's list; an empty
// result means RS256, OIDC's default.
func supported(algs []string) []string {
	var out []string
	for _, a := range algs {
		for _, ok := range asymmetricAlgs {
			if a == ok {
				out = append(out, a)
			}
		}
	}
	if len(out) == 0 {
		return []string{oidc.RS256}
	}
	return out
}

// verify checks raw with go-oidc against the issuer's keys: signature,
// issuer, audience, expiry and not-before.
func (is *issuer) verify(ctx context.Context, raw, audience string, now time.Time) (*oidc.IDToken, error) {
	ks, algs, err := is.keySet(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	v := oidc.NewVerifier(is.url, ks, &oidc.Config{ClientID: audience, SupportedSigningAlgs: algs, Now: func() time.Time { return now }})
	tok, err := v.Verify(ctx, raw)
	if err == nil {
		return tok, nil
	}
	var expired *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &expired):
		return nil, &Refusal{Code: "expired", Reason: "it has expired", detail: err}
	case strings.Contains(msg, "nbf"):
		return nil, &Refusal{Code: "not_yet_valid", Reason: "it is not valid yet (nbf)", detail: err}
	case strings.HasPrefix(msg, "failed to verify signature"):
		if is.throttle.failing(is.jwksURL) {
			return nil, fmt.Errorf("%w: the key set of issuer %s cannot be read: %w", ErrUnavailable, is.url, err)
		}
		return nil, &Refusal{Code: "bad_signature", Reason: "its signature does not verify with any key its issuer publishes", detail: err}
	case strings.Contains(msg, "malformed"):
		return nil, &Refusal{Code: "malformed", Reason: "it is not a signed JWT", detail: err}
	}
	return nil, &Refusal{Code: "malformed", Reason: "its claims could not be read", detail: err}
}

// throttle passes GET requests to an issuer on, but at most one per URL
// per interval: within it, the last answer is replayed.
type throttle struct {
	base  http.RoundTripper
	every time.Duration

	mu   sync.Mutex
	last map[string]*fetched
}

// fetched is an issuer's answer, kept for replay.
type fetched struct {
	at     time.Time
	status int
	header http.Header
	body   []byte
	err    error
}

// RoundTrip implements http.RoundTripper.
func (t *throttle) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		return t.base.RoundTrip(req)
	}
	key := req.URL.String()
	t.mu.Lock()
	f := t.last[key]
	t.mu.Unlock()
	if f == nil || time.Since(f.at) >= t.every {
		f = &fetched{at: time.Now()}
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			f.err = err
		} else {
			f.status, f.header = resp.StatusCode, resp.Header
			f.body, f.err = io.ReadAll(io.LimitReader(resp.Body, maxIssuerDocument+1))
			_ = resp.Body.Close()
			if f.err == nil && len(f.body) > maxIssuerDocument {
				f.err = fmt.Errorf("%s answered more than %d bytes", req.URL.Redacted(), maxIssuerDocument)
			}
		}
		t.mu.Lock()
		t.last[key] = f
		t.mu.Unlock()
	}
	if f.err != nil {
		return nil, f.err
	}
	return &http.Response{
		StatusCode: f.status, Status: fmt.Sprintf("%d %s", f.status, http.StatusText(f.status)),
		Header: f.header.Clone(), Body: io.NopCloser(bytes.NewReader(f.body)), ContentLength: int64(len(f.body)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req,
	}, nil
}

// failing reports whether the latest read of url failed.
func (t *throttle) failing(url string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.last[url]
	return f != nil && (f.err != nil || f.status != http.StatusOK)
}
