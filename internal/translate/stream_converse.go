package translate

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// maxConverseBlock bounds the contentBlockIndex a ConverseStream may use.
const maxConverseBlock = maxBlocks

// ConverseStreamToMessages translates a Bedrock ConverseStream answer (the
// AWS event stream, application/vnd.amazon.eventstream) into an Anthropic
// Messages event stream (server-sent events) for a message with the given
// id, naming model. Frames are decoded with the AWS SDK's event-stream
// decoder, checksums verified, one at a time as the reader needs them.
//
// ConverseStream reports usage in its last event (metadata), after
// messageStop: message_start counts 0 tokens, and the final message_delta,
// sent once both have arrived (in either order), carries the stop reason and
// every count; a stream that ends after messageStop without metadata
// finishes with no counts.
// A stream that ends before messageStop ends without an invented finish;
// an exception event becomes an Anthropic error event and ends the stream.
func ConverseStreamToMessages(upstream io.ReadCloser, id, model string) io.ReadCloser {
	return &converseStreamReader{upstream: upstream, br: bufio.NewReaderSize(upstream, 16<<10), dec: eventstream.NewDecoder(),
		s: &converseStream{id: id, model: model}}
}

// converseStreamReader decodes upstream frames on demand and hands out
// their translation.
type converseStreamReader struct {
	upstream io.ReadCloser
	br       *bufio.Reader
	dec      *eventstream.Decoder
	payload  []byte
	s        *converseStream
	out      []byte
	off      int
	err      error
}

// Read implements io.Reader: it decodes one more upstream frame only when
// every translated byte has been handed out.
func (r *converseStreamReader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.out, r.off = r.out[:0], 0
		msg, err := r.dec.Decode(r.br, r.payload)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			r.out, r.err = r.s.end(r.out), io.EOF
			continue
		case err != nil:
			r.out, r.err = r.s.fail(r.out, "api_error", "keygate could not read Bedrock's event stream: "+err.Error()), io.EOF
			continue
		}
		r.payload = msg.Payload[:0]
		var done bool
		r.out, done = r.s.frame(r.out, msg)
		if done {
			r.err = io.EOF
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// Close closes the upstream body.
func (r *converseStreamReader) Close() error { return r.upstream.Close() }

// converseStream holds the state of one ConverseStream-to-Messages stream.
type converseStream struct {
	id, model string
	started   bool
	open      map[int]string // content blocks started and not stopped: their Anthropic type
	stop      string         // the Anthropic stop_reason, once messageStop came
	stopped   bool
	usage     *converseUsage // a metadata event's, when it came before messageStop
	finished  bool
}

func headerString(msg eventstream.Message, name string) string {
	if v := msg.Headers.Get(name); v != nil {
		return v.String()
	}
	return ""
}

// converseEvent is every member of the ConverseStream events keygate reads.
type converseEvent struct {
	ContentBlockIndex *int `json:"contentBlockIndex"`
	Start             *struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse"`
	} `json:"start"`
	Delta *struct {
		Text    *string `json:"text"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse"`
		ReasoningContent *struct {
			Text            *string `json:"text"`
			Signature       *string `json:"signature"`
			RedactedContent *string `json:"redactedContent"`
		} `json:"reasoningContent"`
	} `json:"delta"`
	StopReason string         `json:"stopReason"`
	Usage      *converseUsage `json:"usage"`
	Message    string         `json:"message"`
}

// frame translates one upstream frame; done reports the client stream is
// complete.
func (s *converseStream) frame(out []byte, msg eventstream.Message) ([]byte, bool) {
	var ev converseEvent
	switch headerString(msg, ":message-type") {
	case "event":
	case "exception", "error":
		_ = json.Unmarshal(msg.Payload, &ev)
		kind := headerString(msg, ":exception-type")
		if kind == "" {
			kind = headerString(msg, ":error-code")
		}
		text := ev.Message
		if text == "" {
			text = headerString(msg, ":error-message")
		}
		return s.fail(out, converseExceptionType(kind), kind+": "+text), true
	default:
		return out, false
	}
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return s.fail(out, "api_error", "a Bedrock stream event is not JSON"), true
	}
	if !s.started && headerString(msg, ":event-type") != "metadata" {
		out = s.start(out)
	}
	switch headerString(msg, ":event-type") {
	case "contentBlockStart":
		if i, ok := s.index(ev.ContentBlockIndex); ok && ev.Start != nil && ev.Start.ToolUse != nil {
			out = s.openBlock(out, i, "tool_use", ev.Start.ToolUse.ToolUseID, ev.Start.ToolUse.Name)
		}
	case "contentBlockDelta":
		i, ok := s.index(ev.ContentBlockIndex)
		if !ok || ev.Delta == nil {
			return out, false
		}
		d := ev.Delta
		switch {
		case d.Text != nil:
			out = s.openBlock(out, i, "text", "", "")
			out = s.delta(out, i, "text_delta", "text", *d.Text)
		case d.ToolUse != nil:
			out = s.openBlock(out, i, "tool_use", "", "")
			out = s.delta(out, i, "input_json_delta", "partial_json", d.ToolUse.Input)
		case d.ReasoningContent != nil && d.ReasoningContent.Text != nil:
			out = s.openBlock(out, i, "thinking", "", "")
			out = s.delta(out, i, "thinking_delta", "thinking", *d.ReasoningContent.Text)
		case d.ReasoningContent != nil && d.ReasoningContent.Signature != nil:
			out = s.openBlock(out, i, "thinking", "", "")
			out = s.delta(out, i, "signature_delta", "signature", *d.ReasoningContent.Signature)
		}
	case "contentBlockStop":
		if i, ok := s.index(ev.ContentBlockIndex); ok {
			out = s.closeBlock(out, i)
		}
	case "messageStop":
		open := make([]int, 0, len(s.open))
		for i := range s.open {
			open = append(open, i)
		}
		slices.Sort(open)
		for _, i := range open {
			out = s.closeBlock(out, i)
		}
		s.stop, s.stopped = converseStopReason(ev.StopReason), true
		if s.usage != nil {
			return s.finish(out, s.usage), true
		}
	case "metadata":
		if !s.stopped {
			// Bedrock sends it last; one that comes early is kept for
			// the closing message_delta.
			s.usage = ev.Usage
			return out, false
		}
		return s.finish(out, ev.Usage), true
	}
	return out, false
}

// index reads a contentBlockIndex within bounds.
func (s *converseStream) index(i *int) (int, bool) {
	if i == nil || *i < 0 || *i >= maxConverseBlock {
		return 0, false
	}
	return *i, true
}

func (s *converseStream) start(out []byte) []byte {
	s.started = true
	s.open = map[int]string{}
	out = appendEvent(out, "message_start")
	b, _ := marshal(struct {
		Type    string                   `json:"type"`
		Message converseMessagesResponse `json:"message"`
	}{"message_start", converseMessagesResponse{ID: s.id, Type: "message", Role: "assistant", Model: s.model, Content: []converseMessagesBlock{}}})
	out = append(out, b...)
	return append(out, "\n\n"...)
}

// openBlock starts block i as typ unless it is started.
func (s *converseStream) openBlock(out []byte, i int, typ, id, name string) []byte {
	if _, ok := s.open[i]; ok {
		return out
	}
	s.open[i] = typ
	var block any
	switch typ {
	case "tool_use":
		block = struct {
			Type  string   `json:"type"`
			ID    string   `json:"id"`
			Name  string   `json:"name"`
			Input struct{} `json:"input"`
		}{Type: typ, ID: id, Name: name}
	case "thinking":
		block = struct {
			Type      string `json:"type"`
			Thinking  string `json:"thinking"`
			Signature string `json:"signature"`
		}{Type: typ}
	default:
		block = struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}{Type: "text"}
	}
	out = appendEvent(out, "content_block_start")
	b, _ := marshal(struct {
		Type         string `json:"type"`
		Index        int    `json:"index"`
		ContentBlock any    `json:"content_block"`
	}{"content_block_start", i, block})
	out = append(out, b...)
	return append(out, "\n\n"...)
}

// delta appends a content_block_delta of one string member.
func (s *converseStream) delta(out []byte, i int, typ, key, value string) []byte {
	out = appendEvent(out, "content_block_delta")
	out = append(out, `{"type":"content_block_delta","index":`...)
	out = strconv.AppendInt(out, int64(i), 10)
	out = append(out, `,"delta":{"type":"`...)
	out = append(out, typ...)
	out = append(out, `","`...)
	out = append(out, key...)
	out = append(out, `":`...)
	b, _ := marshal(value)
	out = append(out, b...)
	return append(out, "}}\n\n"...)
}

func (s *converseStream) closeBlock(out []byte, i int) []byte {
	if _, ok := s.open[i]; !ok {
		return out
	}
	delete(s.open, i)
	out = appendEvent(out, "content_block_stop")
	out = append(out, `{"type":"content_block_stop","index":`...)
	out = strconv.AppendInt(out, int64(i), 10)
	return append(out, "}\n\n"...)
}

// finish appends the closing message_delta, with the stop reason and the
// usage (nil: none reported), and message_stop.
func (s *converseStream) finish(out []byte, u *converseUsage) []byte {
	s.finished = true
	var usage converseMessagesUsage
	if u != nil {
		usage = u.messages()
	}
	out = appendEvent(out, "message_delta")
	type delta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
	b, _ := marshal(struct {
		Type  string                `json:"type"`
		Delta delta                 `json:"delta"`
		Usage converseMessagesUsage `json:"usage"`
	}{"message_delta", delta{StopReason: s.stop}, usage})
	out = append(out, b...)
	out = append(out, "\n\n"...)
	out = appendEvent(out, "message_stop")
	return append(out, `{"type":"message_stop"}`+"\n\n"...)
}

// end is called at the end of the upstream stream: a stream that stopped
// without its metadata event still finishes; one cut off before
// messageStop ends as it is.
func (s *converseStream) end(out []byte) []byte {
	if s.stopped && !s.finished {
		return s.finish(out, s.usage)
	}
	return out
}

// fail appends an Anthropic error event, which ends the client's stream.
func (s *converseStream) fail(out []byte, typ, msg string) []byte {
	s.finished = true
	out = appendEvent(out, "error")
	out = appendMessagesError(out, typ, msg)
	return append(out, "\n\n"...)
}

// converseExceptionType maps a ConverseStream exception to an Anthropic
// error type.
func converseExceptionType(kind string) string {
	switch kind {
	case "throttlingException":
		return "rate_limit_error"
	case "validationException":
		return "invalid_request_error"
	case "serviceUnavailableException":
		return "overloaded_error"
	case "accessDeniedException":
		return "permission_error"
	}
	return "api_error"
}
