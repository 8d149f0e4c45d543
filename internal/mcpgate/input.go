package mcpgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A server asks the calling client for input (sampling, elicitation, its
// roots) while it handles a tools/call, prompts/get or resources/read.
// keygate's session to a server is shared by every client, so what the
// server asks must be tied to one call, never guessed. Two ways tie it,
// and keygate uses whichever the server speaks rather than a session per
// client (a stdio server would need a process per client, and every
// client would pay a connection):
//
//   - Servers on protocol 2026-07-28 put their questions in the call's own
//     result (input requests, SEP-2322). keygate's upstream client does not
//     answer them itself: the result comes back to forward, so the question
//     is the call's by construction.
//   - Older servers send sampling/createMessage, elicitation/create and
//     roots/list as requests of their own, on the response stream of the
//     call they are about. keygate's transport sees which call's stream
//     each one came on and tags it with that call's route (routes.go); a
//     request with no route (a stdio server, the standalone stream, a call
//     that has ended) is answered with a JSON-RPC error and reaches no
//     client.
//
// Either way keygate checks that the calling client declared the
// capability, passes the question through what results pass (the
// injected credential scrubbed, the leak check), asks the client on its
// call's own stream within the call's timeout (keygate's endpoint speaks
// the protocol before 2026-07-28 to clients, so they take such requests
// in-band), and passes the answer through what arguments pass (a size
// bound, the leak check) before the server gets it.

// CodeCapability: the server asked for something (sampling, elicitation,
// roots) the calling client did not declare it can do.
const CodeCapability = -32010

// maxInputRounds bounds how often one call may ask an older client for
// input before keygate gives up, as the SDK bounds its own retries.
const maxInputRounds = 10

// protocolInputRequests is the first protocol version whose servers put
// input requests in results.
const protocolInputRequests = "2026-07-28"

// inputReply is a client's answers to a server's input requests and the
// server's state to send back with them.
type inputReply struct {
	Responses mcp.InputResponseMap
	State     string
}

// inputOf returns a result's input requests and state, and whether the
// server needs input before it can answer.
func inputOf(out mcp.Result) (mcp.InputRequestMap, string, bool) {
	switch r := out.(type) {
	case *mcp.CallToolResult:
		return r.InputRequests, r.RequestState, r.NeedsInput()
	case *mcp.GetPromptResult:
		return r.InputRequests, r.RequestState, r.NeedsInput()
	case *mcp.ReadResourceResult:
		return r.InputRequests, r.RequestState, r.NeedsInput()
	}
	return nil, "", false
}

// inputMethod names what an input request asks for.
func inputMethod(ir mcp.InputRequest) string {
	switch ir.(type) {
	case *mcp.ElicitParams:
		return "elicitation/create"
	case *mcp.CreateMessageParams, *mcp.CreateMessageWithToolsParams:
		return "sampling/createMessage"
	case *mcp.ListRootsParams:
		return "roots/list"
	}
	return fmt.Sprintf("%T", ir)
}

// declared reports whether the client of ss declared it can answer
// method, or says what it lacks.
func declared(ss *mcp.ServerSession, method string) error {
	var caps *mcp.ClientCapabilities
	ip := ss.InitializeParams()
	if ip != nil {
		caps = ip.Capabilities
	}
	ok := false
	what := ""
	switch method {
	case "sampling/createMessage":
		ok, what = caps != nil && caps.Sampling != nil, "sampling"
	case "elicitation/create":
		ok, what = caps != nil && caps.Elicitation != nil, "elicitation"
	case "roots/list":
		// Before 2026-07-28 an empty roots capability cannot be told from
		// none; such a client answers for itself.
		ok, what = caps != nil && (caps.RootsV2 != nil || ip.ProtocolVersion < protocolInputRequests), "roots"
	default:
		return fmt.Errorf("%s is not something keygate passes to clients", quote(method))
	}
	if !ok {
		return fmt.Errorf("this client did not declare the %s capability when it connected; use a client that handles %s", what, method)
	}
	return nil
}

// canAsk checks that the calling client declared every capability the
// server's input requests need.
func (g *Gate) canAsk(cl *call, reqs mcp.InputRequestMap) error {
	if cl.ss == nil {
		return rpcError(CodeCapability, "client_capability_missing", "MCP server "+cl.u.cfg.Name+" asked for input, and keygate has no client session to ask")
	}
	for _, id := range slices.Sorted(maps.Keys(reqs)) {
		m := inputMethod(reqs[id])
		if err := declared(cl.ss, m); err != nil {
			return rpcError(CodeCapability, "client_capability_missing", "MCP server "+cl.u.cfg.Name+" asked for "+m+" while handling this call; "+err.Error())
		}
	}
	return nil
}

// askCaller asks an older client, on its call's own stream, what the
// server's input requests ask, and returns the answers after the leak
// check that arguments pass.
func (g *Gate) askCaller(ctx context.Context, cl *call, reqs mcp.InputRequestMap) (mcp.InputResponseMap, map[string]string, error) {
	out := make(mcp.InputResponseMap, len(reqs))
	var fields map[string]string
	for _, id := range slices.Sorted(maps.Keys(reqs)) {
		var (
			res mcp.InputResponse
			err error
		)
		switch p := reqs[id].(type) {
		case *mcp.ElicitParams:
			res, err = cl.ss.Elicit(ctx, p)
		case *mcp.CreateMessageWithToolsParams:
			res, err = cl.ss.CreateMessageWithTools(ctx, p)
		case *mcp.CreateMessageParams:
			res, err = cl.ss.CreateMessage(ctx, p)
		case *mcp.ListRootsParams:
			res, err = cl.ss.ListRoots(ctx, p)
		default:
			err = fmt.Errorf("%T is not an input request keygate passes on", p)
		}
		if err != nil {
			return nil, fields, g.callerAnswerError(cl, inputMethod(reqs[id]), err)
		}
		checked, f, err := g.checkAnswer(cl, res)
		if err != nil {
			return nil, f, err
		}
		fields = mergeFields(fields, f)
		out[id] = checked
	}
	return out, fields, nil
}

// callerAnswerError is what the client is told when it did not answer a
// server's request for input.
func (g *Gate) callerAnswerError(cl *call, method string, err error) error {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return &jsonrpc.Error{Code: werr.Code, Message: "this client refused the " + method + " that MCP server " + cl.u.cfg.Name + " asked for: " + werr.Message}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return rpcError(CodeUpstream, "input_timeout", "this client did not answer the "+method+" that MCP server "+cl.u.cfg.Name+" asked for within the server's call_timeout ("+cl.u.cfg.CallTimeout.String()+")")
	}
	return rpcError(CodeUpstream, "input_failed", "keygate could not ask this client the "+method+" that MCP server "+cl.u.cfg.Name+" asked for: "+err.Error())
}

// checkAnswer bounds a client's answer to an input request and passes it
// through the leak check that a call's arguments pass: block refuses it,
// redact replaces the credential before the server sees it.
func (g *Gate) checkAnswer(cl *call, res mcp.InputResponse) (mcp.InputResponse, map[string]string, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, nil, rpcError(jsonrpc.CodeInvalidParams, "input_malformed", "keygate could not read this client's answer to the server's request for input")
	}
	if int64(len(b)) > g.opts.MaxRequestBytes {
		return nil, nil, rpcError(CodeInvalidRequest, "input_too_large", fmt.Sprintf("this client's answer to the server's request for input is larger than keygate passes on (%d bytes)", g.opts.MaxRequestBytes))
	}
	send, fields, refusal := g.checkBytes(cl, b)
	if refusal != nil {
		return nil, fields, refusal
	}
	if fields != nil {
		g.leakFound(cl)
	}
	if string(send) == string(b) {
		return res, fields, nil
	}
	var m mcp.InputResponseMap
	if err := json.Unmarshal([]byte(`{"a":`+string(send)+`}`), &m); err != nil {
		return nil, fields, rpcError(jsonrpc.CodeInvalidParams, "input_malformed", "keygate could not redact this client's answer to the server's request for input")
	}
	return m["a"], fields, nil
}

func mergeFields(a, b map[string]string) map[string]string {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}
