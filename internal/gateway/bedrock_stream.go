package gateway

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/usage"
)

// eventStreamType is the content type of an AWS event stream (Bedrock's
// streaming answers).
const eventStreamType = "application/vnd.amazon.eventstream"

// eventStreamGuard is the outbound check for an AWS event stream (a
// Bedrock client's InvokeModelWithResponseStream or ConverseStream,
// passed through). Rewriting the raw bytes, as the check does for other
// streams, would break the framing, so each message is decoded whole, its
// content checked (a chunk event's base64 "bytes" decoded first, as that
// is what the model wrote), and encoded again with its lengths and
// checksums made anew.
//
// Two checks run, as for server-sent events (checkAnswer and textGuard):
// each message's content on its own, and the text the model generates
// (an Anthropic chunk's text deltas, a contentBlockDelta's text and tool
// input) as one text across messages, since a model streams a credential a
// few characters per event. For the second, a message is held back, with
// every message after it, until no credential can still be growing across
// it, and a hit to redact is cut out of every message holding a piece of
// it: the first piece becomes [REDACTED:rule], the others are emptied.
type eventStreamGuard struct {
	src io.ReadCloser
	br  *bufio.Reader
	dec *eventstream.Decoder
	enc *eventstream.Encoder
	m   *leak.Matcher

	redact     func(leak.Hit) bool // which hits in one message to cut out
	record     func(leak.Hit)      // told of hits in one message
	textRedact func(leak.Hit) bool // which hits across messages to cut out; nil: none, nothing held
	textRecord func(leak.Hit)      // told of hits in the text across messages

	text   *leak.Stream
	passed int64 // text the stream has passed on
	fed    int64 // text written to the stream
	hits   []leak.Hit
	held   []heldMessage
	size   int

	out bytes.Buffer
	err error
}

// heldMessage is an event-stream message waiting for its text to be
// cleared. doc is the JSON its text lives in: the payload, or a chunk's
// decoded bytes (chunk is then the payload's members, to encode it into).
type heldMessage struct {
	msg   eventstream.Message
	doc   []byte
	chunk map[string]json.RawMessage
	spans []textSpan
}

// newEventStreamGuard returns the guard reading src. redact and record
// serve the check of each message; textRecord and textRedact the check of
// the text across messages (textRedact nil: hits there are recorded only,
// and nothing is held back).
func newEventStreamGuard(src io.ReadCloser, m *leak.Matcher, redact func(leak.Hit) bool, record func(leak.Hit),
	textRedact func(leak.Hit) bool, textRecord func(leak.Hit)) *eventStreamGuard {
	g := &eventStreamGuard{src: src, br: bufio.NewReaderSize(src, 16<<10), dec: eventstream.NewDecoder(), enc: eventstream.NewEncoder(),
		m: m, redact: redact, record: record, textRedact: textRedact, textRecord: textRecord}
	g.text = m.NewStream(passedCounter{&g.passed}, false, func(h leak.Hit) error {
		g.textRecord(h)
		if g.textRedact != nil && g.textRedact(h) {
			g.hits = append(g.hits, h)
		}
		return nil
	})
	return g
}

// Read passes the stream on, one checked message at a time.
func (g *eventStreamGuard) Read(p []byte) (int, error) {
	for g.out.Len() == 0 {
		if g.err != nil {
			return 0, g.err
		}
		msg, err := g.dec.Decode(g.br, nil)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, io.EOF) {
				g.err = err
			} else {
				g.err = io.EOF
			}
			_ = g.text.Close()
			g.passed = g.fed
			g.release(true)
			continue
		}
		g.add(msg)
	}
	return g.out.Read(p)
}

// Close closes the upstream body.
func (g *eventStreamGuard) Close() error { return g.src.Close() }

// add checks one message, feeds its text to the text stream and holds it.
func (g *eventStreamGuard) add(msg eventstream.Message) {
	h := heldMessage{msg: msg}
	if v := msg.Headers.Get(":message-type"); v != nil && v.String() == "event" {
		typ := ""
		if v := msg.Headers.Get(":event-type"); v != nil {
			typ = v.String()
		}
		name := []byte(typ)
		h.doc = msg.Payload
		if typ == "chunk" {
			var fields map[string]json.RawMessage
			var b64 string
			if json.Unmarshal(msg.Payload, &fields) == nil && json.Unmarshal(fields["bytes"], &b64) == nil {
				if text, err := base64.StdEncoding.DecodeString(b64); err == nil {
					var ev struct {
						Type string `json:"type"`
					}
					_ = json.Unmarshal(text, &ev) // the Anthropic event's type, wherever it stands
					h.doc, h.chunk, name = text, fields, []byte(ev.Type)
				}
			}
		}
		if doc, changed := g.clean(h.doc); changed {
			h.doc = doc
			h.encode()
		}
		dialect := usage.DialectBedrock
		if h.chunk != nil {
			dialect = usage.DialectAnthropic // a chunk holds an Anthropic Messages event
		}
		usage.EventText(dialect, name, h.doc, func(s, e int) {
			sp := textSpan{s: s, e: e, at: g.fed}
			h.spans = append(h.spans, sp)
			_, _ = g.text.Write(h.doc[s:e])
			g.fed += int64(e - s)
		})
	}
	g.held = append(g.held, h)
	g.size += len(h.doc)
	g.release(g.textRedact == nil || g.size > maxHeldBytes)
}

// encode writes h.doc back into the message's payload.
func (h *heldMessage) encode() {
	if h.chunk == nil {
		h.msg.Payload = h.doc
		return
	}
	h.chunk["bytes"], _ = json.Marshal(base64.StdEncoding.EncodeToString(h.doc))
	h.msg.Payload, _ = json.Marshal(h.chunk)
}

// release passes on the held messages, in order, whose text the stream
// has cleared (all of them with force).
func (g *eventStreamGuard) release(force bool) {
	i := 0
	for ; i < len(g.held); i++ {
		h := &g.held[i]
		if !force && len(h.spans) > 0 && h.spans[len(h.spans)-1].end() > g.passed {
			break
		}
		g.size -= len(h.doc)
		g.write(h)
	}
	g.held = append(g.held[:0], g.held[i:]...)
	low := g.passed
	for _, h := range g.held {
		if len(h.spans) > 0 {
			low = min(low, h.spans[0].at)
			break
		}
	}
	g.hits = hitsAfter(g.hits, low)
}

// write encodes one message into the output, its text cut where a hit to
// redact covers it.
func (g *eventStreamGuard) write(h *heldMessage) {
	if len(g.hits) > 0 && len(h.spans) > 0 {
		var b bytes.Buffer
		cutHits(&b, h.doc, h.spans, g.hits)
		if !bytes.Equal(b.Bytes(), h.doc) {
			h.doc = b.Bytes()
			h.encode()
		}
	}
	if err := g.enc.Encode(&g.out, h.msg); err != nil && g.err == nil {
		g.err = err
	}
}

// clean returns b with the hits in it to redact replaced, and whether any
// were.
func (g *eventStreamGuard) clean(b []byte) ([]byte, bool) {
	var redact []leak.Hit
	for _, h := range g.m.Check(b) {
		g.record(h)
		if g.redact(h) {
			redact = append(redact, h)
		}
	}
	if len(redact) == 0 {
		return b, false
	}
	return leak.Redacted(b, redact), true
}
