package mcpgate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"slices"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// callRoutes ties what a server sends of its own accord to the call it is
// about. Every forwarded call has a route, with a random id, for as long
// as it runs. The route rides in the call's context, which the SDK's
// streamable client uses for the call's POST; keygate's transport
// (injector) sees it there and tags each message the server sends on that
// POST's response stream (its requests, its log and resource
// notifications) with the route's id under routeMetaKey. The id is never
// sent to the server, so a server cannot name another call's route, and a
// message on any other stream (the standalone GET stream, a stdio pipe)
// carries no route and reaches no client.
type callRoutes struct {
	m sync.Map // id -> *callRoute
}

// callRoute is one call in flight: its caller's request (whose stream the
// client reads), and the call.
type callRoute struct {
	id  string
	ctx context.Context
	cl  *call
	// refused is why keygate refused a request of the server for this
	// call's client: the client hears it if the call fails.
	mu      sync.Mutex
	refused error
	// asked lists what the server asked the client on the call's stream,
	// for the call's audit event.
	asked []string
}

func (rt *callRoute) ask(method string) {
	rt.mu.Lock()
	rt.asked = append(rt.asked, method)
	rt.mu.Unlock()
}

func (rt *callRoute) askedOf() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.asked)
}

func (rt *callRoute) refuse(err error) error {
	rt.mu.Lock()
	if rt.refused == nil {
		rt.refused = err
	}
	rt.mu.Unlock()
	return err
}

func (rt *callRoute) refusal() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.refused
}

type routeKey struct{}

// routeMetaKey carries a call's route on a message from its server.
const routeMetaKey = "io.keygate/call"

// open registers a route for cl; ctx (bounded by the call's timeout)
// carries it. close removes it: later messages of the server go nowhere.
func (r *callRoutes) open(ctx context.Context, cl *call) (context.Context, func()) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	rt := &callRoute{id: hex.EncodeToString(b[:]), cl: cl}
	ctx = context.WithValue(ctx, routeKey{}, rt)
	rt.ctx = ctx
	r.m.Store(rt.id, rt)
	return ctx, func() { r.m.Delete(rt.id) }
}

// find returns the route a message from u names, if it is a call to u in
// flight, and removes the tag from the message's _meta.
func (r *callRoutes) find(u *upstream, meta mcp.Meta) *callRoute {
	id, _ := meta[routeMetaKey].(string)
	delete(meta, routeMetaKey)
	if id == "" {
		return nil
	}
	v, ok := r.m.Load(id)
	if !ok {
		return nil
	}
	rt := v.(*callRoute)
	if rt.cl.u != u || rt.ctx.Err() != nil {
		return nil
	}
	return rt
}

func routeOf(ctx context.Context) *callRoute {
	rt, _ := ctx.Value(routeKey{}).(*callRoute)
	return rt
}

// taggedMethods are the messages a server sends on a call's stream that
// keygate passes to the call's client.
var taggedMethods = map[string]bool{
	"sampling/createMessage": true, "elicitation/create": true, "roots/list": true,
	"notifications/message": true, "notifications/resources/updated": true,
}

// tagStream returns body (an SSE stream of a call's POST) with every
// message in taggedMethods tagged with the route id.
func tagStream(body io.ReadCloser, id string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReaderSize(body, 64<<10)
		var event [][]byte
		flush := func() error {
			for _, l := range tagEvent(event, id) {
				if _, err := pw.Write(l); err != nil {
					return err
				}
			}
			event = event[:0]
			return nil
		}
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				event = append(event, line)
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					if ferr := flush(); ferr != nil {
						_ = body.Close()
						return
					}
				}
			}
			if err != nil {
				_ = flush()
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return &pipeBody{PipeReader: pr, src: body}
}

type pipeBody struct {
	*io.PipeReader
	src io.Closer
}

func (p *pipeBody) Close() error {
	_ = p.PipeReader.Close()
	return p.src.Close()
}

// tagEvent returns the lines of one SSE event, its data rewritten with
// the route's tag when it is a message keygate routes.
func tagEvent(lines [][]byte, id string) [][]byte {
	var data []byte
	n := 0
	for _, l := range lines {
		if v, ok := bytes.CutPrefix(l, []byte("data:")); ok {
			if n > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimRight(bytes.TrimPrefix(v, []byte(" ")), "\r\n")...)
			n++
		}
	}
	// Most events are the call's answer: leave them unparsed.
	if n == 0 || !bytes.Contains(data, []byte(`"method"`)) {
		return lines
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(data, &msg) != nil {
		return lines
	}
	var method string
	if json.Unmarshal(msg["method"], &method) != nil || !taggedMethods[method] {
		return lines
	}
	params := map[string]json.RawMessage{}
	if len(msg["params"]) > 0 && json.Unmarshal(msg["params"], &params) != nil {
		return lines
	}
	meta := map[string]any{}
	if len(params["_meta"]) > 0 && json.Unmarshal(params["_meta"], &meta) != nil {
		return lines
	}
	meta[routeMetaKey] = id
	params["_meta"], _ = json.Marshal(meta)
	msg["params"], _ = json.Marshal(params)
	b, err := json.Marshal(msg)
	if err != nil {
		return lines
	}
	out := make([][]byte, 0, len(lines))
	for _, l := range lines {
		if !bytes.HasPrefix(l, []byte("data:")) && len(bytes.TrimRight(l, "\r\n")) > 0 {
			out = append(out, l)
		}
	}
	out = append(out, append(append([]byte("data: "), b...), '\n'), []byte("\n"))
	return out
}

// serverRequest answers a request an older server sent on its own
// (sampling/createMessage, elicitation/create, roots/list): it goes to the
// client of the call whose stream it came on, when that client declared
// it can answer, and the answer goes back after the leak check. A request
// keygate cannot tie to a call gets a JSON-RPC error and reaches no one.
func (u *upstream) serverRequest(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
	var meta mcp.Meta
	if p := req.GetParams(); p != nil {
		meta = p.GetMeta()
	}
	rt := u.g.routes.find(u, meta)
	if rt == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "keygate serves this MCP server to many clients and cannot tell which call this " + method +
			" is about: send it on the response stream of the call it is for, or return it as an input request in the call's result (protocol 2026-07-28)"}
	}
	cl := rt.cl
	rt.ask(method)
	if cl.ss == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "keygate has no client session to ask " + method}
	}
	if err := declared(cl.ss, method); err != nil {
		// The server hears what a client without the capability would
		// say; the client, if the call fails for it, hears why.
		rt.refuse(rpcError(CodeCapability, "client_capability_missing", "MCP server "+cl.u.cfg.Name+" asked for "+method+" while handling this call; "+err.Error()))
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "the calling client cannot answer " + method + ": " + err.Error()}
	}
	// What the server asks is checked like a result before the client
	// sees it: scrubbed of the server's credentials, then the leak check.
	ir, err := u.g.checkQuestion(cl, req.GetParams())
	if err != nil {
		return nil, err
	}
	var res mcp.InputResponse
	switch p := ir.(type) {
	case *mcp.ElicitParams:
		res, err = cl.ss.Elicit(rt.ctx, p)
	case *mcp.CreateMessageWithToolsParams:
		res, err = cl.ss.CreateMessageWithTools(rt.ctx, p)
	case *mcp.ListRootsParams:
		res, err = cl.ss.ListRoots(rt.ctx, p)
	}
	if err != nil {
		return nil, u.g.callerAnswerError(cl, method, err)
	}
	checked, fields, err := u.g.checkAnswer(cl, res)
	if fields != nil {
		u.g.opts.Log.Warn("a client's answer to an MCP server's request held a credential", "mcp_server", u.cfg.Name, "method", method)
	}
	if err != nil {
		return nil, err
	}
	return checked.(mcp.Result), nil
}

// checkQuestion scrubs and leak-checks what a server asks a client, as
// results are, and returns it as the input request it is.
func (g *Gate) checkQuestion(cl *call, p mcp.Params) (mcp.InputRequest, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "keygate could not read this request"}
	}
	if int64(len(b)) > cl.u.cfg.MaxResultBytes {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "this request is larger than the server's max_result_bytes; keygate did not pass it on"}
	}
	cl.u.scrubber().Bytes(b)
	b, _ = g.checkResult(cl, b)
	method := "sampling/createMessage"
	switch p.(type) {
	case *mcp.ElicitParams:
		method = "elicitation/create"
	case *mcp.ListRootsParams:
		method = "roots/list"
	}
	var m mcp.InputRequestMap
	w, _ := json.Marshal(map[string]any{"q": map[string]any{"method": method, "params": json.RawMessage(b)}})
	if err := json.Unmarshal(w, &m); err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "keygate could not read this request: " + err.Error()}
	}
	return m["q"], nil
}

// notifyCaller passes a log or resource notification the server sent on
// a call's stream to the call's client, scrubbed and leak-checked; one
// with no route goes nowhere.
func (u *upstream) notifyCaller(method string, p mcp.Params) {
	meta := p.GetMeta()
	rt := u.g.routes.find(u, meta)
	if rt == nil || rt.cl.ss == nil {
		return
	}
	p.SetMeta(meta)
	b, err := json.Marshal(p)
	if err != nil || int64(len(b)) > rt.cl.u.cfg.MaxResultBytes {
		return
	}
	u.scrubber().Bytes(b)
	b, _ = u.g.checkResult(rt.cl, b)
	switch method {
	case "notifications/message":
		var lp mcp.LoggingMessageParams
		if json.Unmarshal(b, &lp) == nil {
			_ = rt.cl.ss.Log(rt.ctx, &lp)
		}
	case "notifications/resources/updated":
		var rp mcp.ResourceUpdatedNotificationParams
		if json.Unmarshal(b, &rp) == nil {
			// The SDK sends a single session only progress and log
			// notifications; sendAs turns this one into the resource's.
			_ = rt.cl.ss.NotifyProgress(context.WithValue(rt.ctx, sendAsKey{}, &rp), &mcp.ProgressNotificationParams{})
		}
	}
}

type sendAsKey struct{}

// sendAs is a sending middleware of keygate's MCP servers: a notification
// sent with a *mcp.ResourceUpdatedNotificationParams under sendAsKey goes
// out as notifications/resources/updated, to that one session.
func sendAs(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if rp, ok := ctx.Value(sendAsKey{}).(*mcp.ResourceUpdatedNotificationParams); ok && method == "notifications/progress" {
			if ss, ok := req.GetSession().(*mcp.ServerSession); ok {
				return next(ctx, "notifications/resources/updated", &mcp.ServerRequest[*mcp.ResourceUpdatedNotificationParams]{Session: ss, Params: rp})
			}
		}
		return next(ctx, method, req)
	}
}
