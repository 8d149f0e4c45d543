package cli

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// tokenProxy stands between a command started by `keygate run --key` and
// the gateway. The command holds only a random credential this proxy
// accepts, on loopback; the proxy sends the gateway a short-lived access
// token exchanged for the run's keygate key, and refreshes it before it
// expires. Neither the key nor a token ever reaches the command, so
// nothing it leaks outlives the run.
type tokenProxy struct {
	gw    *url.URL
	key   secret.String // the run's keygate key; stays in this process
	local string        // the credential the command presents
	hc    *http.Client

	// minted are further credentials made during the run, each with its
	// expiry, for agents that fetch a fresh one now and then.
	mintedMu sync.Mutex
	minted   map[string]time.Time

	mu      sync.Mutex
	access  secret.String
	refresh secret.String
	expires time.Time

	srv *http.Server
	ln  net.Listener
}

// noRedirects is the CheckRedirect of HTTP clients whose requests carry a
// keygate key or token: a key goes only to the address it was given, never
// on to wherever an answer points (a 307 or 308 would resend it, body and
// all).
func noRedirects(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("the gateway answered with a redirect to %s://%s, and keygate sends a key only to the address it was given: "+
		"if that is the gateway, pass it with --gateway", req.URL.Scheme, req.URL.Host)
}

// refreshBefore is how long before its expiry an access token is replaced.
const refreshBefore = time.Minute

// startTokenProxy exchanges key at the gateway gw and starts serving on
// loopback. It fails, starting nothing, when the gateway issues no tokens.
func startTokenProxy(ctx context.Context, gw string, key secret.String, caFile string) (*tokenProxy, error) {
	u, err := url.Parse(gw)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: noRedirects}
	if caFile != "" && u.Scheme == "https" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read the CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	p := &tokenProxy{gw: u, key: key, local: newLocalCredential(), hc: hc}
	if err := p.grant(ctx, url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {key.Reveal()},
		"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"},
	}); err != nil {
		return nil, err
	}
	if p.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.gw)
			pr.Out.Host = ""
		},
		Transport:     hc.Transport,
		FlushInterval: -1, // streams pass as they arrive
	}
	p.srv = &http.Server{Handler: p.handler(rp), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(p.ln) }()
	return p, nil
}

// URL is where the command reaches the gateway through the proxy.
func (p *tokenProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy and revokes the refresh family.
func (p *tokenProxy) Close() {
	_ = p.srv.Close()
	p.mu.Lock()
	refresh := p.refresh
	p.mu.Unlock()
	if !refresh.IsZero() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.gw.String(), "/")+"/oauth/revoke",
			strings.NewReader(url.Values{"token": {refresh.Reveal()}}.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if resp, err := p.hc.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
}

func (p *tokenProxy) handler(rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every way an SDK sends its key: OpenAI's and Anthropic's
		// headers, Gemini's header and its ?key= parameter.
		presented := r.Header.Get("X-Api-Key")
		if g := r.Header.Get("X-Goog-Api-Key"); g != "" {
			presented = g
		}
		if q := r.URL.Query(); q.Has("key") {
			presented = q.Get("key")
			q.Del("key")
			r.URL.RawQuery = q.Encode()
		}
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			presented = b
		}
		if !p.accepts(presented) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"message":"this is keygate run's local gateway for one command; use the credential in its environment","type":"invalid_request_error","code":"invalid_api_key"}}`)
			return
		}
		tok, err := p.token(r.Context())
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, `{"error":{"message":"keygate run could not get an access token from the gateway","type":"server_error","code":"token_unavailable"}}`)
			return
		}
		r.Header.Del("X-Api-Key")
		r.Header.Del("X-Goog-Api-Key")
		r.Header.Set("Authorization", "Bearer "+tok.Reveal())
		rp.ServeHTTP(w, r)
	})
}

// localPrefix begins every credential the proxy accepts, so that scanners
// and the run's own masking recognise it.
const localPrefix = "kgl_"

// newLocalCredential makes a random credential for the local gateway.
func newLocalCredential() string { return localPrefix + rand.Text() + rand.Text() }

// mint makes a further credential the proxy accepts until ttl has passed
// (and the run ends), and forgets the expired ones.
func (p *tokenProxy) mint(ttl time.Duration) string {
	c := newLocalCredential()
	p.mintedMu.Lock()
	defer p.mintedMu.Unlock()
	now := time.Now()
	for k, exp := range p.minted {
		if now.After(exp) {
			delete(p.minted, k)
		}
	}
	if p.minted == nil {
		p.minted = map[string]time.Time{}
	}
	p.minted[c] = now.Add(ttl)
	return c
}

// accepts reports whether presented is the run's credential or a minted
// one not yet expired, comparing in constant time.
func (p *tokenProxy) accepts(presented string) bool {
	ok := subtle.ConstantTimeCompare([]byte(presented), []byte(p.local)) == 1
	p.mintedMu.Lock()
	defer p.mintedMu.Unlock()
	now := time.Now()
	for c, exp := range p.minted {
		if subtle.ConstantTimeCompare([]byte(presented), []byte(c)) == 1 && now.Before(exp) {
			ok = true
		}
	}
	return ok
}

// token returns a current access token, refreshing it when it is about to
// expire, and exchanging the key again if the refresh fails.
func (p *tokenProxy) token(ctx context.Context) (secret.String, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Until(p.expires) > refreshBefore {
		return p.access, nil
	}
	err := p.grantLocked(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {p.refresh.Reveal()}})
	if err != nil {
		err = p.grantLocked(ctx, url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {p.key.Reveal()},
			"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"},
		})
	}
	return p.access, err
}

func (p *tokenProxy) grant(ctx context.Context, form url.Values) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grantLocked(ctx, form)
}

// grantLocked calls /oauth/token and keeps the answer; p.mu is held.
func (p *tokenProxy) grantLocked(ctx context.Context, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(p.gw.String(), "/")+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach the gateway's token endpoint: %w", err)
	}
	defer resp.Body.Close()
	var ans struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Error        string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ans); err != nil || resp.StatusCode != http.StatusOK || ans.AccessToken == "" {
		if ans.Error != "" {
			return fmt.Errorf("the gateway refused a token: %s", ans.Error)
		}
		return errors.New("the gateway issues no access tokens")
	}
	p.access, p.refresh = secret.New(ans.AccessToken), secret.New(ans.RefreshToken)
	p.expires = time.Now().Add(time.Duration(ans.ExpiresIn) * time.Second)
	return nil
}
