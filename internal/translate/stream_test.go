package translate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// readWithin reads from r until want has been seen or d passes.
func readWithin(t *testing.T, r io.Reader, want string, d time.Duration) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 64)
		for !strings.Contains(b.String(), want) {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.String()
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(d):
		t.Fatalf("%q not readable within %v although upstream sent it", want, d)
		return ""
	}
}

// TestStreamsAreIncremental checks each upstream event is readable as soon
// as it arrives, while upstream is still open: text must not wait for the
// end of the stream.
func TestStreamsAreIncremental(t *testing.T) {
	t.Run("MessagesToChat", func(t *testing.T) {
		pr, pw := io.Pipe()
		r := MessagesToChatStream(pr, "client-model-test", true)
		defer r.Close()
		go func() {
			_, _ = io.WriteString(pw, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake_1\",\"usage\":{\"input_tokens\":3}}}\n\n")
			_, _ = io.WriteString(pw, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
			_, _ = io.WriteString(pw, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"first words\"}}\n\n")
		}()
		readWithin(t, r, `"content":"first words"`, 5*time.Second)
		_ = pw.Close()
	})
	t.Run("ChatToMessages", func(t *testing.T) {
		pr, pw := io.Pipe()
		r := ChatToMessagesStream(pr, "client-model-test")
		defer r.Close()
		go func() {
			_, _ = io.WriteString(pw, "data: {\"id\":\"chatcmpl-fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"first words\"}}]}\n\n")
		}()
		readWithin(t, r, `"text":"first words"`, 5*time.Second)
		_ = pw.Close()
	})
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestStreamCloseClosesUpstream(t *testing.T) {
	for _, mk := range []func(io.ReadCloser) io.ReadCloser{
		func(u io.ReadCloser) io.ReadCloser { return MessagesToChatStream(u, "m", false) },
		func(u io.ReadCloser) io.ReadCloser { return ChatToMessagesStream(u, "m") },
	} {
		u := &closeRecorder{Reader: strings.NewReader("")}
		if err := mk(u).Close(); err != nil || !u.closed {
			t.Errorf("Close: err %v, upstream closed %v", err, u.closed)
		}
	}
}

type failingReader struct{ data io.Reader }

var errUpstreamReset = errors.New("connection reset by fake upstream")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.data.Read(p)
	if err == io.EOF {
		return n, errUpstreamReset
	}
	return n, err
}

// TestStreamReadErrorReachesCaller checks a failing upstream read is
// reported to the caller rather than looking like a clean end.
func TestStreamReadErrorReachesCaller(t *testing.T) {
	in := readTestdata(t, "c2m_stream_truncated.in.sse")
	r := ChatToMessagesStream(io.NopCloser(&failingReader{bytes.NewReader(in)}), "m")
	out, err := io.ReadAll(r)
	if !errors.Is(err, errUpstreamReset) {
		t.Fatalf("err = %v, want the upstream's read error", err)
	}
	if !bytes.Contains(out, []byte("text_delta")) {
		t.Errorf("events before the failure were lost: %s", out)
	}
}

func TestSSEDecoder(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than the read buffer
	in := ": a comment\r\n" +
		"event: first\r\ndata: {\"a\":1}\r\n\r\n" +
		"event: no-data\n\n" +
		"data:no-space\ndata:  two spaces\n\n" +
		"data: " + long + "\n\n" +
		"retry: 100\nid: 7\ndata: last\n" // no blank line at the end
	d := sseDecoder{br: bufio.NewReaderSize(strings.NewReader(in), 16)}
	type ev struct{ name, data string }
	var got []ev
	for {
		name, data, err := d.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev{string(name), string(data)})
	}
	want := []ev{{"first", `{"a":1}`}, {"", "no-space\n two spaces"}, {"", long}, {"", "last"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events differ:\n got %.200q\nwant %.200q", got, want)
	}
}

// validJSON reports whether b holds exactly one JSON value, as the
// translators' scanner reads it.
func validJSON(b []byte) bool {
	s := jsonpeek.NewScanner(b)
	return s.Skip() != nil && s.End()
}

func TestScanner(t *testing.T) {
	valid := []string{`{}`, `[]`, `{"a":[1,-2.5e3,true,false,null,"\u00e9\n"]}`, ` 0 `, `"x"`}
	invalid := []string{``, `{`, `{"a" 1}`, `{"a":1 "b":2}`, `[1 2]`, `[1,]`, `{"a":1,}`, `"\x"`, `"\u12"`, "\"a\x01\"", `01`, `1.`, `-`, `tru`, `{} {}`, `{"a":1}}`}
	for _, s := range valid {
		if !validJSON([]byte(s)) || !json.Valid([]byte(s)) {
			t.Errorf("%q: validJSON %v, json.Valid %v", s, validJSON([]byte(s)), json.Valid([]byte(s)))
		}
	}
	for _, s := range invalid {
		if validJSON([]byte(s)) {
			t.Errorf("%q accepted", s)
		}
	}
	obj := []byte(`{"type":"x", "delta" : {"text":"a\"b"}, "n":12}`)
	if got := string(field(field(obj, "delta"), "text")); got != `"a\"b"` {
		t.Errorf("delta.text = %s", got)
	}
	if n, ok := uint64Of(field(obj, "n")); !ok || n != 12 {
		t.Errorf("n = %d %v", n, ok)
	}
	if field(obj, "missing") != nil || field([]byte(`[1]`), "type") != nil {
		t.Error("found a member that is not there")
	}
}

// checkDataLines checks every data line of an SSE body is [DONE] or valid
// JSON, and returns how many there were.
func checkDataLines(t testing.TB, out []byte) int {
	n := 0
	for line := range bytes.Lines(out) {
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\n"), []byte("data: "))
		if !ok {
			continue
		}
		n++
		if string(data) != "[DONE]" && !json.Valid(data) {
			t.Fatalf("data line is not JSON: %s", data)
		}
	}
	return n
}

// TestTranslatedStreamsEnd checks the terminal events: [DONE] closes every
// complete OpenAI stream and nothing follows it; message_stop closes every
// complete Anthropic stream.
func TestTranslatedStreamsEnd(t *testing.T) {
	for _, c := range []struct {
		in, end string
		clean   bool
	}{
		{"m2c_stream_text.in.sse", "data: [DONE]\n\n", true},
		{"m2c_stream_tools.in.sse", "data: [DONE]\n\n", true},
		{"m2c_stream_truncated.in.sse", "data: [DONE]\n\n", false},
		{"m2c_stream_error_midstream.in.sse", "data: [DONE]\n\n", false},
		{"c2m_stream_text.in.sse", "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true},
		{"c2m_stream_tools.in.sse", "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true},
		{"c2m_stream_truncated.in.sse", "event: message_stop", false},
		{"c2m_stream_error_midstream.in.sse", "event: message_stop", false},
	} {
		in := readTestdata(t, c.in)
		var r io.ReadCloser
		if strings.HasPrefix(c.in, "m2c") {
			r = MessagesToChatStream(io.NopCloser(bytes.NewReader(in)), "m", true)
		} else {
			r = ChatToMessagesStream(io.NopCloser(bytes.NewReader(in)), "m")
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		checkDataLines(t, out)
		if c.clean != bytes.HasSuffix(out, []byte(c.end)) || (!c.clean && bytes.Contains(out, []byte(c.end))) {
			t.Errorf("%s: clean end %v expected, output:\n%s", c.in, c.clean, out)
		}
		if bytes.Count(out, []byte("[DONE]")) > 1 {
			t.Errorf("%s: more than one [DONE]", c.in)
		}
	}
}

// TestStreamsReadEscapedKeys: an upstream that escapes letters of its keys
// is read as its SDK reads it (keys match after unescaping), so the
// translation is the same as for the plain stream.
func TestStreamsReadEscapedKeys(t *testing.T) {
	escape := strings.NewReplacer(`"type":`, `"\u0074ype":`, `"index":`, `"ind\u0065x":`, `"delta":`, `"d\u0065lta":`,
		`"content":`, `"c\u006fntent":`, `"text":`, `"t\u0065xt":`, `"partial_json":`, `"partial_js\u006fn":`,
		`"choices":`, `"ch\u006fices":`, `"tool_calls":`, `"t\u006fol_calls":`, `"arguments":`, `"argum\u0065nts":`,
		`"usage":`, `"us\u0061ge":`, `"content_block":`, `"c\u006fntent_block":`)
	for _, name := range []string{"m2c_stream_tools", "m2c_stream_text", "c2m_stream_tools", "c2m_stream_text"} {
		in := readTestdata(t, name+".in.sse")
		escaped := []byte(escape.Replace(string(in)))
		if bytes.Equal(escaped, in) {
			t.Fatalf("%s: no key was escaped", name)
		}
		if got, want := runCase(t, name, escaped), runCase(t, name, in); !bytes.Equal(got, want) {
			t.Errorf("%s with escaped keys:\n%s\nwant:\n%s", name, got, want)
		}
	}
}
