package scan

// Stream is the incremental form of Matcher.Find, for bodies that arrive
// in pieces (a streamed model answer): each byte is read by the anchor
// automaton once, whatever the size of the pieces, and only the bytes a
// pending match could still need are kept. Offsets in its matches count
// from the start of the stream.
//
// Stream skips the generic rule's claim logic and reports the matches of
// each piece as they complete; it is meant for rules with a bounded
// MaxLen, such as the token formats.
type Stream struct {
	m        *Matcher
	st       int32 // automaton state
	buf      []byte
	base     int64 // stream offset of buf[0]
	end      int64 // bytes written so far
	pending  []pendingHit
	maxBack  int
	maxAncho int
}

type pendingHit struct {
	rule int
	at   int64 // stream offset of the anchor
}

// NewStream starts an incremental match.
func (m *Matcher) NewStream() *Stream {
	s := &Stream{m: m}
	for _, c := range m.rules {
		s.maxBack = max(s.maxBack, c.Back)
	}
	for _, a := range m.exact {
		s.maxAncho = max(s.maxAncho, len(a))
	}
	return s
}

// Write adds p to the stream and returns the matches that are now
// complete.
func (s *Stream) Write(p []byte) []Match {
	s.buf = append(s.buf, p...)
	a := s.m.ac
	next, class, shift, firstOut := a.next, &a.class, a.shift, a.firstOut
	st := s.st
	for i, c := range p {
		st = next[st<<shift|int32(class[c])]
		if st >= firstOut {
			pos := s.end + int64(i) + 1
			for _, id := range a.outs[a.outAt[st]:a.outAt[st+1]] {
				s.hit(int(id), pos-int64(a.lens[id]))
			}
		}
	}
	s.st = st
	s.end += int64(len(p))
	return s.settle(false)
}

// Close ends the stream and returns the matches still pending.
func (s *Stream) Close() []Match { return s.settle(true) }

// Hold is the stream offset before which no match can still start: bytes
// before it may be passed on.
func (s *Stream) Hold() int64 {
	h := s.end - int64(s.maxAncho-1) - int64(s.maxBack)
	for _, p := range s.pending {
		h = min(h, p.at-int64(s.m.rules[p.rule].Back))
	}
	return max(h, s.base)
}

func (s *Stream) hit(id int, at int64) {
	ri := int(s.m.owner[id])
	c := s.m.rules[ri]
	if c.exact {
		// The anchor's bytes are in buf: it ended at the byte just read.
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
		if !final && p.at+int64(c.MaxLen)+1 > s.end {
			keep = append(keep, p)
			continue
		}
		rel := int(p.at - s.base)
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
	if drop := int(s.Hold()-s.base) - 1; drop > 0 {
		s.buf = append(s.buf[:0], s.buf[drop:]...)
		s.base += int64(drop)
	}
	return resolve(out)
}
