package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/secret"
)

// TestEventStreamGuard: a vault value a model writes into a Bedrock event
// stream (in a chunk's base64 bytes, or a Converse event's JSON) is
// redacted and recorded, and every message of the answer still decodes
// with valid lengths and checksums; a clean stream passes byte for byte.
func TestEventStreamGuard(t *testing.T) {
	const value = "fake-vault-value-0123456789abcdef"
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "provider/prv_test", Value: secret.New(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	frame := func(w *bytes.Buffer, typ, payload string) {
		if err := eventstream.NewEncoder().Encode(w, eventstream.Message{Headers: eventstream.Headers{
			{Name: ":event-type", Value: eventstream.StringValue(typ)},
			{Name: ":content-type", Value: eventstream.StringValue("application/json")},
			{Name: ":message-type", Value: eventstream.StringValue("event")},
		}, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	chunkOf := func(ev string) string {
		b, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(ev)), "p": "abc"})
		return string(b)
	}
	var leaky, clean bytes.Buffer
	frame(&leaky, "chunk", chunkOf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"the key is `+value+`"}}`))
	frame(&leaky, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"again `+value+`"}}`)
	frame(&leaky, "metadata", `{"usage":{"inputTokens":1,"outputTokens":2}}`)
	frame(&clean, "chunk", chunkOf(`{"type":"message_stop"}`))
	frame(&clean, "metadata", `{"usage":{"inputTokens":1,"outputTokens":2}}`)

	var found []leak.Hit
	run := func(in []byte) []byte {
		g := newEventStreamGuard(io.NopCloser(bytes.NewReader(in)), m, func(leak.Hit) bool { return true }, func(h leak.Hit) { found = append(found, h) },
			func(leak.Hit) bool { return true }, func(leak.Hit) {})
		out, err := io.ReadAll(g)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := run(clean.Bytes()); !bytes.Equal(out, clean.Bytes()) || len(found) != 0 {
		t.Fatalf("a clean stream was changed (%d hits)", len(found))
	}
	out := run(leaky.Bytes())
	if len(found) != 2 || found[0].Name != "provider/prv_test" {
		t.Fatalf("hits %+v", found)
	}
	dec := eventstream.NewDecoder()
	var text strings.Builder
	r := bytes.NewReader(out)
	for {
		msg, err := dec.Decode(r, nil)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("a message does not decode after redaction: %v", err)
		}
		p := string(msg.Payload)
		if msg.Headers.Get(":event-type").String() == "chunk" {
			var c struct{ Bytes, P string }
			_ = json.Unmarshal(msg.Payload, &c)
			b, _ := base64.StdEncoding.DecodeString(c.Bytes)
			p = string(b) + " p=" + c.P
		}
		text.WriteString(p + "\n")
	}
	if s := text.String(); strings.Contains(s, value) || strings.Count(s, "[REDACTED:") != 2 || !strings.Contains(s, "p=abc") || !strings.Contains(s, `"outputTokens":2`) {
		t.Fatalf("after the guard:\n%s", s)
	}
}

// TestEventStreamGuardSplitAcrossMessages: a vault value a model streams
// in two pieces, each in its own event-stream message (two
// InvokeModelWithResponseStream chunks, or two ConverseStream
// contentBlockDelta events), is found in the text across them and cut out
// of both before either reaches the client; every message still decodes.
func TestEventStreamGuardSplitAcrossMessages(t *testing.T) {
	const value = "fake-vault-value-0123456789abcdef"
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "provider/prv_test", Value: secret.New(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	frame := func(w *bytes.Buffer, typ, payload string) {
		if err := eventstream.NewEncoder().Encode(w, eventstream.Message{Headers: eventstream.Headers{
			{Name: ":event-type", Value: eventstream.StringValue(typ)},
			{Name: ":content-type", Value: eventstream.StringValue("application/json")},
			{Name: ":message-type", Value: eventstream.StringValue("event")},
		}, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	chunk := func(w *bytes.Buffer, text string) {
		ev, _ := json.Marshal(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]string{"type": "text_delta", "text": text}})
		b, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString(ev)})
		frame(w, "chunk", string(b))
	}
	delta := func(w *bytes.Buffer, text string) {
		b, _ := json.Marshal(map[string]any{"contentBlockIndex": 0, "delta": map[string]string{"text": text}})
		frame(w, "contentBlockDelta", string(b))
	}
	cut := len(value) / 2
	cases := map[string]func(*bytes.Buffer){
		"invoke chunks": func(w *bytes.Buffer) {
			chunk(w, "the key is "+value[:cut])
			chunk(w, value[cut:]+" and more")
			frame(w, "chunk", `{"bytes":"`+base64.StdEncoding.EncodeToString([]byte(`{"type":"message_stop"}`))+`"}`)
		},
		"converse deltas": func(w *bytes.Buffer) {
			frame(w, "messageStart", `{"role":"assistant"}`)
			delta(w, "the key is "+value[:cut])
			delta(w, value[cut:]+" and more")
			frame(w, "contentBlockStop", `{"contentBlockIndex":0}`)
			frame(w, "metadata", `{"usage":{"inputTokens":1,"outputTokens":2}}`)
		},
	}
	for name, write := range cases {
		t.Run(name, func(t *testing.T) {
			var in bytes.Buffer
			write(&in)
			var whole, text []leak.Hit
			g := newEventStreamGuard(io.NopCloser(bytes.NewReader(in.Bytes())), m, func(leak.Hit) bool { return true }, func(h leak.Hit) { whole = append(whole, h) },
				func(leak.Hit) bool { return true }, func(h leak.Hit) { text = append(text, h) })
			out, err := io.ReadAll(g)
			if err != nil {
				t.Fatal(err)
			}
			if len(whole) != 0 || len(text) != 1 || text[0].Name != "provider/prv_test" {
				t.Fatalf("hits in one message %+v, across messages %+v", whole, text)
			}
			var all strings.Builder
			dec := eventstream.NewDecoder()
			r := bytes.NewReader(out)
			n := 0
			for {
				msg, err := dec.Decode(r, nil)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("message %d does not decode after redaction: %v", n, err)
				}
				n++
				p := msg.Payload
				if msg.Headers.Get(":event-type").String() == "chunk" {
					var c struct{ Bytes string }
					_ = json.Unmarshal(p, &c)
					p, _ = base64.StdEncoding.DecodeString(c.Bytes)
				}
				if !json.Valid(p) {
					t.Fatalf("message %d is not JSON after redaction: %s", n, p)
				}
				all.Write(p)
			}
			s := all.String()
			if n != bytes.Count(in.Bytes(), []byte(":message-type")) || strings.Contains(s, value[:cut]) || strings.Contains(s, value[cut:]) ||
				!strings.Contains(s, "the key is [REDACTED:") || !strings.Contains(s, " and more") {
				t.Fatalf("after the guard (%d messages):\n%s", n, s)
			}
		})
	}
}
