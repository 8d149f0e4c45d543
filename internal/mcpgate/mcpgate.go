// Package mcpgate serves the Model Context Protocol through keygate: the
// gateway's /mcp (every MCP server the caller may use, aggregated) and
// /mcp/{server} (one), over the streamable HTTP transport.
//
// The gateway authenticates each HTTP request with the caller's keygate
// key or access token, as for every other endpoint, and hands this package
// the compiled authorization (ServeMCP). From there each JSON-RPC message
// is one list of steps, in the receiving middleware (handle.go):
//
//	tools/list       the tools of every server in scope, filtered by the
//	                 caller's tool: scope, named server__tool at /mcp
//	tools/call       authorize (tool scope) -> admit (the server's per-key
//	resources/read   rate, concurrency and daily calls) -> forward with the
//	prompts/get      server's timeout -> bound the answer's size -> scrub the
//	                 injected credential from it -> record (audit)
//
// A refusal is a JSON-RPC error written in the transport the client used
// (a JSON body or an SSE event), and nothing reaches the server before it.
//
// Tools are named server__tool at /mcp: MCP clients take tool names of
// [A-Za-z0-9_-] (Claude and OpenAI function names allow no "/" or "."),
// so the separator must be one of those; "__" is what other MCP
// aggregators write, and a server name holds no "__" (the admin API
// refuses it), so the first "__" splits a name unambiguously.
//
// Upstream, keygate is one MCP client per registered server, shared by
// every caller: the server's credential is keygate's (a vault secret put
// on each request, or a stdio process's environment), never the caller's
// token, which goes no further than keygate. What a server sends of its
// own accord is tied to the call it is about or goes to no one: progress
// by keygate's own token (progress.go), requests for input by the call's
// result or the call's response stream (input.go, routes.go); list
// changes go to every session that can see the server (listchanged.go).
package mcpgate

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/secret"
)

// ServerConfig is one registered MCP server as this package runs it.
type ServerConfig struct {
	// ID is the registration's id: a server removed and added again under
	// the same name is another server, whose users authorize anew.
	ID        string
	Name      string
	Transport string // http, sse or stdio
	URL       string
	// Auth is none, bearer or header (AuthHeader); Secret names the vault
	// secret holding the credential. Auth oauth connects as each caller's
	// user with the user's own grant (Options.Grants); client-credentials
	// gets keygate's token at TokenURL as ClientID, Secret holding the
	// client secret.
	Auth, AuthHeader, Secret string
	// TokenURL, ClientID and Scopes configure client-credentials.
	TokenURL, ClientID string
	Scopes             []string
	// Command and Env run a stdio server; an Env value secret:NAME is
	// read from the vault.
	Command      []string
	Env          map[string]string
	AllowPrivate bool

	CallTimeout, ConnectTimeout time.Duration
	MaxResultBytes              int64
	// Per key: calls per minute, in flight, per day; 0 is no limit.
	RPM, Concurrency, CallsPerDay int64
	// ToolLimits limit, per key, the calls of the tools each matches, on
	// top of the server's limits (admit).
	ToolLimits []ToolLimit
	// ApprovalRequired are globs of the server's tool names whose calls
	// wait for a person's approval, at most ApprovalTimeout (default 5m).
	ApprovalRequired []string
	ApprovalTimeout  time.Duration
	// ApprovalWebhook, when set, is asked to decide each such call too
	// (approval.go).
	ApprovalWebhook string
}

// ToolLimit limits, per key, the calls of the tools Tool matches (a name
// of the server's own, or a glob such as delete_*, whose tools share the
// limit): per minute, in flight, per day; 0 is no limit.
type ToolLimit struct {
	Tool                     string
	RPM, Concurrency, PerDay int64
}

// Source serves the registered servers and the vault secrets they name;
// internal/gatewaystore implements it over the store and the vault.
type Source interface {
	MCPServers(ctx context.Context) ([]ServerConfig, error)
	Secret(ctx context.Context, name string) (secret.String, error)
}

// AuditRecorder takes audit events; internal/audit's Writer implements it.
type AuditRecorder interface {
	Record(ev audit.Event) error
}

// Options configures a Gate. Zero durations and sizes take the defaults
// noted.
type Options struct {
	Source Source
	Log    *slog.Logger
	Audit  AuditRecorder
	// Limiter counts the servers' per-key limits (the gateway's shared
	// limiter); nil counts them in this process.
	Limiter  limit.Limiter
	Location *time.Location // where calls_per_day days start; nil is UTC
	// ArgsKey keys the HMAC of each call's arguments on the audit trail,
	// so equal arguments can be matched without being readable.
	ArgsKey []byte
	// Leaks, when set, checks each call's arguments and each answer for
	// credentials, as the gateway checks request bodies.
	Leaks *LeakCheck
	// Egress decides which addresses remote servers may resolve to.
	Egress egress.Policy
	// Grants keeps users' grants at servers registered with auth oauth;
	// without it every call to such a server asks the user to authorize.
	Grants Grants
	// Observe, when set, hands every tools/call a key made to the anomaly
	// detectors (keygate's detect engine): server and tool, whether
	// keygate refused it, and what the server declares of the tool.
	Observe func(keyID, client, server, tool string, denied bool, hints ToolHints)
	// Approvals keeps the tool calls that wait for a person (the admin
	// API's approval queue); without it a tool that needs approval is
	// refused.
	Approvals Approvals
	// AskWebhook asks a server's approval webhook about a waiting call
	// (approval.go); nil: approval webhooks are not asked.
	AskWebhook WebhookAsker
	// ApprovalPoll is how often a waiting call reads its approval
	// (default 500ms).
	ApprovalPoll time.Duration
	// MaxSessions bounds the MCP sessions open at once (default 1000),
	// MaxSessionsPerKey those of one key (default 32); SessionTimeout
	// closes a session idle that long (default 30m).
	MaxSessions, MaxSessionsPerKey int
	SessionTimeout                 time.Duration
	// Defaults for servers that set none: CallTimeout 60s,
	// ConnectTimeout 30s, MaxResultBytes 4 MiB.
	CallTimeout, ConnectTimeout time.Duration
	MaxResultBytes              int64
	// MaxRequestBytes bounds a client's request body (default 4 MiB).
	MaxRequestBytes int64
	// WorkDir is where stdio servers run (default: keygate's own).
	WorkDir string
	Version string
	Now     func() time.Time
}

// Gate serves MCP for the gateway.
type Gate struct {
	opts Options

	mu    sync.Mutex
	ups   map[string]*upstream
	views map[string]*view // "" is the aggregate /mcp
	// owners maps a live session id to the key that opened it, to bound
	// sessions per key.
	owners map[string]string

	transportOnce   sync.Once
	public, private http.RoundTripper

	// progress routes the progress notifications of calls in flight back
	// to the client session that asked (progress.go).
	progress progressRoutes
	// routes ties the other messages a server sends about a call to the
	// call (routes.go).
	routes callRoutes
}

// view is one endpoint: /mcp (name "") or /mcp/{name}.
type view struct {
	name    string
	server  *mcp.Server
	handler http.Handler
	// changes and nudgeMu pass servers' list_changed notifications to
	// the sessions that can see them (listchanged.go).
	changes changes
	nudgeMu sync.Mutex
}

// New builds a Gate; call Reload to read the registered servers.
func New(o Options) *Gate {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Limiter == nil {
		o.Limiter = limit.NewMemory()
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.SessionTimeout, 30*time.Minute)
	def(&o.CallTimeout, 60*time.Second)
	def(&o.ConnectTimeout, 30*time.Second)
	def(&o.ApprovalPoll, 500*time.Millisecond)
	if o.MaxResultBytes <= 0 {
		o.MaxResultBytes = 4 << 20
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 4 << 20
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1000
	}
	if o.MaxSessionsPerKey <= 0 {
		o.MaxSessionsPerKey = 32
	}
	return &Gate{opts: o, ups: map[string]*upstream{}, views: map[string]*view{}, owners: map[string]string{}}
}

// Reload reads the registered servers. A server whose registration
// changed or that was removed is disconnected (a stdio server's process
// ends); the others keep their sessions. On failure the current set stays.
func (g *Gate) Reload(ctx context.Context) error {
	cfgs, err := g.opts.Source.MCPServers(ctx)
	if err != nil {
		return err
	}
	next := make(map[string]*upstream, len(cfgs))
	var gone []*upstream
	g.mu.Lock()
	for _, c := range cfgs {
		g.defaults(&c)
		if u, ok := g.ups[c.Name]; ok && sameConfig(u.cfg, c) {
			next[c.Name] = u
			continue
		}
		next[c.Name] = &upstream{cfg: c, g: g}
	}
	for name, u := range g.ups {
		if next[name] != u {
			gone = append(gone, u)
		}
	}
	g.ups = next
	g.mu.Unlock()
	for _, u := range gone {
		u.close()
	}
	return nil
}

// Close ends every upstream session (and stdio process).
func (g *Gate) Close() {
	g.mu.Lock()
	ups := g.ups
	g.ups = map[string]*upstream{}
	g.mu.Unlock()
	for _, u := range ups {
		u.close()
	}
}

func (g *Gate) defaults(c *ServerConfig) {
	if c.CallTimeout <= 0 {
		c.CallTimeout = g.opts.CallTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = g.opts.ConnectTimeout
	}
	if c.MaxResultBytes <= 0 {
		c.MaxResultBytes = g.opts.MaxResultBytes
	}
}

func sameConfig(a, b ServerConfig) bool {
	if len(a.Env) != len(b.Env) || strings.Join(a.Command, "\x00") != strings.Join(b.Command, "\x00") {
		return false
	}
	for k, v := range a.Env {
		if b.Env[k] != v {
			return false
		}
	}
	a.Env, b.Env, a.Command, b.Command = nil, nil, nil, nil
	return a.ID == b.ID && a.TokenURL == b.TokenURL && a.ClientID == b.ClientID && slices.Equal(a.Scopes, b.Scopes) && a.Name == b.Name && a.Transport == b.Transport && a.URL == b.URL && a.Auth == b.Auth && a.AuthHeader == b.AuthHeader &&
		a.Secret == b.Secret && a.AllowPrivate == b.AllowPrivate && a.CallTimeout == b.CallTimeout && a.ConnectTimeout == b.ConnectTimeout &&
		a.MaxResultBytes == b.MaxResultBytes && a.RPM == b.RPM && a.Concurrency == b.Concurrency && a.CallsPerDay == b.CallsPerDay &&
		slices.Equal(a.ApprovalRequired, b.ApprovalRequired) && a.ApprovalTimeout == b.ApprovalTimeout && a.ApprovalWebhook == b.ApprovalWebhook &&
		slices.Equal(a.ToolLimits, b.ToolLimits)
}

// upstream returns the registered server name, or nil.
func (g *Gate) upstream(name string) *upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ups[name]
}

// inView lists the servers of v the caller may reach anything of, by name.
func (g *Gate) inView(v *view, p authz.Principal) []*upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v.name != "" {
		if u := g.ups[v.name]; u != nil && authz.ToolServerAllowed(p, v.name) {
			return []*upstream{u}
		}
		return nil
	}
	out := make([]*upstream, 0, len(g.ups))
	for name, u := range g.ups {
		if authz.ToolServerAllowed(p, name) {
			out = append(out, u)
		}
	}
	sortUpstreams(out)
	return out
}

// caller is who makes an MCP request, as the gateway authenticated it.
type caller struct {
	keyID  string
	user   string // the key's user, "" for a key of no user
	p      authz.Principal
	client string
	leak   leak.Action // the key's own leak action, "" for the policy's
}

type callerKey struct{}

// Path is the gateway path of the aggregated endpoint; PathPrefix starts
// the per-server ones.
const (
	Path       = "/mcp"
	PathPrefix = "/mcp/"
)

// ServeMCP serves one HTTP request to /mcp or /mcp/{server} for a caller
// the gateway authenticated: keyID is its key, userID the user the key
// belongs to ("" for none), p what it may reach, client its address,
// leakAction its key's own leak action ("" for the policy's).
func (g *Gate) ServeMCP(w http.ResponseWriter, r *http.Request, keyID, userID string, p authz.Principal, client, leakAction string) {
	name := strings.TrimPrefix(r.URL.Path, Path)
	name = strings.TrimPrefix(name, "/")
	if name != "" && (strings.Contains(name, "/") || g.upstream(name) == nil || !authz.ToolServerAllowed(p, name)) {
		// The same answer whether the server is missing or out of scope.
		writeHTTPError(w, http.StatusNotFound, CodeInvalidRequest, "no MCP server "+quote(name)+" for this key; GET /mcp serves every server it may use")
		return
	}
	if r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") == "" {
		if msg := g.admitSession(keyID); msg != "" {
			w.Header().Set("Retry-After", "30")
			writeHTTPError(w, http.StatusServiceUnavailable, CodeLimited, msg)
			return
		}
	}
	v := g.view(name)
	// The caller's own credential goes no further: the SDK sees a
	// placeholder, and upstream requests carry only keygate's.
	r = r.Clone(context.WithValue(r.Context(), callerKey{}, &caller{keyID: keyID, user: userID, p: p, client: client, leak: leak.Action(leakAction)}))
	for _, h := range []string{"X-Api-Key", "Api-Key", "Proxy-Authorization", "Cookie"} {
		r.Header.Del(h)
	}
	r.Header.Set("Authorization", "Bearer keygate")
	v.handler.ServeHTTP(w, r)
}

// view returns the endpoint for name, built on first use.
func (g *Gate) view(name string) *view {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.views[name]; ok {
		return v
	}
	v := &view{name: name}
	v.server = mcp.NewServer(&mcp.Implementation{Name: "keygate", Version: g.opts.Version}, &mcp.ServerOptions{
		// list_changed of the servers behind keygate reaches the
		// clients (listchanged.go); their log notifications too (routes.go).
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}, Resources: &mcp.ResourceCapabilities{ListChanged: true},
			Prompts: &mcp.PromptCapabilities{ListChanged: true}, Logging: &mcp.LoggingCapabilities{}},
		Logger: g.opts.Log,
	})
	v.server.AddReceivingMiddleware(g.middleware(v))
	v.server.AddSendingMiddleware(sendAs, g.filterListChanged(v))
	sdk := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return v.server }, &mcp.StreamableHTTPOptions{
		SessionTimeout:      g.opts.SessionTimeout,
		MaxRequestBodyBytes: g.opts.MaxRequestBytes,
		// keygate's gateway decides who may call (the key or token, its
		// networks); the Host check is for servers on a developer's
		// loopback, which keygate's own listener address covers.
		DisableLocalhostProtection: true,
		Logger:                     g.opts.Log,
	})
	// The SDK binds each session to the user that opened it (TokenInfo
	// UserID): a session id alone, leaked, does not let another key in.
	v.handler = auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		c, _ := ctx.Value(callerKey{}).(*caller)
		if c == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: c.keyID, Expiration: g.opts.Now().Add(time.Hour), Extra: map[string]any{"caller": c}}, nil
	}, nil)(sdk)
	g.views[name] = v
	return v
}

// admitSession bounds the sessions open at once, in all and per key, or
// says why a new one is refused.
func (g *Gate) admitSession(keyID string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	live := map[string]bool{}
	for _, v := range g.views {
		for s := range v.server.Sessions() {
			live[s.ID()] = true
		}
	}
	for _, v := range g.views {
		v.forget(live)
	}
	mine := 0
	for id, k := range g.owners {
		if !live[id] {
			delete(g.owners, id)
			continue
		}
		if k == keyID {
			mine++
		}
	}
	switch {
	case len(live) >= g.opts.MaxSessions:
		return "keygate holds as many MCP sessions as it allows; end unused ones (DELETE /mcp with their Mcp-Session-Id) or try again later"
	case mine >= g.opts.MaxSessionsPerKey:
		return "this key holds as many MCP sessions as one key may; end unused ones (DELETE /mcp with their Mcp-Session-Id) or try again later"
	}
	return ""
}

// ownSession records which key opened a session.
func (g *Gate) ownSession(id, keyID string) {
	if id == "" {
		return
	}
	g.mu.Lock()
	g.owners[id] = keyID
	g.mu.Unlock()
}

// argsHMAC is the audit trail's stand-in for a call's arguments.
func (g *Gate) argsHMAC(args []byte) string {
	if len(args) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, g.opts.ArgsKey)
	m.Write(args)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "\"" + strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return '?'
		}
		return r
	}, s) + "\""
}

// errUnavailable is a server that cannot be reached or started.
func errUnavailable(name string, cause error) error {
	return &unavailableError{name: name, cause: cause}
}

type unavailableError struct {
	name  string
	cause error
}

func (e *unavailableError) Error() string {
	return "MCP server " + e.name + " is unavailable: " + e.cause.Error()
}

func (e *unavailableError) Unwrap() error { return e.cause }

// WriteError answers a request the gateway refused before it reached
// ServeMCP (see the package function WriteError).
func (g *Gate) WriteError(w http.ResponseWriter, status int, reason, msg string) {
	WriteError(w, status, reason, msg)
}
