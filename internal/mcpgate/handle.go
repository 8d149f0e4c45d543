package mcpgate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/limit"
)

// The JSON-RPC error codes keygate answers with, besides the standard
// ones: -32602 (invalid params) for a tool, prompt or resource no server
// in the endpoint has, and -32601 (method not found) for what keygate does
// not pass on. Each error's data carries keygate's reason as
// {"reason": "tool_not_allowed"}.
const (
	// CodeForbidden: the caller's scope does not reach the tool, resource
	// or prompt.
	CodeForbidden = -32001
	// CodeLimited: a limit of the server (per key) or of keygate's
	// sessions refused the call; the message says when to retry.
	CodeLimited = -32002
	// CodeUpstream: the server could not be reached, did not answer in
	// time, or answered too much or malformed. Not -32003 or -32004: the
	// Go SDK reads those as its own "client/server is closing" and turns
	// such an answer into a closed connection.
	CodeUpstream = -32011
	// CodeInvalidRequest is JSON-RPC's invalid request.
	CodeInvalidRequest = -32600
)

func rpcError(code int64, reason, msg string) *jsonrpc.Error {
	data, _ := json.Marshal(map[string]string{"reason": reason})
	return &jsonrpc.Error{Code: code, Message: msg, Data: data}
}

// writeHTTPError answers a request refused before any JSON-RPC message
// was read, as a JSON-RPC error with no id.
func writeHTTPError(w http.ResponseWriter, status int, code int64, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": code, "message": msg}})
	_, _ = w.Write(b)
}

// WriteError answers an HTTP request to the MCP endpoints that keygate
// refused before it reached them (authentication, the key's scope or
// risk rules), as a JSON-RPC error; reason is keygate's denial code.
func WriteError(w http.ResponseWriter, status int, reason, msg string) {
	code := int64(CodeForbidden)
	switch {
	case status == http.StatusTooManyRequests:
		code = CodeLimited
	case status >= 500:
		code = CodeUpstream
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		code = CodeInvalidRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": code, "message": msg, "data": map[string]string{"reason": reason}}})
	_, _ = w.Write(b)
}

func callerOf(req mcp.Request) *caller {
	ex := req.GetExtra()
	if ex == nil || ex.TokenInfo == nil {
		return nil
	}
	c, _ := ex.TokenInfo.Extra["caller"].(*caller)
	return c
}

// middleware answers every request of a session at view v: the listings
// and calls keygate decides and forwards, and the protocol's own
// (initialize, ping) through the SDK.
func (g *Gate) middleware(v *view) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			c := callerOf(req)
			if c == nil {
				if strings.HasPrefix(method, "notifications/") {
					return next(ctx, method, req)
				}
				return nil, rpcError(CodeForbidden, "unauthenticated", "keygate could not tell who sent this request")
			}
			ss, _ := req.GetSession().(*mcp.ServerSession)
			v.seen(ss, c)
			switch method {
			case "initialize":
				res, err := next(ctx, method, req)
				if err == nil {
					g.ownSession(req.GetSession().ID(), c.keyID)
				}
				return res, err
			case "tools/list":
				return g.listTools(ctx, v, c)
			case "tools/call":
				ctr := req.(*mcp.CallToolRequest)
				return g.callTool(ctx, v, c, ctr.Params, ctr.Session)
			case "prompts/list":
				return g.listPrompts(ctx, v, c)
			case "prompts/get":
				return g.getPrompt(ctx, v, c, req.(*mcp.GetPromptRequest).Params, ss)
			case "resources/list":
				return g.listResources(ctx, v, c)
			case "resources/templates/list":
				return g.listTemplates(ctx, v, c)
			case "resources/read":
				return g.readResource(ctx, v, c, req.(*mcp.ReadResourceRequest).Params, ss)
			case "ping", "notifications/initialized", "notifications/cancelled", "notifications/roots/list_changed",
				// A client's log level, and its stream of list_changed
				// notifications (protocol 2026-07-28), are the SDK's.
				"logging/setLevel", "subscriptions/listen":
				if p, ok := req.GetParams().(*mcp.SetLoggingLevelParams); ok && method == "logging/setLevel" {
					v.setLevel(ss, p.Level)
				}
				return next(ctx, method, req)
			}
			if strings.HasPrefix(method, "notifications/") {
				return next(ctx, method, req)
			}
			return nil, rpcError(jsonrpc.CodeMethodNotFound, "method_not_served", "keygate does not pass "+quote(method)+" on to MCP servers")
		}
	}
}

// split names the server and the server's own name of a tool or prompt
// as the client wrote it: server__name at /mcp, name at /mcp/{server}.
func split(v *view, name string) (server, local string, ok bool) {
	if v.name != "" {
		return v.name, name, name != ""
	}
	server, local, ok = strings.Cut(name, "__")
	return server, local, ok && server != "" && local != ""
}

func join(v *view, server, name string) string {
	if v.name != "" {
		return name
	}
	return server + "__" + name
}

func (g *Gate) listTools(ctx context.Context, v *view, c *caller) (*mcp.ListToolsResult, error) {
	out := &mcp.ListToolsResult{Tools: []*mcp.Tool{}}
	for _, u := range g.inView(v, c.p) {
		tools, err := u.listToolsAs(ctx, c)
		if err != nil {
			if v.name != "" {
				return nil, g.upstreamError(u, err)
			}
			// One failing server does not hide the others' tools; one
			// the caller's user has not authorized is left out quietly.
			var are *AuthRequiredError
			if errors.As(err, &are) {
				g.opts.Log.Debug("leaving out the tools of an MCP server the caller's user has not authorized", "mcp_server", u.cfg.Name)
				continue
			}
			g.opts.Log.Warn("listing an MCP server's tools failed; leaving them out", "mcp_server", u.cfg.Name, "err", u.scrubErr(err))
			continue
		}
		for _, t := range tools {
			if authz.Authorize(c.p, authz.Target{Kind: authz.Tool, Provider: u.cfg.Name, Model: t.Name}) != nil {
				continue
			}
			cp := *t
			cp.Name = join(v, u.cfg.Name, t.Name)
			out.Tools = append(out.Tools, &cp)
		}
	}
	return out, nil
}

// listToolsAs lists the tools of u as caller c sees them: an OAuth
// server's as the caller's user.
func (u *upstream) listToolsAs(ctx context.Context, c *caller) ([]*mcp.Tool, error) {
	cu, err := u.as(c)
	if err != nil {
		return nil, err
	}
	tools, err := cu.listTools(ctx)
	if are := cu.authRequired(); err != nil && are != nil {
		return nil, are
	}
	return tools, err
}

// listTools returns the server's tools, from the cache while the server
// has not said they changed.
func (u *upstream) listTools(ctx context.Context) ([]*mcp.Tool, error) {
	u.mu.Lock()
	tools := u.tools
	u.mu.Unlock()
	if tools != nil {
		return tools, nil
	}
	s, err := u.session(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.CallTimeout)
	defer cancel()
	tools = []*mcp.Tool{}
	for t, err := range s.Tools(ctx, nil) {
		if err != nil {
			u.failed(s, err)
			return nil, err
		}
		if len(tools) >= 10000 {
			break
		}
		tools = append(tools, u.scrubTool(t))
	}
	u.mu.Lock()
	if u.sess == s {
		u.tools = tools
	}
	u.mu.Unlock()
	return tools, nil
}

// scrubTool removes injected credentials from a tool's description.
func (u *upstream) scrubTool(t *mcp.Tool) *mcp.Tool {
	if u.scrubber().Empty() {
		return t
	}
	cp := *t
	cp.Description, cp.Title = u.scrubber().String(cp.Description), u.scrubber().String(cp.Title)
	return &cp
}

// failed drops the session after a transport failure (not after the
// server's own JSON-RPC error), so the next call reconnects.
func (u *upstream) failed(s *mcp.ClientSession, err error) {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return
	}
	if errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, errTooLarge) || errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection closed") {
		u.drop(s)
	}
}

// call is one forwarded request: the steps every tools/call, prompts/get
// and resources/read takes.
type call struct {
	c      *caller
	u      *upstream
	method string
	item   string // the tool or prompt name, or the resource URI, as the server names it
	target authz.Target
	args   []byte // as the caller sent them
	send   []byte // as they go to the server (redacted when the leak check says)
	start  time.Time
	// approval is the approval a tool call waited for and who gave it.
	approval, approvedBy string
	// ss is the calling client's session: where the server's requests
	// for input and its notifications about the call go.
	ss *mcp.ServerSession
}

// sendFunc sends a call to the server; more, after the first round, holds
// the client's answers to the server's input requests.
type sendFunc func(ctx context.Context, s *mcp.ClientSession, more *inputReply) (mcp.Result, error)

// withInput puts the answers to a server's input requests on a call.
func withInput(more *inputReply) (mcp.InputResponseMap, string) {
	if more == nil {
		return nil, ""
	}
	return more.Responses, more.State
}

func (g *Gate) callTool(ctx context.Context, v *view, c *caller, p *mcp.CallToolParamsRaw, ss *mcp.ServerSession) (mcp.Result, error) {
	server, tool, ok := split(v, p.Name)
	cl := &call{c: c, method: "tools/call", item: tool, args: p.Arguments, start: time.Now(), ss: ss,
		target: authz.Target{Kind: authz.Tool, Provider: server, Model: tool}}
	return g.forward(ctx, cl, ok, func(ctx context.Context, s *mcp.ClientSession, more *inputReply) (mcp.Result, error) {
		// A progress token is the client's own: the server sees one of
		// keygate's, unique across every client on the shared session,
		// and its progress goes back to this client under the client's.
		meta, done := g.progress.route(ctx, v.withLevel(ss, p.Meta), ss, cl.u)
		defer done()
		in, state := withInput(more)
		return s.CallTool(ctx, &mcp.CallToolParams{Meta: meta, Name: tool, Arguments: json.RawMessage(cl.send), InputResponses: in, RequestState: state})
	}, func(b []byte) (mcp.Result, error) {
		var r mcp.CallToolResult
		err := json.Unmarshal(b, &r)
		return &r, err
	})
}

func (g *Gate) getPrompt(ctx context.Context, v *view, c *caller, p *mcp.GetPromptParams, ss *mcp.ServerSession) (mcp.Result, error) {
	server, name, ok := split(v, p.Name)
	args, _ := json.Marshal(p.Arguments)
	cl := &call{c: c, method: "prompts/get", item: name, args: args, start: time.Now(), ss: ss,
		target: authz.Target{Kind: authz.Tool, Provider: server, Model: authz.Prompts}}
	return g.forward(ctx, cl, ok, func(ctx context.Context, s *mcp.ClientSession, more *inputReply) (mcp.Result, error) {
		args := p.Arguments
		if !bytes.Equal(cl.send, cl.args) {
			args = nil
			if err := json.Unmarshal(cl.send, &args); err != nil {
				return nil, err
			}
		}
		in, state := withInput(more)
		return s.GetPrompt(ctx, &mcp.GetPromptParams{Meta: v.withLevel(ss, p.Meta), Name: name, Arguments: args, InputResponses: in, RequestState: state})
	}, func(b []byte) (mcp.Result, error) {
		var r mcp.GetPromptResult
		err := json.Unmarshal(b, &r)
		return &r, err
	})
}

func (g *Gate) readResource(ctx context.Context, v *view, c *caller, p *mcp.ReadResourceParams, ss *mcp.ServerSession) (mcp.Result, error) {
	server := v.name
	if server == "" {
		// At /mcp a resource belongs to the server that listed it.
		for _, u := range g.inView(v, c.p) {
			if cu, err := u.as(c); err == nil {
				u = cu
			}
			u.mu.Lock()
			has := u.resources[p.URI]
			u.mu.Unlock()
			if has {
				server = u.cfg.Name
				break
			}
		}
	}
	cl := &call{c: c, method: "resources/read", item: p.URI, start: time.Now(), ss: ss,
		target: authz.Target{Kind: authz.Tool, Provider: server, Model: authz.Resources}}
	return g.forward(ctx, cl, server != "", func(ctx context.Context, s *mcp.ClientSession, more *inputReply) (mcp.Result, error) {
		in, state := withInput(more)
		return s.ReadResource(ctx, &mcp.ReadResourceParams{Meta: v.withLevel(ss, p.Meta), URI: p.URI, InputResponses: in, RequestState: state})
	}, func(b []byte) (mcp.Result, error) {
		var r mcp.ReadResourceResult
		err := json.Unmarshal(b, &r)
		return &r, err
	})
}

// forward runs a call's steps: authorize, admit, send with the server's
// timeout, bound and scrub the answer, record. Nothing reaches the server
// before authorization and admission pass.
func (g *Gate) forward(ctx context.Context, cl *call, named bool, send sendFunc, decode func([]byte) (mcp.Result, error)) (mcp.Result, error) {
	server := cl.target.Provider
	if !named || (g.upstream(server) == nil) {
		what := "tool"
		switch cl.method {
		case "prompts/get":
			what = "prompt"
		case "resources/read":
			what = "resource"
		}
		err := rpcError(jsonrpc.CodeInvalidParams, "unknown_"+what, fmt.Sprintf("no %s %s here: list them first (%s names them server__name at /mcp)", what, quote(cl.item), what+"s"))
		g.record(cl, "deny", "unknown_"+what, 0, nil)
		return nil, err
	}
	cl.u = g.upstream(server)
	if d := authz.Authorize(cl.c.p, cl.target); d != nil {
		g.record(cl, "deny", d.Code, 0, nil)
		return nil, rpcError(CodeForbidden, d.Code, d.Message)
	}
	// An OAuth server is reached as the caller's user.
	cu, err := cl.u.as(cl.c)
	if err != nil {
		g.record(cl, "deny", "authorization_required", 0, nil)
		return nil, g.upstreamError(cl.u, err)
	}
	cl.u = cu
	toSend, leaks, refusal := g.checkArgs(cl)
	if leaks != nil {
		g.leakFound(cl)
	}
	if refusal != nil {
		g.record(cl, "deny", "credential_in_request", 0, leaks)
		return nil, refusal
	}
	cl.send = toSend
	var more *inputReply
	if err := g.approve(ctx, cl); err != nil {
		return nil, err
	}
	_, release, err := g.admit(ctx, cl)
	if err != nil {
		g.record(cl, "deny", reasonOf(err), 0, leaks)
		return nil, err
	}
	defer release()
	s, err := cl.u.session(ctx)
	if err != nil {
		var are *AuthRequiredError
		if errors.As(err, &are) {
			g.record(cl, "deny", "authorization_required", 0, nil)
		} else {
			g.record(cl, "error", "upstream_unavailable", 0, nil)
		}
		return nil, g.upstreamError(cl.u, err)
	}
	// The call's timeout bounds every round of it, the client's answers to
	// the server's input requests included.
	cctx, cancel := context.WithTimeout(ctx, cl.u.cfg.CallTimeout)
	defer cancel()
	cctx, unroute := g.routes.open(cctx, cl)
	defer unroute()
	// info describes the server's requests for input, for the audit event.
	var info map[string]string
	rec := func(decision, reason string, size int) {
		f := mergeFields(mergeFields(nil, leaks), info)
		if asked := routeOf(cctx).askedOf(); len(asked) > 0 && f["input_requested"] == "" {
			f = mergeFields(f, map[string]string{"input_requested": strings.Join(asked, ",")})
		}
		g.record(cl, decision, reason, size, f)
	}
	for round := 1; ; round++ {
		out, size, err := g.exchange(ctx, cctx, cl, s, send, decode, more, &leaks)
		if err != nil {
			return nil, err
		}
		reqs, state, needs := inputOf(out)
		if !needs {
			if r, ok := out.(*mcp.CallToolResult); ok && r.IsError {
				info = mergeFields(info, map[string]string{"tool_error": "true"})
			}
			rec("allow", "", size)
			return out, nil
		}
		// The server needs the client's input before it answers (input.go).
		asked := make([]string, 0, len(reqs))
		for _, id := range slices.Sorted(maps.Keys(reqs)) {
			asked = append(asked, inputMethod(reqs[id]))
		}
		info = mergeFields(info, map[string]string{"input_requested": strings.Join(asked, ","), "input_rounds": strconv.Itoa(round)})
		if err := g.canAsk(cl, reqs); err != nil {
			rec("deny", "client_capability_missing", size)
			return nil, err
		}
		if len(reqs) == 0 || round >= maxInputRounds {
			rec("error", "upstream_failed", size)
			return nil, rpcError(CodeUpstream, "upstream_failed", "MCP server "+cl.u.cfg.Name+" kept asking for input without answering; try again later")
		}
		answers, f, err := g.askCaller(cctx, cl, reqs)
		leaks = mergeFields(leaks, f)
		if err != nil {
			rec("error", reasonOf(err), size)
			return nil, err
		}
		more = &inputReply{Responses: answers, State: state}
	}
}

// reasonOf is the reason of a keygate refusal, for the audit trail.
func reasonOf(err error) string {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) && len(werr.Data) > 0 {
		var d struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(werr.Data, &d) == nil && d.Reason != "" {
			return d.Reason
		}
	}
	return "refused"
}

// exchange sends one round of a call and checks the answer: the server's
// errors, the size bound, the injected credential and the leak check. A
// failure is recorded and returned as the caller's JSON-RPC error.
func (g *Gate) exchange(ctx, cctx context.Context, cl *call, s *mcp.ClientSession, send sendFunc, decode func([]byte) (mcp.Result, error), more *inputReply, leaks *map[string]string) (mcp.Result, int, error) {
	server := cl.target.Provider
	out, err := send(cctx, s, more)
	if err != nil {
		if rt := routeOf(cctx); rt != nil && rt.refusal() != nil {
			// The server asked the client for what it cannot give, and
			// failed for it: the client hears why from keygate.
			g.record(cl, "deny", "client_capability_missing", 0, map[string]string{"input_requested": strings.Join(rt.askedOf(), ",")})
			return nil, 0, rt.refusal()
		}
		if are := cl.u.authRequired(); are != nil {
			// The user's authorization ended during the session (revoked,
			// or its refresh refused).
			cl.u.drop(s)
			g.record(cl, "deny", "authorization_required", 0, nil)
			return nil, 0, authError(are)
		}
		cl.u.failed(s, err)
		var werr *jsonrpc.Error
		if errors.As(err, &werr) {
			// The server's own refusal goes back as it said it, less any
			// credential it echoed.
			g.record(cl, "error", "upstream_error", 0, nil)
			return nil, 0, &jsonrpc.Error{Code: werr.Code, Message: cl.u.scrubber().String(werr.Message)}
		}
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s (the server's call_timeout)", cl.u.cfg.CallTimeout)
		}
		g.record(cl, "error", "upstream_failed", 0, nil)
		return nil, 0, g.upstreamError(cl.u, err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		g.record(cl, "error", "upstream_malformed", 0, nil)
		return nil, 0, g.upstreamError(cl.u, err)
	}
	if int64(len(b)) > cl.u.cfg.MaxResultBytes {
		g.record(cl, "error", "result_too_large", len(b), nil)
		return nil, 0, g.upstreamError(cl.u, errTooLarge)
	}
	if cl.u.scrubber().Contains(b) {
		cl.u.scrubber().Bytes(b)
		if out, err = decode(b); err != nil {
			g.record(cl, "error", "upstream_malformed", len(b), nil)
			return nil, 0, g.upstreamError(cl.u, err)
		}
		g.opts.Log.Warn("an MCP server sent back the credential keygate injected; it was removed", "mcp_server", server)
	}
	if checked, found := g.checkResult(cl, b); found != nil {
		if *leaks == nil {
			g.leakFound(cl)
		}
		if !bytes.Equal(checked, b) {
			if out, err = decode(checked); err != nil {
				g.record(cl, "error", "upstream_malformed", len(b), nil)
				return nil, 0, g.upstreamError(cl.u, err)
			}
		}
		*leaks = mergeFields(*leaks, found)
	}
	return out, len(b), nil
}

// admit reserves the server's per-key limits for one call, and those of
// the tool limits that match a tools/call, in one step: a refusal by any
// takes nothing from the others. release gives back the concurrency slots.
func (g *Gate) admit(ctx context.Context, cl *call) (limit.Decision, func(), error) {
	cfg := cl.u.cfg
	prefix := "mcp:" + cl.c.keyID + ":" + cfg.Name + ":"
	var checks []limit.Check
	// what names each check's limit for a refusal.
	var what []string
	add := func(key string, n int64, kind string, about string) {
		if n <= 0 {
			return
		}
		c := limit.Check{Key: key, Limit: n, Cost: 1}
		switch kind {
		case "rpm":
			c.Kind, c.Period = limit.Rate, time.Minute
		case "concurrency":
			c.Kind = limit.Concurrency
		case "day":
			c.Kind, c.Calendar, c.Location = limit.Quota, limit.Day, g.opts.Location
		}
		checks = append(checks, c)
		what = append(what, about)
	}
	add(prefix+"rpm", cfg.RPM, "rpm", fmt.Sprintf("this key has used its %d calls per minute on MCP server %s", cfg.RPM, cfg.Name))
	add(prefix+"conc", cfg.Concurrency, "concurrency", fmt.Sprintf("this key has its %d calls in flight on MCP server %s", cfg.Concurrency, cfg.Name))
	add(prefix+"day", cfg.CallsPerDay, "day", fmt.Sprintf("this key has used its %d calls per day on MCP server %s", cfg.CallsPerDay, cfg.Name))
	if cl.method == "tools/call" {
		for _, tl := range cfg.ToolLimits {
			if ok, _ := path.Match(tl.Tool, cl.item); !ok {
				continue
			}
			// A glob's tools share its limit: the key is the pattern's.
			tp := prefix + "tool:" + tl.Tool + ":"
			rule := ""
			if tl.Tool != cl.item {
				rule = " (shared by the tools matching " + tl.Tool + ")"
			}
			tool := "tool " + cl.item + " of MCP server " + cfg.Name
			add(tp+"rpm", tl.RPM, "rpm", fmt.Sprintf("this key has used its %d calls per minute of %s%s", tl.RPM, tool, rule))
			add(tp+"conc", tl.Concurrency, "concurrency", fmt.Sprintf("this key has its %d calls of %s in flight%s", tl.Concurrency, tool, rule))
			add(tp+"day", tl.PerDay, "day", fmt.Sprintf("this key has used its %d calls per day of %s%s", tl.PerDay, tool, rule))
		}
	}
	if len(checks) == 0 {
		return limit.Decision{Allowed: true}, func() {}, nil
	}
	d, err := g.opts.Limiter.Admit(ctx, checks)
	if err != nil {
		// Limits fail closed.
		return d, nil, rpcError(CodeLimited, "limits_unavailable", "keygate could not check this server's limits right now; try again shortly")
	}
	if !d.Allowed {
		msg := what[d.Denied]
		if d.RetryAfter > 0 {
			msg += fmt.Sprintf("; retry in %ds", int64(math.Ceil(d.RetryAfter.Seconds())))
		} else if d.RetryAfter == 0 {
			msg += "; retry when a call ends"
		}
		reason := "limit_exceeded"
		if strings.HasPrefix(checks[d.Denied].Key, prefix+"tool:") {
			reason = "tool_limit_exceeded"
		}
		return d, nil, rpcError(CodeLimited, reason, msg)
	}
	actual := make([]int64, len(checks))
	for i := range actual {
		actual[i] = 1
	}
	return d, func() { _ = g.opts.Limiter.Settle(context.WithoutCancel(ctx), d.Reservation, actual) }, nil
}

// upstreamError is what a caller is told of a server's failure: which
// server, and what kind of failure, never the address or credential.
func (g *Gate) upstreamError(u *upstream, err error) error {
	var are *AuthRequiredError
	if errors.As(err, &are) {
		return authError(are)
	}
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return &jsonrpc.Error{Code: werr.Code, Message: u.scrubber().String(werr.Message)}
	}
	g.opts.Log.Warn("MCP server call failed", "mcp_server", u.cfg.Name, "err", u.scrubErr(err))
	msg := "MCP server " + u.cfg.Name + " could not be reached or did not answer properly; try again later"
	switch {
	case errors.Is(err, errTooLarge):
		msg = "MCP server " + u.cfg.Name + " answered with more than its max_result_bytes; keygate did not pass it on"
	case strings.Contains(err.Error(), "call_timeout"), errors.Is(err, context.DeadlineExceeded):
		msg = "MCP server " + u.cfg.Name + " did not answer within its call_timeout"
	}
	return rpcError(CodeUpstream, "upstream_failed", msg)
}

// record puts one call on the audit trail: who, which server and item,
// the decision and why, how long it took, how large the answer was, and
// the arguments as an HMAC, never in clear.
func (g *Gate) record(cl *call, decision, reason string, size int, extra map[string]string) {
	if g.opts.Observe != nil && cl.method == "tools/call" && cl.c.keyID != "" {
		g.opts.Observe(cl.c.keyID, cl.c.client, cl.target.Provider, cl.item, decision != "allow", cl.u.hints(cl.item))
	}
	if g.opts.Audit == nil {
		return
	}
	f := map[string]string{
		"mcp_server": cl.target.Provider, "method": cl.method,
		"duration_ms":  strconv.FormatFloat(float64(time.Since(cl.start).Microseconds())/1000, 'f', 3, 64),
		"result_bytes": strconv.Itoa(size),
	}
	switch cl.method {
	case "resources/read":
		f["resource"] = cl.item
	case "prompts/get":
		f["prompt"] = cl.item
	default:
		f["tool"] = cl.item
	}
	if h := g.argsHMAC(cl.args); h != "" {
		f["args_hmac"] = h
	}
	if cl.c.user != "" {
		f["user"] = cl.c.user // whose authorization an OAuth server was called with
	}
	if cl.approval != "" {
		f["approval"], f["approved_by"] = cl.approval, cl.approvedBy
	}
	for k, v := range extra {
		f[k] = v
	}
	ev := audit.Event{Time: cl.start.UTC(), Type: "mcp.call", KeyID: cl.c.keyID, Client: cl.c.client,
		Resource: "mcp " + cl.target.Provider + "/" + cl.item, Decision: decision, Fields: f}
	if reason != "" {
		ev.Reasons = []string{reason}
	}
	if err := g.opts.Audit.Record(ev); err != nil {
		g.opts.Log.Error("could not record an MCP call in the audit trail", "mcp_server", cl.target.Provider, "err", err)
	}
}

func (g *Gate) listPrompts(ctx context.Context, v *view, c *caller) (*mcp.ListPromptsResult, error) {
	out := &mcp.ListPromptsResult{Prompts: []*mcp.Prompt{}}
	for _, u := range g.inView(v, c.p) {
		if authz.Authorize(c.p, authz.Target{Kind: authz.Tool, Provider: u.cfg.Name, Model: authz.Prompts}) != nil {
			continue
		}
		s, err := u.sessionAs(ctx, c)
		if err == nil {
			lctx, cancel := context.WithTimeout(ctx, u.cfg.CallTimeout)
			for p, perr := range s.Prompts(lctx, nil) {
				if perr != nil {
					err = perr
					break
				}
				cp := *p
				cp.Name = join(v, u.cfg.Name, p.Name)
				cp.Description = u.scrubber().String(cp.Description)
				out.Prompts = append(out.Prompts, &cp)
			}
			cancel()
		}
		if err != nil {
			if v.name != "" {
				return nil, g.upstreamError(u, err)
			}
			g.opts.Log.Warn("listing an MCP server's prompts failed; leaving them out", "mcp_server", u.cfg.Name, "err", u.scrubErr(err))
		}
	}
	return out, nil
}

func (g *Gate) listResources(ctx context.Context, v *view, c *caller) (*mcp.ListResourcesResult, error) {
	out := &mcp.ListResourcesResult{Resources: []*mcp.Resource{}}
	for _, u := range g.inView(v, c.p) {
		if authz.Authorize(c.p, authz.Target{Kind: authz.Tool, Provider: u.cfg.Name, Model: authz.Resources}) != nil {
			continue
		}
		cu, err := u.as(c)
		if err != nil {
			if v.name != "" {
				return nil, g.upstreamError(u, err)
			}
			continue
		}
		u := cu
		s, err := u.session(ctx)
		seen := map[string]bool{}
		if err == nil {
			lctx, cancel := context.WithTimeout(ctx, u.cfg.CallTimeout)
			for r, rerr := range s.Resources(lctx, nil) {
				if rerr != nil {
					err = rerr
					break
				}
				if len(seen) >= 10000 {
					break
				}
				seen[r.URI] = true
				out.Resources = append(out.Resources, r)
			}
			cancel()
		}
		if err != nil {
			if v.name != "" {
				return nil, g.upstreamError(u, err)
			}
			g.opts.Log.Warn("listing an MCP server's resources failed; leaving them out", "mcp_server", u.cfg.Name, "err", u.scrubErr(err))
			continue
		}
		u.mu.Lock()
		u.resources = seen
		u.mu.Unlock()
	}
	return out, nil
}

func (g *Gate) listTemplates(ctx context.Context, v *view, c *caller) (*mcp.ListResourceTemplatesResult, error) {
	out := &mcp.ListResourceTemplatesResult{ResourceTemplates: []*mcp.ResourceTemplate{}}
	if v.name == "" {
		// A template's URIs name no server, so /mcp cannot route reads of
		// them; /mcp/{server} serves them.
		return out, nil
	}
	for _, u := range g.inView(v, c.p) {
		if authz.Authorize(c.p, authz.Target{Kind: authz.Tool, Provider: u.cfg.Name, Model: authz.Resources}) != nil {
			continue
		}
		s, err := u.sessionAs(ctx, c)
		if err != nil {
			return nil, g.upstreamError(u, err)
		}
		lctx, cancel := context.WithTimeout(ctx, u.cfg.CallTimeout)
		for t, terr := range s.ResourceTemplates(lctx, nil) {
			if terr != nil {
				cancel()
				return nil, g.upstreamError(u, terr)
			}
			out.ResourceTemplates = append(out.ResourceTemplates, t)
		}
		cancel()
	}
	return out, nil
}

// sessionAs is the session of u that serves caller c.
func (u *upstream) sessionAs(ctx context.Context, c *caller) (*mcp.ClientSession, error) {
	cu, err := u.as(c)
	if err != nil {
		return nil, err
	}
	return cu.session(ctx)
}

func sortUpstreams(us []*upstream) {
	slices.SortFunc(us, func(a, b *upstream) int { return strings.Compare(a.cfg.Name, b.cfg.Name) })
}
