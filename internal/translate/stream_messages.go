package translate

import (
	"io"
	"strconv"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// ChatToMessagesStream translates an OpenAI chat.completion.chunk stream
// from upstream into an Anthropic Messages event stream for a client that
// asked for clientModel: message_start, content_block_start / delta / stop
// for text and for each tool call, then message_delta (stop reason and
// usage) and message_stop when upstream sends data: [DONE]. Usage is only
// known if upstream sends it, which MessagesToChatRequest asks for with
// stream_options.include_usage. Only the first choice is translated.
//
// Each upstream chunk is translated when the returned reader needs it.
// Close closes upstream.
func ChatToMessagesStream(upstream io.ReadCloser, clientModel string) io.ReadCloser {
	return newStreamReader(upstream, newMessagesStream(clientModel))
}

// Tool call states in messagesStream.tools.
const (
	toolUnseen uint8 = iota
	toolOpen
	toolClosed
)

// messagesStream holds the state of one OpenAI-to-Anthropic stream.
type messagesStream struct {
	model   []byte // JSON string
	started bool

	nBlocks  int       // Anthropic blocks started so far
	open     blockKind // kind of the open block; blockOther when none
	openTool int       // OpenAI index of the open tool call
	tools    []uint8   // by OpenAI tool call index

	stopReason string // raw JSON, empty until a finish_reason arrives

	haveUsage              bool
	prompt, cached, output uint64
}

func newMessagesStream(clientModel string) *messagesStream {
	return &messagesStream{model: jsonpeek.AppendString(nil, clientModel)}
}

func appendEvent(out []byte, name string) []byte {
	out = append(out, "event: "...)
	out = append(out, name...)
	return append(out, "\ndata: "...)
}

func (s *messagesStream) start(out, id []byte) []byte {
	s.started = true
	if !isString(id) {
		id = []byte(`""`)
	}
	out = appendEvent(out, "message_start")
	out = append(out, `{"type":"message_start","message":{"id":`...)
	out = append(out, id...)
	out = append(out, `,"type":"message","role":"assistant","model":`...)
	out = append(out, s.model...)
	out = append(out, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}`+"\n\n"...)
	return out
}

// closeBlock ends the open content block, if any.
func (s *messagesStream) closeBlock(out []byte) []byte {
	if s.open == blockOther {
		return out
	}
	if s.open == blockTool {
		s.tools[s.openTool] = toolClosed
	}
	s.open = blockOther
	out = appendEvent(out, "content_block_stop")
	out = append(out, `{"type":"content_block_stop","index":`...)
	out = strconv.AppendInt(out, int64(s.nBlocks-1), 10)
	return append(out, "}\n\n"...)
}

func (s *messagesStream) text(out, text []byte) []byte {
	if s.open != blockText {
		out = s.closeBlock(out)
		out = appendEvent(out, "content_block_start")
		out = append(out, `{"type":"content_block_start","index":`...)
		out = strconv.AppendInt(out, int64(s.nBlocks), 10)
		out = append(out, `,"content_block":{"type":"text","text":""}}`+"\n\n"...)
		s.nBlocks++
		s.open = blockText
	}
	out = appendEvent(out, "content_block_delta")
	out = append(out, `{"type":"content_block_delta","index":`...)
	out = strconv.AppendInt(out, int64(s.nBlocks-1), 10)
	out = append(out, `,"delta":{"type":"text_delta","text":`...)
	out = append(out, text...)
	return append(out, "}}\n\n"...)
}

// toolCall translates one element of delta.tool_calls; pos is its place in
// the array, used when upstream leaves out the index.
func (s *messagesStream) toolCall(out, call []byte, pos int) ([]byte, bool) {
	idx := uint64(pos)
	if raw := field(call, "index"); raw != nil {
		var ok bool
		if idx, ok = uint64Of(raw); !ok {
			return s.fail(out, "api_error", "keygate could not read the upstream OpenAI stream: a tool call has no valid index"), false
		}
	}
	if idx >= maxBlocks {
		return s.fail(out, "api_error", "keygate could not read the upstream OpenAI stream: a tool call index is out of range"), false
	}
	for uint64(len(s.tools)) <= idx {
		s.tools = append(s.tools, toolUnseen)
	}
	i := int(idx)
	fn := field(call, "function")
	switch s.tools[i] {
	case toolClosed:
		return s.fail(out, "api_error", "keygate cannot translate the upstream OpenAI stream: it interleaves the arguments of several tool calls"), false
	case toolUnseen:
		out = s.closeBlock(out)
		out = appendEvent(out, "content_block_start")
		out = append(out, `{"type":"content_block_start","index":`...)
		out = strconv.AppendInt(out, int64(s.nBlocks), 10)
		out = append(out, `,"content_block":{"type":"tool_use","id":`...)
		out = appendStringOr(out, field(call, "id"))
		out = append(out, `,"name":`...)
		out = appendStringOr(out, field(fn, "name"))
		out = append(out, `,"input":{}}}`+"\n\n"...)
		s.nBlocks++
		s.open, s.openTool, s.tools[i] = blockTool, i, toolOpen
	}
	if args := field(fn, "arguments"); nonEmptyString(args) {
		out = appendEvent(out, "content_block_delta")
		out = append(out, `{"type":"content_block_delta","index":`...)
		out = strconv.AppendInt(out, int64(s.nBlocks-1), 10)
		out = append(out, `,"delta":{"type":"input_json_delta","partial_json":`...)
		out = append(out, args...)
		out = append(out, "}}\n\n"...)
	}
	return out, true
}

func (s *messagesStream) event(out, _, data []byte) ([]byte, bool) {
	if string(data) == "[DONE]" {
		if !s.started {
			out = s.start(out, nil)
		}
		out = s.closeBlock(out)
		out = appendEvent(out, "message_delta")
		out = append(out, `{"type":"message_delta","delta":{"stop_reason":`...)
		if s.stopReason == "" {
			out = append(out, "null"...)
		} else {
			out = append(out, s.stopReason...)
		}
		out = append(out, `,"stop_sequence":null},"usage":{`...)
		if s.haveUsage {
			out = append(out, `"input_tokens":`...)
			out = strconv.AppendUint(out, s.prompt-min(s.cached, s.prompt), 10)
			out = append(out, `,"cache_read_input_tokens":`...)
			out = strconv.AppendUint(out, s.cached, 10)
			out = append(out, ',')
		}
		out = append(out, `"output_tokens":`...)
		out = strconv.AppendUint(out, s.output, 10)
		out = append(out, "}}\n\n"...)
		out = appendEvent(out, "message_stop")
		return append(out, `{"type":"message_stop"}`+"\n\n"...), true
	}
	var id, choices, usage, errv []byte
	it := jsonpeek.NewScanner(data)
	for k, ok := it.FirstMember(); ok; k, ok = it.NextMember() {
		v := it.Skip()
		switch string(k) {
		case "id":
			id = v
		case "choices":
			choices = v
		case "usage":
			usage = v
		case "error":
			errv = v
		}
	}
	if !it.End() {
		return s.fail(out, "api_error", "keygate could not read an event of the upstream OpenAI stream: it is not a valid JSON object"), true
	}
	if !isNull(errv) {
		var typ, code, msg string
		if t := field(errv, "type"); isString(t) {
			typ = unquote(t)
		}
		if c := field(errv, "code"); isString(c) {
			code = unquote(c)
		}
		if m := field(errv, "message"); isString(m) {
			msg = unquote(m)
		}
		if msg == "" {
			msg = "upstream reported an error without a message"
		}
		return s.fail(out, messagesErrorType(0, typ, code), msg), true
	}
	if !s.started {
		out = s.start(out, id)
	}
	if !isNull(usage) {
		s.readUsage(usage)
	}
	list := jsonpeek.NewScanner(choices)
	for more := list.FirstElement(); more; more = list.NextElement() {
		choice := list.Skip()
		if choice == nil {
			break
		}
		var index, delta, reason []byte
		cm := jsonpeek.NewScanner(choice)
		for k, ok := cm.FirstMember(); ok; k, ok = cm.NextMember() {
			v := cm.Skip()
			switch string(k) {
			case "index":
				index = v
			case "delta":
				delta = v
			case "finish_reason":
				reason = v
			}
		}
		if n, ok := uint64Of(index); ok && n != 0 {
			continue
		}
		var content, refusal, toolCalls []byte
		dm := jsonpeek.NewScanner(delta)
		for k, ok := dm.FirstMember(); ok; k, ok = dm.NextMember() {
			v := dm.Skip()
			switch string(k) {
			case "content":
				content = v
			case "refusal":
				refusal = v
			case "tool_calls":
				toolCalls = v
			}
		}
		if nonEmptyString(content) {
			out = s.text(out, content)
		}
		if nonEmptyString(refusal) {
			out = s.text(out, refusal)
		}
		calls := jsonpeek.NewScanner(toolCalls)
		for more, pos := calls.FirstElement(), 0; more; more, pos = calls.NextElement(), pos+1 {
			call := calls.Skip()
			if call == nil {
				break
			}
			var ok bool
			if out, ok = s.toolCall(out, call, pos); !ok {
				return out, true
			}
		}
		if !isNull(reason) {
			s.stopReason = stopReason(reason)
			out = s.closeBlock(out)
		}
	}
	return out, false
}

func (s *messagesStream) readUsage(u []byte) {
	s.haveUsage = true
	if n, ok := uint64Of(field(u, "prompt_tokens")); ok {
		s.prompt = n
	}
	if n, ok := uint64Of(field(u, "completion_tokens")); ok {
		s.output = n
	}
	if n, ok := uint64Of(field(field(u, "prompt_tokens_details"), "cached_tokens")); ok {
		s.cached = n
	}
}

// fail appends an Anthropic error event, which ends the client's stream.
func (s *messagesStream) fail(out []byte, typ, msg string) []byte {
	out = appendEvent(out, "error")
	out = appendMessagesError(out, typ, msg)
	return append(out, "\n\n"...)
}

// stopReason maps a raw OpenAI finish_reason to a raw Anthropic stop_reason.
func stopReason(raw []byte) string {
	switch string(raw) {
	case `"length"`:
		return `"max_tokens"`
	case `"tool_calls"`, `"function_call"`:
		return `"tool_use"`
	case `"content_filter"`:
		return `"refusal"`
	}
	return `"end_turn"`
}
