package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keygate/keygate/internal/leak"
)

// eventStreamType is the content type of an AWS event stream (Bedrock's
// streaming answers).
const eventStreamType = "application/vnd.amazon.eventstream"

// eventStreamGuard is the outbound check for an AWS event stream: each
// message is read whole, its content checked (a chunk event's base64
// "bytes" decoded first, as that is what the model wrote), and written out
// again, with any credential to redact replaced by [REDACTED:rule] and the
// message's lengths and checksums made anew. Rewriting the raw bytes, as
// the check does for other streams, would break the framing. A credential
// split across two events is not found.
type eventStreamGuard struct {
	src    io.ReadCloser
	dec    *eventstream.Decoder
	enc    *eventstream.Encoder
	m      *leak.Matcher
	redact func(leak.Hit) bool
	record func(leak.Hit)
	out    bytes.Buffer
	err    error
}

func newEventStreamGuard(src io.ReadCloser, m *leak.Matcher, redact func(leak.Hit) bool, record func(leak.Hit)) *eventStreamGuard {
	return &eventStreamGuard{src: src, dec: eventstream.NewDecoder(), enc: eventstream.NewEncoder(), m: m, redact: redact, record: record}
}

// Read passes the stream on, one checked message at a time.
func (g *eventStreamGuard) Read(p []byte) (int, error) {
	for g.out.Len() == 0 {
		if g.err != nil {
			return 0, g.err
		}
		msg, err := g.dec.Decode(g.src, nil)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, io.EOF) {
				g.err = err
			} else {
				g.err = io.EOF
			}
			continue
		}
		g.check(&msg)
		if err := g.enc.Encode(&g.out, msg); err != nil {
			g.err = err
		}
	}
	return g.out.Read(p)
}

// Close closes the upstream body.
func (g *eventStreamGuard) Close() error { return g.src.Close() }

// check records and redacts the credentials in one message's content.
func (g *eventStreamGuard) check(msg *eventstream.Message) {
	if v := msg.Headers.Get(":message-type"); v == nil || v.String() != "event" {
		return
	}
	if v := msg.Headers.Get(":event-type"); v != nil && v.String() == "chunk" {
		var fields map[string]json.RawMessage
		var b64 string
		if json.Unmarshal(msg.Payload, &fields) != nil || json.Unmarshal(fields["bytes"], &b64) != nil {
			return
		}
		text, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return
		}
		if text, changed := g.clean(text); changed {
			fields["bytes"], _ = json.Marshal(base64.StdEncoding.EncodeToString(text))
			msg.Payload, _ = json.Marshal(fields)
		}
		return
	}
	if payload, changed := g.clean(msg.Payload); changed {
		msg.Payload = payload
	}
}

// clean returns b with the hits to redact replaced, and whether any were.
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
