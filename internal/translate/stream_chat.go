package translate

import (
	"io"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// maxBlocks bounds the content block index an upstream stream may use, so a
// corrupt index cannot make keygate allocate without limit.
const maxBlocks = 4096

// MessagesToChatStream translates an Anthropic Messages event stream from
// upstream into an OpenAI chat.completion.chunk stream for a client that
// asked for clientModel. includeUsage reflects the client's
// stream_options.include_usage: when set, a usage chunk with no choices is
// sent before data: [DONE]. Thinking and server tool blocks are skipped.
//
// Each upstream event is translated when the returned reader needs it, so
// text reaches the client as soon as upstream sends it. Close closes
// upstream.
func MessagesToChatStream(upstream io.ReadCloser, clientModel string, includeUsage bool) io.ReadCloser {
	return newStreamReader(upstream, newChatStream(clientModel, includeUsage, time.Now().Unix()))
}

type blockKind uint8

const (
	blockOther blockKind = iota
	blockText
	blockTool
)

// chatStream holds the state of one Anthropic-to-OpenAI stream.
type chatStream struct {
	model        []byte // JSON string
	created      int64
	includeUsage bool
	prefix       []byte // the chunk up to and including `"choices":[`
	started      bool

	kinds    []blockKind // by Anthropic block index
	toolIdx  []int       // by Anthropic block index: OpenAI tool_calls index
	nTools   int
	finished bool // a finish_reason chunk was sent

	input, cacheRead, cacheWrite, output uint64
}

func newChatStream(clientModel string, includeUsage bool, created int64) *chatStream {
	return &chatStream{
		model:        jsonpeek.AppendString(nil, clientModel),
		created:      created,
		includeUsage: includeUsage,
	}
}

// start builds the chunk prefix once the message id is known.
func (s *chatStream) start(id []byte) {
	s.started = true
	if !isString(id) {
		id = []byte(`""`)
	}
	s.prefix = append(s.prefix[:0], `data: {"id":`...)
	s.prefix = append(s.prefix, id...)
	s.prefix = append(s.prefix, `,"object":"chat.completion.chunk","created":`...)
	s.prefix = strconv.AppendInt(s.prefix, s.created, 10)
	s.prefix = append(s.prefix, `,"model":`...)
	s.prefix = append(s.prefix, s.model...)
	s.prefix = append(s.prefix, `,"choices":[`...)
}

// openDelta begins a chunk with one choice, up to the inside of "delta".
func (s *chatStream) openDelta(out []byte) []byte {
	if !s.started {
		s.start(nil)
	}
	out = append(out, s.prefix...)
	return append(out, `{"index":0,"delta":{`...)
}

// closeDelta ends a chunk begun by openDelta.
func closeDelta(out []byte) []byte {
	return append(out, `},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
}

func (s *chatStream) readUsage(u []byte) {
	it := jsonpeek.NewScanner(u)
	for k, ok := it.FirstMember(); ok; k, ok = it.NextMember() {
		v := it.Skip()
		n, isNum := uint64Of(v)
		if !isNum {
			continue
		}
		switch string(k) {
		case "input_tokens":
			s.input = n
		case "output_tokens":
			s.output = n
		case "cache_read_input_tokens":
			s.cacheRead = n
		case "cache_creation_input_tokens":
			s.cacheWrite = n
		}
	}
}

func (s *chatStream) event(out, name, data []byte) ([]byte, bool) {
	// One pass over the event reads the members every event type needs.
	var typ, message, index, block, delta, usage, errv []byte
	it := jsonpeek.NewScanner(data)
	for k, ok := it.FirstMember(); ok; k, ok = it.NextMember() {
		v := it.Skip()
		switch string(k) {
		case "type":
			typ = v
		case "message":
			message = v
		case "index":
			index = v
		case "content_block":
			block = v
		case "delta":
			delta = v
		case "usage":
			usage = v
		case "error":
			errv = v
		}
	}
	if !it.End() {
		return s.fail(out, "", "keygate could not read an event of the upstream Anthropic stream: it is not a valid JSON object"), true
	}
	if isString(typ) {
		name = typ[1 : len(typ)-1]
	}
	switch string(name) {
	case "message_start":
		s.start(field(message, "id"))
		s.readUsage(field(message, "usage"))
		out = s.openDelta(out)
		out = append(out, `"role":"assistant","content":""`...)
		return closeDelta(out), false

	case "content_block_start":
		idx, ok := uint64Of(index)
		if !ok || idx >= maxBlocks {
			return s.fail(out, "", "keygate could not read the upstream Anthropic stream: a content block has no valid index"), true
		}
		for uint64(len(s.kinds)) <= idx {
			s.kinds = append(s.kinds, blockOther)
			s.toolIdx = append(s.toolIdx, -1)
		}
		switch string(field(block, "type")) {
		case `"text"`:
			s.kinds[idx] = blockText
			if text := field(block, "text"); nonEmptyString(text) {
				out = s.openDelta(out)
				out = append(out, `"content":`...)
				out = append(out, text...)
				out = closeDelta(out)
			}
		case `"tool_use"`:
			s.kinds[idx] = blockTool
			s.toolIdx[idx] = s.nTools
			s.nTools++
			out = s.openDelta(out)
			out = append(out, `"tool_calls":[{"index":`...)
			out = strconv.AppendInt(out, int64(s.toolIdx[idx]), 10)
			out = append(out, `,"id":`...)
			out = appendStringOr(out, field(block, "id"))
			out = append(out, `,"type":"function","function":{"name":`...)
			out = appendStringOr(out, field(block, "name"))
			out = append(out, `,"arguments":`...)
			// Streams start tool input as {} and send it in deltas; a
			// non-empty input here is sent whole.
			if in := field(block, "input"); len(in) > 0 && !emptyObject(in) {
				out = jsonpeek.AppendString(out, string(in))
			} else {
				out = append(out, `""`...)
			}
			out = append(out, `}}]`...)
			out = closeDelta(out)
		default:
			s.kinds[idx] = blockOther
		}
		return out, false

	case "content_block_delta":
		idx, ok := uint64Of(index)
		if !ok || idx >= uint64(len(s.kinds)) {
			return s.fail(out, "", "keygate could not read the upstream Anthropic stream: a delta names a content block that was not started"), true
		}
		switch s.kinds[idx] {
		case blockText:
			if string(field(delta, "type")) != `"text_delta"` {
				return out, false
			}
			if text := field(delta, "text"); nonEmptyString(text) {
				out = s.openDelta(out)
				out = append(out, `"content":`...)
				out = append(out, text...)
				out = closeDelta(out)
			}
		case blockTool:
			if string(field(delta, "type")) != `"input_json_delta"` {
				return out, false
			}
			if part := field(delta, "partial_json"); nonEmptyString(part) {
				out = s.openDelta(out)
				out = append(out, `"tool_calls":[{"index":`...)
				out = strconv.AppendInt(out, int64(s.toolIdx[idx]), 10)
				out = append(out, `,"function":{"arguments":`...)
				out = append(out, part...)
				out = append(out, `}}]`...)
				out = closeDelta(out)
			}
		}
		return out, false

	case "message_delta":
		s.readUsage(usage)
		reason := field(delta, "stop_reason")
		if isNull(reason) {
			return out, false
		}
		if !s.started {
			s.start(nil)
		}
		out = append(out, s.prefix...)
		out = append(out, `{"index":0,"delta":{},"logprobs":null,"finish_reason":`...)
		out = append(out, finishReason(reason)...)
		out = append(out, "}]}\n\n"...)
		s.finished = true
		return out, false

	case "message_stop":
		if !s.started {
			s.start(nil)
		}
		if s.includeUsage {
			out = append(out, s.prefix...)
			out = append(out, `],"usage":`...)
			out = appendChatUsage(out, s.input, s.cacheRead, s.cacheWrite, s.output)
			out = append(out, "}\n\n"...)
		}
		return append(out, "data: [DONE]\n\n"...), true

	case "ping":
		// An SSE comment keeps idle connections open; clients ignore it.
		return append(out, ": ping\n\n"...), false

	case "error":
		var errType, msg string
		if t := field(errv, "type"); isString(t) {
			errType = unquote(t)
		}
		if m := field(errv, "message"); isString(m) {
			msg = unquote(m)
		}
		if msg == "" {
			msg = "upstream reported an error without a message"
		}
		return s.fail(out, errType, msg), true
	}
	// content_block_stop and event types added later carry nothing an OpenAI
	// client can use.
	return out, false
}

// fail appends an OpenAI stream error event. OpenAI clients treat a data
// line carrying "error" as the end of the stream.
func (s *chatStream) fail(out []byte, anthropicType, msg string) []byte {
	out = append(out, "data: "...)
	out = appendChatError(out, 0, anthropicType, msg)
	return append(out, "\n\n"...)
}

// appendChatUsage appends an OpenAI usage object. Anthropic counts cache
// reads and writes apart from input_tokens; OpenAI counts them all as
// prompt tokens and reports the cached part.
func appendChatUsage(out []byte, input, cacheRead, cacheWrite, output uint64) []byte {
	prompt := input + cacheRead + cacheWrite
	out = append(out, `{"prompt_tokens":`...)
	out = strconv.AppendUint(out, prompt, 10)
	out = append(out, `,"completion_tokens":`...)
	out = strconv.AppendUint(out, output, 10)
	out = append(out, `,"total_tokens":`...)
	out = strconv.AppendUint(out, prompt+output, 10)
	out = append(out, `,"prompt_tokens_details":{"cached_tokens":`...)
	out = strconv.AppendUint(out, cacheRead, 10)
	return append(out, "}}"...)
}

// finishReason maps a raw Anthropic stop_reason to a raw OpenAI
// finish_reason.
func finishReason(raw []byte) string {
	switch string(raw) {
	case `"max_tokens"`, `"model_context_window_exceeded"`:
		return `"length"`
	case `"tool_use"`:
		return `"tool_calls"`
	case `"refusal"`:
		return `"content_filter"`
	}
	// end_turn, stop_sequence, pause_turn and reasons added later.
	return `"stop"`
}

func appendStringOr(out, raw []byte) []byte {
	if isString(raw) {
		return append(out, raw...)
	}
	return append(out, `""`...)
}

func emptyObject(raw []byte) bool {
	s := jsonpeek.NewScanner(raw)
	_, ok := s.FirstMember()
	return !ok && !s.Failed()
}

// unquote decodes a raw JSON string token; anything else reads as "".
func unquote(raw []byte) string {
	s, _ := jsonpeek.AppendUnquoted(nil, raw)
	return string(s)
}
