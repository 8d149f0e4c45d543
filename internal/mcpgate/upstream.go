package mcpgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/scrub"
	"github.com/keygate/keygate/internal/secret"
)

// upstream is one registered MCP server and keygate's one client session
// to it, shared by every caller: the credential is keygate's, not the
// caller's, and a stdio server is one process.
type upstream struct {
	cfg   ServerConfig
	g     *Gate
	mu    sync.Mutex
	sess  *mcp.ClientSession
	tools []*mcp.Tool // cached tools/list; nil until read or after a change
	// resources: the URIs of the last resources/list, to find which server
	// an aggregated resources/read is for.
	resources map[string]bool
	// scrub is the Set of the credentials injected into this server
	// (scrubber), replaced when an OAuth token is renewed; scrubBase are
	// the fixed ones.
	scrub     atomic.Pointer[scrub.Set]
	scrubBase []scrub.Credential
	tokMu     sync.Mutex // guards scrubBase and lastToken (mu is held while connecting)
	lastToken string     // the OAuth token the Set covers
	closed    bool
	// An OAuth server's connections, one per user (auth oauth): users on
	// the server's upstream, user and tokens on each user's.
	users  map[string]*upstream
	user   string
	tokens tokenSource
}

// session returns the client session, connecting first when there is
// none or the last one ended.
func (u *upstream) session(ctx context.Context) (*mcp.ClientSession, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, errUnavailable(u.cfg.Name, errors.New("the server was removed"))
	}
	if u.sess != nil {
		return u.sess, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.cfg.ConnectTimeout)
	defer cancel()
	if u.tokens != nil {
		// A user who has not authorized is told so before any connection.
		if _, err := u.tokens.token(ctx); err != nil {
			return nil, err
		}
	}
	t, creds, err := u.transport(ctx)
	if err != nil {
		return nil, err
	}
	u.tokMu.Lock()
	u.scrubBase, u.lastToken = creds, ""
	u.scrub.Store(scrub.New(creds...))
	u.tokMu.Unlock()
	c := mcp.NewClient(&mcp.Implementation{Name: "keygate", Version: u.g.opts.Version}, &mcp.ClientOptions{
		// keygate may pass sampling, elicitation and roots requests on to
		// the calling client; whether that client can answer is checked
		// per call (input.go).
		Capabilities: &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{},
			Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}},
			RootsV2:     &mcp.RootCapabilities{}},
		// Input requests in a result come back to forward, which asks the
		// calling client; the SDK must not answer them for the session.
		MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			u.listChanged("tools")
		},
		PromptListChangedHandler: func(context.Context, *mcp.PromptListChangedRequest) {
			u.listChanged("prompts")
		},
		ResourceListChangedHandler: func(context.Context, *mcp.ResourceListChangedRequest) {
			u.listChanged("resources")
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			u.g.progress.notify(req.Params)
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			u.notifyCaller("notifications/message", req.Params)
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			u.notifyCaller("notifications/resources/updated", req.Params)
		},
	})
	c.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "sampling/createMessage", "elicitation/create", "roots/list":
				return u.serverRequest(ctx, method, req)
			}
			return next(ctx, method, req)
		}
	})
	s, err := c.Connect(ctx, t, nil)
	if err != nil {
		u.g.opts.Log.Warn("connecting to an MCP server failed", "mcp_server", u.cfg.Name, "err", u.scrubErr(err))
		return nil, errUnavailable(u.cfg.Name, err)
	}
	if r := s.InitializeResult(); r != nil && r.ProtocolVersion < protocolInputRequests && r.Capabilities != nil && r.Capabilities.Logging != nil {
		// An older server logs only once asked; each message goes to the
		// client of the call it is about, at that client's own level.
		if err := s.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
			u.g.opts.Log.Debug("asking an MCP server for its log messages failed", "mcp_server", u.cfg.Name, "err", u.scrubErr(err))
		}
	}
	u.sess = s
	go func() {
		_ = s.Wait()
		u.mu.Lock()
		if u.sess == s {
			u.sess, u.tools = nil, nil
		}
		u.mu.Unlock()
	}()
	return s, nil
}

// drop forgets a session that failed, so the next call connects anew.
func (u *upstream) drop(s *mcp.ClientSession) {
	u.mu.Lock()
	if u.sess == s {
		u.sess, u.tools = nil, nil
	}
	u.mu.Unlock()
	_ = s.Close()
}

// close ends the session for good: the server was removed or changed.
func (u *upstream) close() {
	u.mu.Lock()
	s := u.sess
	users := u.users
	u.sess, u.closed, u.users = nil, true, nil
	u.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
	for _, cu := range users {
		cu.close()
	}
}

// transport builds the MCP transport for the server, and the credentials
// it injects (to scrub from what the server sends back).
func (u *upstream) transport(ctx context.Context) (mcp.Transport, []scrub.Credential, error) {
	switch u.cfg.Transport {
	case "stdio":
		return u.command(ctx)
	case "http", "sse":
		var cred secret.String
		var creds []scrub.Credential
		inj := &injector{base: u.g.transport(u.cfg.AllowPrivate), cfg: &u.cfg, max: u.cfg.MaxResultBytes + 64<<10}
		switch u.cfg.Auth {
		case "oauth":
			if u.tokens == nil {
				return nil, nil, &AuthRequiredError{Server: u.cfg.Name, NoUser: true}
			}
			inj.tokens, inj.injected = u.tokens, u.injected
		case "client-credentials":
			ct, sec, err := u.clientCredentials(ctx)
			if err != nil {
				return nil, nil, err
			}
			u.tokens = ct
			if !sec.IsZero() {
				creds = append(creds, scrub.Credential{Key: sec})
			}
			inj.tokens, inj.injected = u.tokens, u.injected
		case "none", "":
		default:
			v, err := u.g.opts.Source.Secret(ctx, u.cfg.Secret)
			if err != nil {
				return nil, nil, errUnavailable(u.cfg.Name, fmt.Errorf("reading its credential: %w", err))
			}
			cred = v
			c := scrub.Credential{Key: v}
			if u.cfg.Auth == "bearer" {
				c.Header = secret.New("Bearer " + v.Reveal())
			}
			creds = append(creds, c)
		}
		inj.cred = cred
		client := &http.Client{Transport: inj,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		if u.cfg.Transport == "sse" {
			return &mcp.SSEClientTransport{Endpoint: u.cfg.URL, HTTPClient: client, MaxEventSize: int(u.cfg.MaxResultBytes + 64<<10)}, creds, nil
		}
		return &mcp.StreamableClientTransport{Endpoint: u.cfg.URL, HTTPClient: client, MaxRetries: 1, MaxEventSize: int(u.cfg.MaxResultBytes + 64<<10)}, creds, nil
	}
	return nil, nil, errUnavailable(u.cfg.Name, fmt.Errorf("transport %q is not known", u.cfg.Transport))
}

// command builds a stdio server's process: its program and arguments, and
// an environment of PATH and the configured variables alone, secret:NAME
// values read from the vault. Nothing of keygate's own environment (its
// KEK passphrase, cloud credentials) reaches it.
func (u *upstream) command(ctx context.Context) (mcp.Transport, []scrub.Credential, error) {
	env := []string{"PATH=" + os.Getenv("PATH")}
	var creds []scrub.Credential
	names := make([]string, 0, len(u.cfg.Env))
	for k := range u.cfg.Env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v := u.cfg.Env[k]
		if ref, ok := strings.CutPrefix(v, "secret:"); ok {
			s, err := u.g.opts.Source.Secret(ctx, ref)
			if err != nil {
				return nil, nil, errUnavailable(u.cfg.Name, fmt.Errorf("reading the secret for %s: %w", k, err))
			}
			v = s.Reveal()
			creds = append(creds, scrub.Credential{Key: s})
		}
		env = append(env, k+"="+v)
	}
	// The process outlives the request that started it: it is the
	// server's, ended when the server is removed or keygate stops.
	cmd := exec.Command(u.cfg.Command[0], u.cfg.Command[1:]...)
	cmd.Env = env
	cmd.Dir = u.g.opts.WorkDir
	cmd.Stderr = &logWriter{u: u}
	return &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, creds, nil
}

// logWriter passes a stdio server's stderr to keygate's log a line at a
// time, scrubbed and cut short.
type logWriter struct{ u *upstream }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if len(line) > 512 {
		line = line[:512] + "..."
	}
	if line != "" {
		if s := w.u.scrubber(); s != nil {
			line = s.String(line)
		}
		w.u.g.opts.Log.Debug("MCP server stderr", "mcp_server", w.u.cfg.Name, "line", line)
	}
	return len(p), nil
}

// scrubber returns the Set of the credentials injected into this server.
func (u *upstream) scrubber() *scrub.Set { return u.scrub.Load() }

// injected adds an OAuth access token put on a request to what is
// scrubbed from the server's answers, when it is a new one.
func (u *upstream) injected(tok string) {
	u.tokMu.Lock()
	defer u.tokMu.Unlock()
	if tok == u.lastToken {
		return
	}
	u.lastToken = tok
	creds := append(slices.Clone(u.scrubBase), scrub.Credential{Key: secret.New(tok), Header: secret.New("Bearer " + tok)})
	u.scrub.Store(scrub.New(creds...))
}

func (u *upstream) scrubErr(err error) string {
	msg := err.Error()
	if s := u.scrubber(); s != nil {
		msg = s.String(msg)
	}
	return msg
}

// injector puts the server's credential on every request to it, takes no
// client credential along (keygate sends none: it is the client), and
// refuses an answer body larger than max.
type injector struct {
	base http.RoundTripper
	cfg  *ServerConfig
	cred secret.String
	max  int64
	// tokens gives an OAuth server's access token (auth oauth or
	// client-credentials), refreshed as it nears expiry; injected learns
	// each one put on a request, to scrub it from the answers.
	tokens   tokenSource
	injected func(tok string)
}

func (t *injector) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	var tok string
	if t.tokens != nil {
		var err error
		if tok, err = t.tokens.token(r.Context()); err != nil {
			if r.Body != nil {
				_ = r.Body.Close()
			}
			return nil, err
		}
		setBearer(r, tok)
		t.injected(tok)
	}
	switch t.cfg.Auth {
	case "bearer":
		r.Header.Set("Authorization", "Bearer "+t.cred.Reveal())
	case "header":
		r.Header.Set(t.cfg.AuthHeader, t.cred.Reveal())
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized && tok != "" && (r.Body == nil || r.GetBody != nil) {
		// The server refused an OAuth token before its expiry (revoked
		// there, say): renew it and try once more.
		if resp, err = t.retry(r, resp, tok); err != nil {
			return nil, err
		}
	}
	// A POST's answer is one response (JSON, or an SSE stream of that
	// request's messages); a GET is the long-lived stream, whose events
	// the SDK bounds one by one (MaxEventSize).
	if r.Method == http.MethodPost && t.max > 0 {
		resp.Body = &capped{r: resp.Body, left: t.max}
	}
	// The response stream of a call's POST carries what the server sends
	// about that call: tag it with the call's route (routes.go).
	if rt := routeOf(r.Context()); rt != nil && r.Method == http.MethodPost && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = tagStream(resp.Body, rt.id)
	}
	return resp, nil
}

// retry sends r again with a renewed token after the server refused tok,
// or returns its refusal when there is no other token.
func (t *injector) retry(r *http.Request, refused *http.Response, tok string) (*http.Response, error) {
	next, err := t.tokens.renew(r.Context(), tok)
	if err != nil || next == tok {
		if err != nil {
			_ = refused.Body.Close()
			return nil, err
		}
		return refused, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(refused.Body, 64<<10))
	_ = refused.Body.Close()
	again := r.Clone(r.Context())
	if r.GetBody != nil {
		if again.Body, err = r.GetBody(); err != nil {
			return nil, err
		}
	}
	setBearer(again, next)
	t.injected(next)
	return t.base.RoundTrip(again)
}

// capped fails a body once it passes its bound, so a server cannot make
// keygate hold an unbounded answer.
type capped struct {
	r    io.ReadCloser
	left int64
}

// errTooLarge is an answer past the server's max_result_bytes.
var errTooLarge = errors.New("the MCP server's answer is larger than its max_result_bytes")

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capped) Close() error { return c.r.Close() }

// transport returns the pool for remote servers: one that connects only
// where the egress policy allows, checked on the address dialled after
// DNS, and one for servers registered with allow_private. Neither uses a
// proxy from the environment or follows redirects.
func (g *Gate) transport(allowPrivate bool) http.RoundTripper {
	g.transportOnce.Do(func() {
		mk := func(control func(context.Context, string, string, syscall.RawConn) error) *http.Transport {
			d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
			if control != nil {
				d.ControlContext = control
			}
			return &http.Transport{Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16,
				IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
		}
		pol := g.opts.Egress
		if pol.What == "" {
			pol = egress.Policy{Allow: pol.Allow, What: "egress.allow, or allow_private on the MCP server"}
		}
		g.public = mk(pol.Control)
		g.private = mk(nil)
	})
	if allowPrivate {
		return g.private
	}
	return g.public
}

// ToolHints is what the detectors read of a tool: whether its results come
// from outside (the server declares openWorldHint true), and whether it
// changes or deletes (destructiveHint true on a tool not read-only, or
// keygate's operator made its calls wait for approval). Only hints a
// server states count: MCP's defaults would mark every tool without
// annotations both.
type ToolHints struct {
	OpenWorld, Destructive bool
}

// hints returns what u's cached tools/list says of tool; a server whose
// tools were never listed declares nothing.
func (u *upstream) hints(tool string) ToolHints {
	if u == nil {
		return ToolHints{}
	}
	h := ToolHints{Destructive: needsApproval(&u.cfg, tool)}
	u.mu.Lock()
	tools := u.tools
	u.mu.Unlock()
	for _, t := range tools {
		if t.Name != tool || t.Annotations == nil {
			continue
		}
		a := t.Annotations
		h.OpenWorld = a.OpenWorldHint != nil && *a.OpenWorldHint
		h.Destructive = h.Destructive || !a.ReadOnlyHint && a.DestructiveHint != nil && *a.DestructiveHint
		break
	}
	return h
}
