package translate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// goldenMessageID is the Anthropic message id the Converse golden files
// are written with.
const goldenMessageID = "msg_bdrk_golden"

// converseEvents encodes a .in.events file into an AWS event stream: one
// frame a line, "eventType {json payload}", or "!exceptionType {json}" for
// an exception.
func converseEvents(t testing.TB, in []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, payload, _ := strings.Cut(line, " ")
		h := eventstream.Headers{{Name: ":content-type", Value: eventstream.StringValue("application/json")}}
		if exc, ok := strings.CutPrefix(name, "!"); ok {
			h = append(h, eventstream.Header{Name: ":message-type", Value: eventstream.StringValue("exception")},
				eventstream.Header{Name: ":exception-type", Value: eventstream.StringValue(exc)})
		} else {
			h = append(h, eventstream.Header{Name: ":message-type", Value: eventstream.StringValue("event")},
				eventstream.Header{Name: ":event-type", Value: eventstream.StringValue(name)})
		}
		if err := eventstream.NewEncoder().Encode(&out, eventstream.Message{Headers: h, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// runConverseCase runs the Converse golden cases: m2v (an Anthropic
// Messages request to Converse) and v2m (a Converse answer or stream to
// Anthropic's).
func runConverseCase(t *testing.T, kind string, in []byte) ([]byte, error, bool) {
	switch kind {
	case "m2v_req":
		body, model, stream, err := MessagesToConverseRequest(in)
		if err != nil {
			return nil, err, false
		}
		out, err := marshal(struct {
			Model  string          `json:"model"`
			Stream bool            `json:"stream"`
			Body   json.RawMessage `json:"body"`
		}{model, stream, body})
		return out, err, false
	case "v2m_resp":
		out, err := ConverseToMessagesResponse(in, goldenMessageID, goldenClientModel)
		return out, err, false
	case "v2m_stream":
		out, err := io.ReadAll(ConverseStreamToMessages(io.NopCloser(bytes.NewReader(converseEvents(t, in))), goldenMessageID, goldenClientModel))
		if err != nil {
			t.Fatal(err)
		}
		return out, nil, true
	}
	t.Fatalf("unknown Converse case kind %q", kind)
	return nil, nil, false
}

// TestConverseStreamCorrupt: a frame whose checksum does not match ends
// the translated stream with an Anthropic error event, not a panic or a
// silent stop.
func TestConverseStreamCorrupt(t *testing.T) {
	frames := converseEvents(t, []byte("messageStart {\"role\":\"assistant\"}\ncontentBlockDelta {\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}\n"))
	frames[len(frames)-1] ^= 0xff
	out, err := io.ReadAll(ConverseStreamToMessages(io.NopCloser(bytes.NewReader(frames)), "msg_x", "m"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("event: message_start")) || !bytes.HasSuffix(out, []byte("\n\n")) || !bytes.Contains(out, []byte(`event: error`)) ||
		bytes.Contains(out, []byte("Hi")) {
		t.Fatalf("a corrupt frame: %s", out)
	}
}

// FuzzConverseStreamToMessages holds the ConverseStream decoder path to
// never failing and never writing anything but whole server-sent events
// whose data is JSON, whatever bytes upstream sends; seeds are the golden
// streams, whole and cut.
func FuzzConverseStreamToMessages(f *testing.F) {
	for _, name := range []string{"text", "tools", "exception", "no_metadata"} {
		b, err := os.ReadFile(filepath.Join("testdata", "v2m_stream_"+name+".in.events"))
		if err != nil {
			f.Fatal(err)
		}
		frames := converseEvents(f, b)
		f.Add(frames)
		f.Add(frames[:len(frames)/2])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(ConverseStreamToMessages(io.NopCloser(bytes.NewReader(in)), "msg_x", "m"))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range strings.Split(string(out), "\n\n") {
			if ev == "" {
				continue
			}
			name, data, ok := strings.Cut(ev, "\ndata: ")
			if !ok || !strings.HasPrefix(name, "event: ") || !json.Valid([]byte(data)) {
				t.Fatalf("not a whole event with JSON data: %q", ev)
			}
		}
	})
}

// FuzzMessagesToConverseRequest holds the request translator to a typed
// error or one JSON object.
func FuzzMessagesToConverseRequest(f *testing.F) {
	seedFromTestdata(f, "m2v_req_")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, _, _, err := MessagesToConverseRequest(body)
		checkRequestResult(t, out, err)
	})
}
