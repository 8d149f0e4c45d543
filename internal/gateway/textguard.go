package gateway

import (
	"bytes"
	"io"

	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/usage"
)

// maxHeldBytes bounds the events a textGuard holds back while their text
// may still be part of a credential; beyond it they are passed on
// unchecked-for-splits (the byte check still saw them) rather than held
// without end.
const maxHeldBytes = 1 << 20

// textGuard checks the text a streamed answer generates as one text,
// though models stream it a few characters per event, and redacts a
// credential split across events before any piece of it reaches the
// client. The byte check (leak.Stream in checkAnswer) cannot see such a
// credential whole: JSON framing lies between its pieces.
//
// It reads whole server-sent events, feeds the generated-text values of
// each (usage.EventText: content, tool arguments, thinking) to a
// leak.Stream, and holds an event back, with every event after it, until
// the stream has passed on all of its text: until no credential can still
// be growing across it. That is normally a few dozen characters, so the
// client sees the text a handful of tokens late, never a credential's
// first pieces. A hit to redact is cut out of the events holding it, the
// first piece replaced by [REDACTED:rule], the others emptied; the events
// stay valid JSON, and every other byte passes unchanged.
type textGuard struct {
	src     io.ReadCloser
	dialect string
	text    *leak.Stream
	passed  int64 // text the stream has passed on: nothing before it can still be a hit
	fed     int64 // text written to the stream
	hits    []leak.Hit
	record  func(leak.Hit)
	redact  func(leak.Hit) bool

	in   []byte // read, not yet a whole event
	held []heldEvent
	size int // bytes held
	out  bytes.Buffer
	buf  []byte
	eof  bool
}

// heldEvent is an event waiting for its text to be cleared.
type heldEvent struct {
	raw   []byte
	spans []textSpan
}

// textSpan is a piece of generated text in an event: raw[s:e], at offset
// at of the answer's text.
type textSpan struct {
	s, e int
	at   int64
}

// end returns the text offset just after the span.
func (t textSpan) end() int64 { return t.at + int64(t.e-t.s) }

// newTextGuard returns a textGuard reading the stream src of dialect;
// record is told of every hit, and redact says which to cut out. With
// redact nil nothing is held back or cut out: hits are only recorded.
func newTextGuard(m *leak.Matcher, src io.ReadCloser, dialect string, record func(leak.Hit), redact func(leak.Hit) bool) *textGuard {
	g := &textGuard{src: src, dialect: dialect, record: record, redact: redact}
	g.text = m.NewStream(passedCounter{&g.passed}, false, func(h leak.Hit) error {
		g.record(h)
		if g.redact != nil && g.redact(h) {
			g.hits = append(g.hits, h)
		}
		return nil
	})
	return g
}

// passedCounter counts what the text stream passes on: with redaction off
// it passes every byte, so the count is the offset up to which the text is
// cleared.
type passedCounter struct{ n *int64 }

func (c passedCounter) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }

// Read passes on the events whose text is cleared.
func (g *textGuard) Read(p []byte) (int, error) {
	for g.out.Len() == 0 {
		if g.eof {
			return 0, io.EOF
		}
		if g.buf == nil {
			g.buf = make([]byte, 8<<10)
		}
		n, err := g.src.Read(g.buf)
		if n > 0 {
			g.in = append(g.in, g.buf[:n]...)
			g.events()
		}
		if err == io.EOF {
			g.eof = true
			_ = g.text.Close()
			g.passed = g.fed
			g.release(true)
			g.out.Write(g.in) // an unfinished last event, as sent
			g.in = nil
		} else if err != nil {
			return 0, err
		}
	}
	return g.out.Read(p)
}

// Close closes the upstream body.
func (g *textGuard) Close() error { return g.src.Close() }

// events takes every whole event off g.in, checks its text and holds it.
func (g *textGuard) events() {
	for {
		end := eventEnd(g.in)
		if end < 0 {
			break
		}
		raw := append([]byte(nil), g.in[:end]...)
		g.in = g.in[end:]
		ev := heldEvent{raw: raw}
		if name, data, off, ok := eventData(raw); ok {
			usage.EventText(g.dialect, name, data, func(s, e int) {
				sp := textSpan{s: off + s, e: off + e, at: g.fed}
				ev.spans = append(ev.spans, sp)
				_, _ = g.text.Write(raw[sp.s:sp.e])
				g.fed += int64(e - s)
			})
		}
		g.held = append(g.held, ev)
		g.size += len(raw)
		g.release(g.redact == nil || g.size > maxHeldBytes)
	}
	if len(g.in) == 0 {
		g.in = g.in[:0]
	}
}

// release passes on the held events, in order, whose text the stream has
// cleared (all of them with force).
func (g *textGuard) release(force bool) {
	i := 0
	for ; i < len(g.held); i++ {
		ev := &g.held[i]
		if !force && len(ev.spans) > 0 && ev.spans[len(ev.spans)-1].end() > g.passed {
			g.passCleared(ev)
			break
		}
		g.write(ev)
		g.size -= len(ev.raw)
	}
	g.held = append(g.held[:0], g.held[i:]...)
	// Hits wholly before what is still held are done with.
	low := g.passed
	for _, ev := range g.held {
		if len(ev.spans) > 0 {
			low = min(low, ev.spans[0].at)
			break
		}
	}
	g.hits = hitsAfter(g.hits, low)
}

// passCleared passes on now the cleared start of the text of ev, the first
// event still held, in a copy of the event, and keeps the rest of its
// text held: the client sees each word as soon as it cannot be part of a
// credential, rather than a whole event late. Only an event with one text
// span, no hit in it and no end-of-answer field (a finish reason, usage)
// is split, so a client never sees such a field twice.
func (g *textGuard) passCleared(ev *heldEvent) {
	if len(ev.spans) != 1 || splitUnsafe(ev.raw) {
		return
	}
	sp := ev.spans[0]
	if g.passed <= sp.at {
		return
	}
	for _, h := range g.hits {
		if h.End > sp.at && h.Start < sp.end() {
			return
		}
	}
	c := splitSafe(ev.raw, sp.s, sp.s+int(g.passed-sp.at))
	if c <= sp.s {
		return
	}
	g.out.Write(ev.raw[:c])
	g.out.Write(ev.raw[sp.e:])
	rest := make([]byte, 0, len(ev.raw)-(c-sp.s))
	rest = append(append(rest, ev.raw[:sp.s]...), ev.raw[c:]...)
	g.size -= len(ev.raw) - len(rest)
	ev.raw = rest
	ev.spans[0] = textSpan{s: sp.s, e: sp.e - (c - sp.s), at: sp.at + int64(c-sp.s)}
}

// splitUnsafe reports whether an event carries a field a client must see
// once: a finish or stop reason, or usage.
func splitUnsafe(raw []byte) bool {
	for _, f := range [...]string{`"finish_reason":"`, `"finishReason"`, `"stop_reason":"`, `"usage":{`, `"usageMetadata"`} {
		if bytes.Contains(raw, []byte(f)) {
			return true
		}
	}
	return false
}

// splitSafe moves a split at i of the escaped string starting at start
// back to where both halves stay valid text: not inside an escape
// sequence, a UTF-8 sequence or a surrogate pair.
func splitSafe(raw []byte, start, i int) int {
	i = escapeSafe(raw, start, i)
	for i > start && raw[i]&0xC0 == 0x80 {
		i--
	}
	// \uD800-\uDBFF opens a surrogate pair that the next escape closes.
	if i-6 >= start && raw[i-6] == '\\' && raw[i-5] == 'u' && (raw[i-4]|0x20) == 'd' {
		if c := raw[i-3] | 0x20; c == '8' || c == '9' || c == 'a' || c == 'b' {
			i = escapeSafe(raw, start, i-6)
		}
	}
	return i
}

// hitsAfter keeps, in place, the hits that end after text offset low:
// those wholly before what a guard still holds are done with.
func hitsAfter(hits []leak.Hit, low int64) []leak.Hit {
	k := 0
	for _, h := range hits {
		if h.End > low {
			hits[k] = h
			k++
		}
	}
	return hits[:k]
}

// write passes one event on, its text cut where a hit to redact covers it.
func (g *textGuard) write(ev *heldEvent) {
	if len(g.hits) == 0 || len(ev.spans) == 0 {
		g.out.Write(ev.raw)
		return
	}
	cutHits(&g.out, ev.raw, ev.spans, g.hits)
}

// cutHits writes raw to out with the text of its spans cut where a hit
// covers it: the piece where a hit starts becomes [REDACTED:rule], the
// other pieces of it go. Cuts never split an escape sequence, so JSON
// stays valid.
func cutHits(out *bytes.Buffer, raw []byte, spans []textSpan, hits []leak.Hit) {
	pos := 0
	for _, sp := range spans {
		out.Write(raw[pos:sp.s])
		pos = sp.s
		for _, h := range hits {
			if h.End <= sp.at || h.Start >= sp.end() {
				continue
			}
			from := sp.s + int(max(h.Start-sp.at, 0))
			to := sp.s + int(min(h.End-sp.at, int64(sp.e-sp.s)))
			from, to = escapeSafe(raw, sp.s, from), escapeSafe(raw, sp.s, to)
			if from < pos {
				from = pos
			}
			if to < from {
				continue
			}
			out.Write(raw[pos:from])
			if h.Start >= sp.at {
				out.WriteString("[REDACTED:" + h.Rule + "]")
			}
			pos = to
		}
		out.Write(raw[pos:sp.e])
		pos = sp.e
	}
	out.Write(raw[pos:])
}

// escapeSafe moves a cut at i in the escaped string starting at start back
// to the beginning of the escape sequence it would split, so a redaction
// never leaves half an escape.
func escapeSafe(raw []byte, start, i int) int {
	// Count the backslashes right before i: an odd run means raw[i-1]
	// opens an escape that raw[i] continues.
	j := i
	for j > start && raw[j-1] == '\\' {
		j--
	}
	if (i-j)%2 == 1 {
		return i - 1
	}
	// A \uXXXX escape is six bytes; a cut inside its hex digits moves to
	// its backslash.
	for k := max(start, i-5); k < i; k++ {
		if raw[k] == '\\' && k+1 < len(raw) && raw[k+1] == 'u' {
			b := k
			for b > start && raw[b-1] == '\\' {
				b--
			}
			if (k-b)%2 == 0 {
				return k
			}
		}
	}
	return i
}

// eventEnd returns the length of the first whole event in b, its closing
// blank line included, or -1.
func eventEnd(b []byte) int {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i
		}
	}
	return -1
}

// eventData returns an event's name, its one data line's value and where
// that value starts in raw. An event with several data lines is not read
// (ok false): the byte check still sees it, and models do not send them.
func eventData(raw []byte) (name, data []byte, off int, ok bool) {
	lines := 0
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			j = len(raw) - i
		}
		line := bytes.TrimSuffix(raw[i:i+j], []byte("\r"))
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			lines++
			o := len("data:")
			if len(line) > o && line[o] == ' ' {
				o++
			}
			data, off = line[o:], i+o
		case bytes.HasPrefix(line, []byte("event:")):
			name = bytes.TrimPrefix(line[len("event:"):], []byte(" "))
		}
		i += j + 1
	}
	return name, data, off, lines == 1
}
