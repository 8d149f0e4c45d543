package scan

// Stream is the incremental form of Matcher.Find, for bodies that arrive
// in pieces (a streamed model answer): each byte is read once, whatever
// the size of the pieces, and only the bytes a pending match could still
// need are kept. Offsets in its matches count from the start of the
// stream.
//
// Stream skips the generic rule's claim logic and reports the matches of
// each piece as they complete; it is meant for rules with a bounded
// MaxLen, such as the token formats.
//
// Hold says how far the stream is cleared: a caller passing text on as it
// arrives (a streamed answer) holds back only what follows it. It is kept
// tight, since every byte held is text the client sees late: the bytes
// that may begin an anchor, the run of bytes before them that a rule
// matching from before its anchor could take, and the matches still
// pending, each dropped as soon as its pattern can no longer match.
type Stream struct {
	m       *Matcher
	buf     []byte
	base    int64 // stream offset of buf[0]
	end     int64 // bytes written so far
	pending []pendingHit
	waiting []pairHit // anchors begun, not yet whole: stream offsets
	partial int       // bytes at the end that may begin an anchor
	backs   []*compiled
}

type pendingHit struct {
	rule int
	at   int64 // stream offset of the anchor
}

// NewStream starts an incremental match.
func (m *Matcher) NewStream() *Stream { return m.NewStreamAt(0) }

// NewStreamAt starts an incremental match whose first byte is at stream
// offset off: the offsets of its matches and Hold count from there.
func (m *Matcher) NewStreamAt(off int64) *Stream {
	s := &Stream{m: m, base: off, end: off}
	for _, c := range m.rules {
		if c.Back > 0 {
			s.backs = append(s.backs, c)
		}
	}
	return s
}

// Write adds p to the stream and returns the matches that are now
// complete.
func (s *Stream) Write(p []byte) []Match {
	from := max(0, len(s.buf)-1) // the pair across the last piece's end is new
	s.buf = append(s.buf, p...)
	s.end += int64(len(p))
	// Anchors whose first bytes came before: whole now, gone, or still
	// arriving.
	keep := s.waiting[:0]
	for _, w := range s.waiting {
		rel := w.start - int(s.base)
		a := s.m.pairs.anchor(w.id)
		switch {
		case rel+len(a.anchor) <= len(s.buf):
			if anchorAt(s.buf[rel:rel+len(a.anchor)], a) {
				s.hit(w.id, int64(w.start))
			}
		case anchorPrefix(s.buf[rel:], a):
			keep = append(keep, w)
		}
	}
	s.waiting = keep
	var stack [8]pairHit
	for _, h := range s.m.pairs.scan(s.buf, from, stack[:0]) {
		if h.end > len(s.buf) {
			s.waiting = append(s.waiting, pairHit{h.end + int(s.base), h.id, h.start + int(s.base)})
			continue
		}
		s.hit(h.id, s.base+int64(h.start))
	}
	s.partial = s.m.ac.partial(s.buf)
	return s.settle(false)
}

// Close ends the stream and returns the matches still pending.
func (s *Stream) Close() []Match { return s.settle(true) }

// Hold is the stream offset before which no match can still start: bytes
// before it may be passed on.
func (s *Stream) Hold() int64 {
	h := s.end - int64(s.partial)
	// A rule matching from before its anchor may yet take the run of its
	// bytes right before where an anchor can still start.
	low := h
	for _, c := range s.backs {
		run := 0
		for i := int(h-s.base) - 1; i >= 0 && run < c.Back && c.back[s.buf[i]]; i-- {
			run++
		}
		low = min(low, h-int64(run))
	}
	for _, p := range s.pending {
		low = min(low, p.at-int64(s.m.rules[p.rule].Back))
	}
	return max(low, s.base)
}

func (s *Stream) hit(id int, at int64) {
	ri := int(s.m.owner[id])
	c := s.m.rules[ri]
	if c.exact {
		// The anchor's bytes are in buf.
		rel := int(at - s.base)
		a := s.m.exact[id]
		if rel < 0 || string(s.buf[rel:rel+len(a)]) != a {
			return
		}
		if c.leftBound && rel > 0 && isAlnum(s.buf[rel-1]) {
			return
		}
	}
	s.pending = append(s.pending, pendingHit{ri, at})
}

// settle runs the rules whose matches are now complete (all of them at
// the end) and forgets bytes no match can need.
func (s *Stream) settle(final bool) []Match {
	var out []Match
	keep := s.pending[:0]
	for _, p := range s.pending {
		c := s.m.rules[p.rule]
		rel := int(p.at - s.base)
		if !final && p.at+int64(c.MaxLen)+1 > s.end {
			if !c.cannotMatch(s.buf, rel) {
				keep = append(keep, p)
			}
			continue
		}
		sp, ok := c.match(s.buf, rel)
		if !ok {
			continue
		}
		sec := s.buf[sp.SecretStart:sp.SecretEnd]
		if len(sec) == 0 || (!c.Free && !bounded(s.buf, sp.SecretStart, sp.SecretEnd)) ||
			(c.Check != nil && !c.Check(sec)) || (c.MinEntropy > 0 && entropy(sec) < c.MinEntropy) ||
			knownExample(sec) || (!c.Structured && placeholder(sec)) {
			continue
		}
		b := int(s.base)
		sp.Start, sp.End, sp.SecretStart, sp.SecretEnd = sp.Start+b, sp.End+b, sp.SecretStart+b, sp.SecretEnd+b
		out = append(out, Match{Rule: &c.Rule, Span: sp})
	}
	s.pending = keep
	low := s.Hold()
	for _, w := range s.waiting {
		low = min(low, int64(w.start))
	}
	if drop := int(low-s.base) - 1; drop > 0 {
		s.buf = append(s.buf[:0], s.buf[drop:]...)
		s.base += int64(drop)
	}
	return resolve(out)
}

// cannotMatch reports whether the rule's pattern, run at the anchor at
// offset at of data, is already decided against a match by the bytes
// there, so no byte still to come can change that. A stream drops such a
// pending hit at once instead of holding text back until MaxLen bytes
// have arrived.
func (c *compiled) cannotMatch(data []byte, at int) bool {
	if c.Find != nil || c.prefix == nil {
		return false
	}
	return c.prefix.dead(data[at:min(len(data), at+c.MaxLen)])
}
