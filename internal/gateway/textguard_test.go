package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/usage"
)

// chatStream renders pieces as an OpenAI chat completions stream, each
// piece one chunk, JSON-escaped as a provider would.
func chatStream(pieces []string) []byte {
	var b bytes.Buffer
	b.WriteString("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n")
	for _, p := range pieces {
		q, _ := json.Marshal(p)
		b.WriteString("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":" + string(q) + "},\"finish_reason\":null}]}\n\n")
	}
	b.WriteString("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	return b.Bytes()
}

// chatText joins the generated text of a chat completions or Anthropic
// stream, failing on an event that is not valid JSON. A body that is not
// a stream is its own text.
func chatText(t *testing.T, stream []byte) string {
	t.Helper()
	if !bytes.Contains(stream, []byte("data: ")) {
		return string(stream)
	}
	var out strings.Builder
	for _, line := range strings.Split(string(stream), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Delta struct{ Text string } `json:"delta"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event is not valid JSON (%v): %s", err, data)
		}
		for _, c := range ev.Choices {
			out.WriteString(c.Delta.Content)
		}
		out.WriteString(ev.Delta.Text)
	}
	return out.String()
}

// trickle is a reader handing out its bytes a few at a time.
type trickle struct {
	b   []byte
	rnd *rand.Rand
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.b), 1+r.rnd.IntN(40))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// TestTextGuardRedactsWhateverTheSplit: a vault value in a streamed answer
// is cut out however the model splits the text into events and however the
// network splits the events into reads, with characters JSON escapes
// around and inside the text (quotes, newlines, tabs, non-ASCII); every
// event stays valid JSON and the rest of the text arrives unchanged.
func TestTextGuardRedactsWhateverTheSplit(t *testing.T) {
	value := "pw-" + strings.Repeat("k3y", 12)
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	fillers := []string{"a", "\"", "\n", "\t", "é", "\\", "<", " ", "\u2028", "ok."}
	for i := range 300 {
		var pre, post strings.Builder
		for range rnd.IntN(30) {
			pre.WriteString(fillers[rnd.IntN(len(fillers))])
		}
		for range rnd.IntN(30) {
			post.WriteString(fillers[rnd.IntN(len(fillers))])
		}
		text := pre.String() + value + post.String()
		if i%3 == 0 {
			text += " and again " + value
		}
		var pieces []string
		for rest := []rune(text); len(rest) > 0; {
			n := min(len(rest), 1+rnd.IntN(6))
			pieces = append(pieces, string(rest[:n]))
			rest = rest[n:]
		}
		var hits int
		g := newTextGuard(m, io.NopCloser(&trickle{b: chatStream(pieces), rnd: rnd}), "openai",
			func(leak.Hit) { hits++ }, func(leak.Hit) bool { return true })
		out, err := io.ReadAll(g)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ReplaceAll(text, value, "[REDACTED:vault-value]")
		if got := chatText(t, out); got != want {
			t.Fatalf("split %q:\ngot  %q\nwant %q", pieces, got, want)
		}
		if bytes.Contains(out, []byte("k3y")) {
			t.Fatalf("a piece of the value reached the client: %s", out)
		}
		if hits != strings.Count(text, value) {
			t.Fatalf("%d hits recorded for %d values", hits, strings.Count(text, value))
		}
	}
}

// TestTextGuardPassesCleanStreamsUnchanged: a stream without a credential
// comes out with the same text and every event without text byte for
// byte; an event whose last word could still begin a credential is only
// split, its cleared start passed on at once.
func TestTextGuardPassesCleanStreamsUnchanged(t *testing.T) {
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New("pw-" + strings.Repeat("z9", 16))}}})
	if err != nil {
		t.Fatal(err)
	}
	in := chatStream([]string{"Hel", "lo \"wor", "ld\"\n", "é!"})
	in = append(in, []byte("event: ping\ndata: {}\n\n: comment\n\n")...)
	g := newTextGuard(m, io.NopCloser(&trickle{b: in, rnd: rand.New(rand.NewPCG(3, 4))}), "openai",
		func(leak.Hit) { t.Error("a hit in a clean stream") }, func(leak.Hit) bool { return true })
	out, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := chatText(t, out), chatText(t, in); got != want {
		t.Fatalf("a clean stream's text changed:\n%q\nwant\n%q", got, want)
	}
	if a, b := withoutText(out), withoutText(in); a != b {
		t.Fatalf("a clean stream's other events changed:\n%s\nwant\n%s", a, b)
	}
}

// withoutText drops a chat stream's content events, leaving the others.
func withoutText(stream []byte) string {
	var out []string
	for _, ev := range strings.SplitAfter(string(stream), "\n\n") {
		if !strings.Contains(ev, `"content":`) {
			out = append(out, ev)
		}
	}
	return strings.Join(out, "")
}

// TestTextGuardPassesClearedWordsAtOnce: an event is not held whole while
// its last word may still grow into a credential: the words before it
// reach the client before the next event arrives, and the held word
// follows with the next.
func TestTextGuardPassesClearedWordsAtOnce(t *testing.T) {
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New("pw-" + strings.Repeat("z9", 16))}}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	g := newTextGuard(m, pr, "openai", func(leak.Hit) { t.Error("a hit in a clean stream") }, func(leak.Hit) bool { return true })
	first := chatStream([]string{"Hello from the keygate fa"})
	go pw.Write(first[:bytes.LastIndex(first, []byte("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},"))])
	buf := make([]byte, 4096)
	var got []byte
	for !strings.Contains(string(got), "keygate ") {
		n, err := g.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if text := chatText(t, got); text != "Hello from the keygate " {
		t.Fatalf("passed at once %q, want the words before the last", text)
	}
	go func() {
		pw.Write([]byte("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ke upstream.\"},\"finish_reason\":null}]}\n\n"))
		pw.Close()
	}()
	rest, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	if text := chatText(t, append(got, rest...)); text != "Hello from the keygate fake upstream." {
		t.Fatalf("text %q", text)
	}
}

// TestTextGuardFindOnly: with nothing to redact (leaks.stream_text: find)
// every event passes at once and unchanged, and a split credential is
// still found.
func TestTextGuardFindOnly(t *testing.T) {
	value := "pw-" + strings.Repeat("q7", 16)
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	text := "use " + value + " now"
	var pieces []string
	for i := 0; i < len(text); i += 3 {
		pieces = append(pieces, text[i:min(i+3, len(text))])
	}
	in := chatStream(pieces)
	evs := bytes.SplitAfter(in, []byte("\n\n"))
	evs = evs[:len(evs)-1] // the empty rest after the last blank line
	var hits int
	g := newTextGuard(m, io.NopCloser(&oneEach{evs: evs}), "openai", func(leak.Hit) { hits++ }, nil)
	// Each event comes out of the read that took it in: nothing is held.
	var out bytes.Buffer
	buf := make([]byte, 1<<16)
	for i, ev := range evs {
		n, err := g.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], ev) {
			t.Fatalf("read %d gave %q (%v), want the event just sent, %q", i, buf[:n], err, ev)
		}
		out.Write(buf[:n])
	}
	if !bytes.Equal(out.Bytes(), in) || hits != 1 {
		t.Fatalf("find only: changed %v, %d hits", !bytes.Equal(out.Bytes(), in), hits)
	}
}

// oneEach is a reader handing out one event per read.
type oneEach struct{ evs [][]byte }

func (r *oneEach) Read(p []byte) (int, error) {
	if len(r.evs) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.evs[0])
	r.evs = r.evs[1:]
	return n, nil
}

// TestTextGuardGeminiStream: a vault value split across the chunks of a
// Gemini streamGenerateContent?alt=sse answer is cut out too.
func TestTextGuardGeminiStream(t *testing.T) {
	value := "pw-" + strings.Repeat("g5", 16)
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New(value)}}})
	if err != nil {
		t.Fatal(err)
	}
	text := "the password is " + value + ", keep it safe"
	var in bytes.Buffer
	for i := 0; i < len(text); i += 4 {
		q, _ := json.Marshal(text[i:min(i+4, len(text))])
		in.WriteString(`data: {"candidates":[{"content":{"parts":[{"text":` + string(q) + `}],"role":"model"},"index":0}],"modelVersion":"gemini-2.5-flash"}` + "\r\n\r\n")
	}
	g := newTextGuard(m, io.NopCloser(&trickle{b: in.Bytes(), rnd: rand.New(rand.NewPCG(5, 6))}), "gemini",
		func(leak.Hit) {}, func(leak.Hit) bool { return true })
	out, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, line := range strings.Split(string(out), "\r\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Candidates []struct {
				Content struct {
					Parts []struct{ Text string } `json:"parts"`
				} `json:"content"`
			} `json:"candidates"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event is not valid JSON (%v): %s", err, data)
		}
		for _, c := range ev.Candidates {
			for _, p := range c.Content.Parts {
				got.WriteString(p.Text)
			}
		}
	}
	if want := "the password is [REDACTED:vault-value], keep it safe"; got.String() != want {
		t.Fatalf("got %q, want %q", got.String(), want)
	}
}

// FuzzTextGuard: whatever an upstream streams (broken events, escapes cut
// anywhere, a vault value spread over them), the guard never panics, passes
// a stream without the value unchanged but for events split where their
// text is, and never lets the value through whole in the text of the
// events it reads.
func FuzzTextGuard(f *testing.F) {
	value := "pw-" + strings.Repeat("f4", 12)
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New(value)}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`data: {"choices":[{"delta":{"content":"a\"b"}}]}`+"\n\n"), uint8(3), true)
	f.Add(chatStream([]string{"x pw-f4f4", "f4f4f4f4f4f4f4f4f4f4 y"}), uint8(5), true)
	f.Add([]byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"\\u00e9\\\\\"}}\n\n"), uint8(1), false)
	f.Fuzz(func(t *testing.T, in []byte, step uint8, openai bool) {
		dialect := "anthropic"
		if openai {
			dialect = "openai"
		}
		g := newTextGuard(m, io.NopCloser(&fixedSteps{b: in, n: int(step%64) + 1}), dialect, func(leak.Hit) {}, func(leak.Hit) bool { return true })
		out, err := io.ReadAll(g)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(in, []byte("f4f4")) {
			ti, si := splitText(dialect, in)
			to, so := splitText(dialect, out)
			if ti != to || si != so {
				t.Fatalf("a stream without the value changed:\n%q\n%q", in, out)
			}
		}
		if !bytes.Contains(in, []byte(value)) && bytes.Contains(out, []byte(value)) {
			t.Fatalf("the output holds the value whole though the input did not: %q", out)
		}
	})
}

// fixedSteps hands out its bytes n at a time.
type fixedSteps struct {
	b []byte
	n int
}

func (r *fixedSteps) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), len(r.b), r.n)
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

// splitText reads a stream as the guard does and returns the text of its
// events, as escaped in them, and the rest of its bytes with each text cut
// out; an event split in two by the guard leaves the same rest twice in a
// row, which is kept once.
func splitText(dialect string, stream []byte) (text, rest string) {
	var t, r strings.Builder
	last := ""
	for len(stream) > 0 {
		end := eventEnd(stream)
		if end < 0 {
			r.Write(stream)
			break
		}
		raw := stream[:end]
		stream = stream[end:]
		var skel bytes.Buffer
		pos := 0
		if name, data, off, ok := eventData(raw); ok {
			usage.EventText(dialect, name, data, func(s, e int) {
				t.Write(raw[off+s : off+e])
				skel.Write(raw[pos : off+s])
				pos = off + e
			})
		}
		skel.Write(raw[pos:])
		if pos > 0 && skel.String() == last {
			continue
		}
		last = ""
		if pos > 0 {
			last = skel.String()
		}
		r.Write(skel.Bytes())
	}
	return t.String(), r.String()
}
