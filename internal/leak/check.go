package leak

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"io"
	"sort"

	"github.com/keygate/keygate/internal/scan"
)

// cand is a window whose tag matched: form f may start at stream offset at.
type cand struct {
	at   int64
	form int32
}

// engine reads a body or stream once, keeping only the bytes a pending
// candidate may still need.
type engine struct {
	m     *Matcher
	fs    *scan.Stream
	mac   hash.Hash
	buf   []byte
	base  int64 // stream offset of buf[0]
	end   int64 // bytes written
	next  int64 // stream offset of the next probe
	cands []cand
	floor int64 // bytes from here on are kept (a Stream has not passed them on yet)
}

func (m *Matcher) newEngine() *engine { return m.newEngineAt(0) }

// newEngineAt starts an engine whose first byte is at stream offset off.
func (m *Matcher) newEngineAt(off int64) *engine {
	return &engine{m: m, fs: m.fmts.NewStreamAt(off), mac: hmac.New(sha256.New, m.key), base: off, end: off, next: off, floor: 1<<63 - 1}
}

// write adds p and returns the hits now complete.
func (e *engine) write(p []byte) []Hit {
	m := e.m
	var hits []Hit
	e.buf = append(e.buf, p...)
	e.end += int64(len(p))
	if len(m.forms) > 0 {
		w, st := int64(m.w), int64(m.s)
		for ; e.next+w <= e.end; e.next += st {
			rel := int(e.next - e.base)
			win := e.buf[rel : rel+int(w)]
			idx := m.probe(win)
			if m.filter[idx>>6]&(1<<(idx&63)) == 0 {
				continue
			}
			for _, r := range m.windows[tag(e.mac, win)] {
				if at := e.next - int64(r.off); at >= 0 {
					e.cands = append(e.cands, cand{at, r.form})
				}
			}
		}
		hits = e.confirm(false)
	}
	for _, x := range e.fs.Write(p) {
		hits = append(hits, e.m.classify(x, e.fs))
	}
	e.trim()
	return order(hits)
}

// close checks what is left and returns the last hits.
func (e *engine) close() []Hit {
	hits := e.confirm(true)
	for _, x := range e.fs.Close() {
		hits = append(hits, e.m.classify(x, e.fs))
	}
	return order(hits)
}

// confirm checks candidates whose whole form has arrived (all of them when
// final) against the form's tag.
func (e *engine) confirm(final bool) []Hit {
	var hits []Hit
	keep := e.cands[:0]
	for _, c := range e.cands {
		f := e.m.forms[c.form]
		if c.at+int64(f.length) > e.end {
			if !final {
				keep = append(keep, c)
			}
			continue
		}
		rel := int(c.at - e.base)
		if rel < 0 {
			continue // cannot be: a form starts where it is still kept (see hold)
		}
		if t := tag(e.mac, e.buf[rel:rel+f.length]); hmac.Equal(t[:], f.full[:]) {
			hits = append(hits, Hit{Kind: KindVault, Rule: RuleVault, Name: e.m.names[f.value], Form: kindName(f.kind), Start: c.at, End: c.at + int64(f.length)})
		}
	}
	e.cands = keep
	return hits
}

// hold is the stream offset before which no hit can still start.
func (e *engine) hold() int64 {
	h := e.fs.Hold()
	if len(e.m.forms) > 0 {
		h = min(h, e.unprobed())
	}
	for _, c := range e.cands {
		h = min(h, c.at)
	}
	return max(h, 0)
}

// unprobed is the stream offset before which no form can start that the
// probes have not seen yet. The next probe may find a form starting up to
// S-1 bytes before it, but only one still arriving (a form that has
// arrived whole was probed already: see write): a form made of plain
// bytes has only bytes such forms hold from its start to the end; any
// other form has a byte that is not plain within head bytes of its start,
// or has not got that far.
func (e *engine) unprobed() int64 {
	m := e.m
	lo := e.next - int64(m.s) + 1
	from := max(0, int(lo-e.base)) // trim keeps lo in buf
	run := int64(0)
	for i := len(e.buf) - 1; i >= from && m.inPlain[e.buf[i]]; i-- {
		run++
	}
	h := e.end - run
	if m.hasMark {
		first := from + plainHead(e.buf[from:])
		h = min(h, e.base+int64(first)-int64(m.head))
	}
	return max(lo, h)
}

// trim forgets bytes no candidate and no rolling step needs.
func (e *engine) trim() {
	keep := min(e.hold(), e.floor)
	if len(e.m.forms) > 0 {
		keep = min(keep, e.next-int64(e.m.s)+1) // unprobed reads from there
	}
	if drop := int(keep - e.base); drop > 0 && drop <= len(e.buf) {
		e.buf = append(e.buf[:0], e.buf[drop:]...)
		e.base += int64(drop)
	}
}

// classify turns a format match into a hit: keygate's own credentials,
// keygate access tokens (JWTs issued by TokenIssuer), or other formats.
func (m *Matcher) classify(x scan.Match, _ *scan.Stream) Hit {
	h := Hit{Kind: KindProvider, Rule: x.Rule.ID, Start: int64(x.SecretStart), End: int64(x.SecretEnd)}
	if x.Rule.Keygate {
		h.Kind = KindKeygate
	}
	return h
}

// order sorts hits and, where two cover the same bytes, keeps the vault
// hit, then the keygate one, then the longer.
func order(hs []Hit) []Hit {
	if len(hs) < 2 {
		return hs
	}
	rank := map[Kind]int{KindVault: 0, KindKeygate: 1, KindProvider: 2}
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].Start != hs[j].Start {
			return hs[i].Start < hs[j].Start
		}
		return rank[hs[i].Kind] < rank[hs[j].Kind]
	})
	out := hs[:1]
	for _, x := range hs[1:] {
		y := &out[len(out)-1]
		if x.Start < y.End {
			if rank[x.Kind] < rank[y.Kind] || (rank[x.Kind] == rank[y.Kind] && x.End-x.Start > y.End-y.Start) {
				*y = x
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// Check returns the credentials in body, ordered by offset. It reads body
// in place, without copying it.
func (m *Matcher) Check(body []byte) []Hit {
	hits := m.vaultHits(body)
	for _, x := range m.fmts.Find(body) {
		hits = append(hits, m.classify(x, nil))
	}
	return m.tokens(body, 0, order(hits))
}

// vaultHits is the probing pass of Check over a whole body.
func (m *Matcher) vaultHits(body []byte) []Hit {
	if len(m.forms) == 0 || len(body) < m.w {
		return nil
	}
	var hits []Hit
	var mac hash.Hash
	w, st := m.w, m.s
	for q := 0; q+w <= len(body); q += st {
		win := body[q : q+w]
		idx := m.probe(win)
		if m.filter[idx>>6]&(1<<(idx&63)) == 0 {
			continue
		}
		if mac == nil {
			mac = hmac.New(sha256.New, m.key)
		}
		for _, r := range m.windows[tag(mac, win)] {
			f := m.forms[r.form]
			at := q - int(r.off)
			if at < 0 || at+f.length > len(body) {
				continue
			}
			if t := tag(mac, body[at:at+f.length]); hmac.Equal(t[:], f.full[:]) {
				hits = append(hits, Hit{Kind: KindVault, Rule: RuleVault, Name: m.names[f.value], Form: kindName(f.kind), Start: int64(at), End: int64(at + f.length)})
			}
		}
	}
	return hits
}

// tokens marks JWT hits issued by the configured issuer as keygate access
// tokens. data holds the stream from offset base.
func (m *Matcher) tokens(data []byte, base int64, hs []Hit) []Hit {
	for i, h := range hs {
		if h.Rule != "jwt" || m.issuer == "" {
			continue
		}
		tok := data[h.Start-base : h.End-base]
		parts := bytes.Split(tok, []byte{'.'})
		if len(parts) != 3 {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(string(bytes.TrimRight(parts[1], "=")))
		if err != nil {
			continue
		}
		var c struct {
			Iss string `json:"iss"`
		}
		if json.Unmarshal(raw, &c) == nil && c.Iss == m.issuer {
			hs[i].Kind, hs[i].Rule = KindKeygate, RuleKeygateToken
		}
	}
	return hs
}

// Redacted returns body with every hit replaced by [REDACTED:rule].
func Redacted(body []byte, hits []Hit) []byte {
	var out bytes.Buffer
	out.Grow(len(body))
	pos := int64(0)
	for _, h := range hits {
		if h.Start < pos {
			continue
		}
		out.Write(body[pos:h.Start])
		out.WriteString("[REDACTED:" + h.Rule + "]")
		pos = h.End
	}
	out.Write(body[pos:])
	return out.Bytes()
}

// Stream checks a body as it passes through to another writer, such as a
// streamed model answer on its way to the client. It holds back only the
// bytes a credential may still be part of (normally a few dozen, more
// while a possible token is incomplete), so onHit runs, and a redaction is
// made, before any byte of the credential is passed on.
type Stream struct {
	m        *Matcher
	e        *engine
	w        io.Writer
	redact   bool
	redactFn func(Hit) bool // when set, decides per hit instead of redact
	onHit    func(Hit) error
	emitted  int64 // stream offset passed on so far
	ready    []Hit // hits found, not yet passed
	err      error
}

// NewStream returns a Stream writing to w. With redact, hits are replaced
// by [REDACTED:rule]. onHit, if set, is called for each hit; if it returns
// an error, the stream stops before the hit's bytes and every later write
// returns that error (block mode).
func (m *Matcher) NewStream(w io.Writer, redact bool, onHit func(Hit) error) *Stream {
	return &Stream{m: m, e: m.newEngine(), w: w, redact: redact, onHit: onHit}
}

// RedactWhen makes the stream redact only the hits f approves, passing
// the others on unchanged (a policy that alerts on some rules and redacts
// others). It returns s.
func (s *Stream) RedactWhen(f func(Hit) bool) *Stream {
	s.redactFn = f
	return s
}

// Write checks p and passes on what can no longer be part of a credential.
func (s *Stream) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	s.e.floor = s.emitted
	hits := s.e.write(p)
	if err := s.pass(hits, s.e.hold()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close checks the rest of the stream and passes it on. It does not close
// the writer.
func (s *Stream) Close() error {
	if s.err != nil {
		return s.err
	}
	err := s.pass(s.e.close(), s.e.end)
	if err == nil {
		s.err = errClosed
	}
	return err
}

// Cut tells the stream that no credential runs on past what it has been
// given, as where one server-sent event ends and the next begins: what is
// pending is decided now, everything is passed on, and what comes next is
// checked afresh. A stream of events thus passes each event on whole as
// soon as it has arrived, instead of holding its last bytes back until the
// next one comes.
func (s *Stream) Cut() error {
	if s.err != nil {
		return s.err
	}
	if err := s.pass(s.e.close(), s.e.end); err != nil {
		return err
	}
	s.e = s.m.newEngineAt(s.e.end)
	return nil
}

// pass reports new hits and writes the stream up to upto.
func (s *Stream) pass(hits []Hit, upto int64) error {
	if s.m.issuer != "" {
		for i, h := range hits {
			if h.Rule == "jwt" && h.Start >= s.e.base {
				hits[i] = s.m.tokens(s.e.buf, s.e.base, []Hit{h})[0]
			}
		}
	}
	for _, h := range hits {
		if s.onHit != nil {
			if err := s.onHit(h); err != nil {
				// Pass what came before the hit, then stop.
				if err2 := s.writeTo(h.Start); err2 != nil {
					err = err2
				}
				s.err = err
				return err
			}
		}
		s.ready = append(s.ready, h)
	}
	if err := s.writeTo(upto); err != nil {
		s.err = err
		return err
	}
	return nil
}

// writeTo passes the stream on up to offset upto, redacting ready hits.
func (s *Stream) writeTo(upto int64) error {
	buf, base := s.e.buf, s.e.base
	for len(s.ready) > 0 && s.ready[0].Start < upto {
		h := s.ready[0]
		if h.Start < s.emitted {
			s.ready = s.ready[1:]
			continue
		}
		if s.redact || (s.redactFn != nil && s.redactFn(h)) {
			if _, err := s.w.Write(buf[s.emitted-base : h.Start-base]); err != nil {
				return err
			}
			if _, err := io.WriteString(s.w, "[REDACTED:"+h.Rule+"]"); err != nil {
				return err
			}
			s.emitted = h.End
		}
		s.ready = s.ready[1:]
	}
	if upto > s.emitted {
		if _, err := s.w.Write(buf[s.emitted-base : upto-base]); err != nil {
			return err
		}
		s.emitted = upto
	}
	return nil
}
