package usage

import (
	"bytes"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// MaxEventBytes bounds what a StreamMeter holds of one event: a line split
// across writes, plus the data lines of an event spread over several lines.
// An event larger than this is skipped rather than buffered. Usage events
// are far smaller, except an OpenAI response.completed event, which repeats
// the whole response; a response larger than this (long image outputs) is
// reported without its usage and with Complete false.
const MaxEventBytes = 1 << 20

// maxName is the longest event name a StreamMeter keeps; longer names are
// ones keygate does not read.
const maxName = 64

// bufKeep is the largest buffer a StreamMeter keeps between events; a larger
// one, grown by an unusually long event, is released.
const bufKeep = 64 << 10

// Formats a StreamMeter reads.
const (
	formatOpenAI uint8 = 1 << iota
	formatAnthropic
	formatGemini
	formatAll = formatOpenAI | formatAnthropic | formatGemini
)

// StreamMeter reads token usage from a server-sent event stream written to
// it in whatever chunks the proxy copies to the client. It reads OpenAI's
// include_usage chunk (chat completions and completions), the Responses
// API's response.completed (or .incomplete, .failed) event, Anthropic's
// message_start and message_delta events, and the usageMetadata of
// Gemini's chunks (streamGenerateContent?alt=sse); every other event costs
// a line scan, a name or substring test and, for content deltas, a walk
// over the delta's keys to add up StreamedBytes, without copying or
// allocating when a write holds whole events.
//
// Events are dispatched at the blank line that ends them, as SSE clients do:
// an event cut off before it is ignored. Lines end with LF or CRLF.
//
// The zero StreamMeter reads both dialects. A StreamMeter is not safe for
// concurrent use: read Usage once the stream's writer is done, or
// synchronise with it.
type StreamMeter struct {
	formats uint8
	u       Usage

	line     []byte // the start of a line split across writes
	lineOver bool   // the held line passed MaxEventBytes; drop it

	name      [maxName]byte
	nameLen   int    // > maxName: a name keygate does not read
	data      []byte // the event's data: buf, or a line of the caller's
	buf       []byte // data lines copied because the event spans writes
	dataRef   bool   // data is the event's only data line, in the caller's buffer
	dataLines int
	over      bool // the event passed MaxEventBytes; skip it

	// A Gemini stream has carried usageMetadata, and a finishReason.
	geminiUsage, geminiDone bool
}

// NewStreamMeter returns a StreamMeter for a stream in the given dialect,
// DialectOpenAI, DialectAnthropic or DialectGemini; any other dialect
// reads them all.
func NewStreamMeter(dialect string) *StreamMeter {
	return &StreamMeter{formats: formatsOf(dialect)}
}

// formatsOf returns the event formats a dialect's streams use; any other
// dialect may use all.
func formatsOf(dialect string) uint8 {
	switch dialect {
	case DialectOpenAI:
		return formatOpenAI
	case DialectAnthropic:
		return formatAnthropic
	case DialectGemini:
		return formatGemini
	}
	return formatAll
}

// Usage returns what the stream has reported so far.
func (m *StreamMeter) Usage() Usage { return m.u }

// Write observes the next bytes of the stream. It never fails, never blocks
// and keeps no reference to p.
func (m *StreamMeter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			m.hold(p)
			break
		}
		switch {
		case len(m.line) == 0 && !m.lineOver:
			if i > MaxEventBytes {
				m.over = true
			} else {
				m.handleLine(p[:i], true)
			}
		default:
			m.hold(p[:i])
			if m.lineOver {
				m.over = true
			} else {
				m.handleLine(m.line, false)
			}
			m.line, m.lineOver = m.line[:0], false
			if cap(m.line) > bufKeep {
				m.line = nil
			}
		}
		p = p[i+1:]
	}
	if m.dataRef { // the event continues in a later write: keep its data
		m.own()
	}
	return n, nil
}

// hold appends part of a line that continues in a later write.
func (m *StreamMeter) hold(p []byte) {
	if m.lineOver {
		return
	}
	if len(m.line)+len(p) > MaxEventBytes {
		m.line, m.lineOver = m.line[:0], true
		return
	}
	m.line = append(m.line, p...)
}

// handleLine handles one line without its LF. borrowed reports that line
// lies in the caller's buffer rather than in m.line.
func (m *StreamMeter) handleLine(line []byte, borrowed bool) {
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) == 0 {
		m.dispatch()
		return
	}
	if m.over {
		return
	}
	var value []byte
	switch {
	case bytes.HasPrefix(line, []byte("data:")):
		value = line[len("data:"):]
	case string(line) == "data":
		value = line[len("data"):]
	case bytes.HasPrefix(line, []byte("event:")):
		m.setName(line[len("event:"):])
		return
	case string(line) == "event":
		m.nameLen = 0
		return
	default: // comments, id, retry and unknown fields
		return
	}
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	if m.dataLines == 0 && borrowed {
		m.data, m.dataRef = value, true
		m.dataLines = 1
		return
	}
	if m.dataRef {
		m.own()
	}
	if len(m.buf)+1+len(value) > MaxEventBytes {
		m.over = true
		return
	}
	if m.dataLines > 0 {
		m.buf = append(m.buf, '\n')
	}
	m.buf = append(m.buf, value...)
	m.data = m.buf
	m.dataLines++
}

// own copies borrowed event data into the meter's buffer.
func (m *StreamMeter) own() {
	m.buf = append(m.buf[:0], m.data...)
	m.data, m.dataRef = m.buf, false
}

// setName records the event name from an event field's value.
func (m *StreamMeter) setName(v []byte) {
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	if len(v) > maxName {
		m.nameLen = maxName + 1
		return
	}
	m.nameLen = copy(m.name[:], v)
}

// dispatch handles the event a blank line ends and starts the next one.
func (m *StreamMeter) dispatch() {
	if m.dataLines > 0 && !m.over {
		var name []byte
		if m.nameLen <= maxName {
			name = m.name[:m.nameLen]
		}
		m.event(name, m.nameLen > maxName, m.data)
	}
	m.nameLen, m.dataLines, m.over = 0, 0, false
	m.data, m.dataRef = nil, false
	if cap(m.buf) > bufKeep {
		m.buf = nil
	} else {
		m.buf = m.buf[:0]
	}
}

// event reads usage or content size from one event's data.
func (m *StreamMeter) event(name []byte, longName bool, data []byte) {
	if longName {
		return
	}
	formats := m.formats
	if formats == 0 {
		formats = formatAll
	}
	if len(name) == 0 || string(name) == "message" { // SSE's default event type
		name = leadingType(data)
	}
	switch string(name) {
	case "content_block_delta":
		if formats&formatAnthropic != 0 {
			m.u.StreamedBytes += m.textBytes(data, anthropicTextKey)
		}
	case "message_start":
		if formats&formatAnthropic != 0 {
			if msg, ok, err := lookup(data, `"message"`, false); ok && err == nil && len(msg) > 0 && msg[0] == '{' {
				m.readUsageIn(msg, false)
			}
		}
	case "message_delta":
		if formats&formatAnthropic != 0 {
			m.readUsageIn(data, true)
		}
	case "response.completed", "response.incomplete", "response.failed":
		if formats&formatOpenAI != 0 {
			if resp, ok, err := lookup(data, `"response"`, false); ok && err == nil && len(resp) > 0 && resp[0] == '{' {
				m.readUsageIn(resp, true)
			}
		}
	case "":
		if formats&formatOpenAI != 0 {
			m.chunk(data)
		}
		if formats&formatGemini != 0 {
			m.geminiChunk(data)
		}
	default:
		if formats&formatOpenAI != 0 && bytes.HasPrefix(name, []byte("response.")) && bytes.HasSuffix(name, []byte(".delta")) {
			m.u.StreamedBytes += m.textBytes(data, responsesTextKey)
		}
	}
}

// readUsageIn merges the usage member of obj; final marks the response's
// closing figures.
func (m *StreamMeter) readUsageIn(obj []byte, final bool) {
	v, ok, err := lookup(obj, `"usage"`, true)
	if !ok || err != nil {
		return
	}
	f, isObject, err := readUsage(v)
	if err != nil || !isObject {
		return
	}
	f.mergeInto(&m.u)
	if final {
		m.u.Complete = true
	}
}

// chunk handles an untyped OpenAI chat completions or completions chunk.
func (m *StreamMeter) chunk(data []byte) {
	data = trimWS(data)
	if len(data) == 0 || data[0] != '{' {
		return // [DONE] and anything else that is not an object
	}
	// With include_usage every chunk but the last ends "usage":null, which
	// as the last member settles the top-level usage without a search.
	if !bytes.HasSuffix(data, []byte(`"usage":null}`)) && bytes.Contains(data, []byte(`"usage"`)) {
		m.readUsageIn(data, true)
	}
	if i := bytes.Index(data, []byte(`"choices"`)); i >= 0 {
		m.u.StreamedBytes += m.textBytes(data[i:], chatTextKey)
	}
}

// Which keys hold generated text, per event kind.
const (
	chatTextKey uint8 = iota
	anthropicTextKey
	responsesTextKey
	geminiTextKey
	converseTextKey
)

// textBytes adds up the lengths, as escaped on the wire, of the string
// values whose key marks generated text in the compact JSON data.
func (m *StreamMeter) textBytes(data []byte, kind uint8) int64 {
	var n int64
	eachText(data, kind, func(start, end int) { n += int64(end - start) })
	return n
}

// eachText calls visit with the start and end in data of each string value
// (escaped as sent, without its quotes) whose key marks generated text in
// events of kind. It visits only `"key":"` pairs, found by substring
// search, and skips each value with jsonpeek's string scan.
func eachText(data []byte, kind uint8, visit func(start, end int)) {
	var s jsonpeek.Scanner
	off := 0
	for {
		k := bytes.Index(data[off:], []byte(`":"`))
		if k < 0 {
			return
		}
		k += off
		q := bytes.LastIndexByte(data[off:k], '"')
		s.Reset(data[k+2:])
		v := s.Skip()
		if v == nil {
			return
		}
		if q >= 0 && isTextKey(data[off+q+1:k], kind) {
			visit(k+3, k+2+len(v)-1)
		}
		off = k + 2 + len(v)
	}
}

// EventText calls visit with the start and end in data of each piece of
// generated text (content, tool arguments, thinking; escaped as sent,
// without quotes) that one server-sent event of the dialect carries: a
// chat completions chunk, an Anthropic content_block_delta, a Responses
// API *.delta event, a Gemini streamGenerateContent?alt=sse chunk, and,
// for DialectBedrock, the payload of a ConverseStream contentBlockDelta
// event (its text, tool input and reasoning). name is the event's event
// field (a Bedrock event's :event-type), empty when it has none. Any other
// event carries none.
func EventText(dialect string, name, data []byte, visit func(start, end int)) {
	if dialect == DialectBedrock {
		if string(name) == "contentBlockDelta" {
			eachText(data, converseTextKey, visit)
		}
		return
	}
	formats := formatsOf(dialect)
	if len(name) == 0 || string(name) == "message" {
		name = leadingType(data)
	}
	switch {
	case string(name) == "content_block_delta":
		if formats&formatAnthropic != 0 {
			eachText(data, anthropicTextKey, visit)
		}
	case len(name) == 0:
		if t := trimWS(data); len(t) == 0 || t[0] != '{' {
			return // [DONE]
		}
		if i := bytes.Index(data, []byte(`"choices"`)); i >= 0 && formats&formatOpenAI != 0 {
			eachText(data[i:], chatTextKey, func(s, e int) { visit(s+i, e+i) })
		} else if i := bytes.Index(data, []byte(`"candidates"`)); i >= 0 && formats&formatGemini != 0 {
			eachText(data[i:], geminiTextKey, func(s, e int) { visit(s+i, e+i) })
		}
	case formats&formatOpenAI != 0 && bytes.HasPrefix(name, []byte("response.")) && bytes.HasSuffix(name, []byte(".delta")):
		eachText(data, responsesTextKey, visit)
	}
}

// isTextKey reports whether key holds generated text in events of kind.
func isTextKey(key []byte, kind uint8) bool {
	switch kind {
	case chatTextKey:
		switch string(key) {
		case "content", "text", "refusal", "arguments", "reasoning_content", "reasoning":
			return true
		}
	case anthropicTextKey:
		switch string(key) {
		case "text", "partial_json", "thinking":
			return true
		}
	case responsesTextKey:
		return string(key) == "delta"
	case geminiTextKey:
		return string(key) == "text"
	case converseTextKey:
		switch string(key) {
		case "text", "input":
			return true
		}
	}
	return false
}

// leadingType returns the value of "type", as written, when it is the first
// member of the object data holds, as in every Anthropic and Responses API
// event.
func leadingType(data []byte) []byte {
	// A first key that cannot read "type" (chat completion chunks start
	// with "id") is turned away at its first letter, without a scan.
	if q := bytes.IndexByte(data, '"'); q < 0 || q+1 >= len(data) || (data[q+1] != 't' && data[q+1] != '\\') {
		return nil
	}
	s := jsonpeek.NewScanner(data)
	key, ok := s.FirstMember()
	if !ok || string(key) != "type" || s.Peek() != '"' {
		return nil
	}
	v := s.Skip()
	if v == nil {
		return nil
	}
	return v[1 : len(v)-1]
}
