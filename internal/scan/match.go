package scan

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
)

// Match is one credential a Matcher found in a buffer.
type Match struct {
	Rule *Rule
	Span
}

// Secret returns the matched secret in data, the buffer Find was given.
func (m Match) Secret(data []byte) []byte { return data[m.SecretStart:m.SecretEnd] }

// Matcher runs a set of rules over buffers. It is immutable and safe for
// concurrent use.
type Matcher struct {
	rules  []*compiled
	ac     *automaton
	pairs  *pairs
	owner  []int32 // anchor id -> rule index
	exact  []string
	maxLen int
}

// NewMatcher compiles rules.
func NewMatcher(rules []Rule) (*Matcher, error) {
	m := &Matcher{}
	var anchors []string
	seen := map[string]bool{}
	for i, r := range rules {
		if seen[r.ID] {
			return nil, fmt.Errorf("scan: two rules are called %s", r.ID)
		}
		seen[r.ID] = true
		c, err := compileRule(r)
		if err != nil {
			return nil, err
		}
		m.rules = append(m.rules, c)
		for _, a := range r.Anchors {
			if len(a) < 2 {
				return nil, fmt.Errorf("scan: rule %s: anchor %q is shorter than two bytes; give it more of the format's fixed text", r.ID, a)
			}
			anchors = append(anchors, a)
			m.owner = append(m.owner, int32(i))
		}
		m.maxLen = max(m.maxLen, r.MaxLen+r.Back)
	}
	ac, err := newAutomaton(anchors)
	if err != nil {
		return nil, err
	}
	m.ac = ac
	m.exact = anchors
	fold := make([]bool, len(anchors))
	for i, ri := range m.owner {
		fold[i] = !m.rules[ri].exact
	}
	m.pairs = newPairs(anchors, fold)
	return m, nil
}

// Rules returns the matcher's rules, in the order given.
func (m *Matcher) Rules() []*Rule {
	out := make([]*Rule, len(m.rules))
	for i, c := range m.rules {
		out[i] = &c.Rule
	}
	return out
}

// MaxLen is the longest match any rule can make, in bytes. A stream
// checked in pieces must keep this many bytes from one piece to the next.
func (m *Matcher) MaxLen() int { return m.maxLen }

// Find returns the credentials in data, ordered by offset, without overlaps
// (where two rules claim the same bytes, the lower Rank wins, then the
// longer secret). Placeholders, documented examples and matches failing a
// rule's checks are left out.
func (m *Matcher) Find(data []byte) []Match {
	var out []Match
	type key struct{ rule, at int }
	var done map[key]bool
	// claimed holds offsets where a token format's prefix starts (one with
	// a checksum, or of four or more characters), or where a token
	// format's match was a placeholder: a value there is that format,
	// valid or not (a bad checksum, a truncated copy), and the generic
	// rule must not report it.
	var claimed map[int]bool
	claim := func(at int) {
		if claimed == nil {
			claimed = map[int]bool{}
		}
		claimed[at] = true
	}
	m.pairs.find(data, func(id, at int) {
		ri := int(m.owner[id])
		c := m.rules[ri]
		if c.exact {
			a := m.exact[id]
			if string(data[at:at+len(a)]) != a {
				return
			}
			if c.leftBound && at > 0 && isAlnum(data[at-1]) {
				return
			}
			if c.leftBound && (c.Rank == RankToken || c.Rank == RankShape) && (c.Check != nil || len(a) >= 4) {
				claim(at)
			}
		}
		sp, ok := c.match(data, at)
		if !ok {
			return
		}
		if done == nil {
			done = map[key]bool{}
		}
		if done[key{ri, sp.SecretStart}] {
			return
		}
		done[key{ri, sp.SecretStart}] = true
		sec := data[sp.SecretStart:sp.SecretEnd]
		if len(sec) == 0 || (!c.Free && !bounded(data, sp.SecretStart, sp.SecretEnd)) {
			return
		}
		if c.Check != nil && !c.Check(sec) {
			return
		}
		if c.MinEntropy > 0 && entropy(sec) < c.MinEntropy {
			return
		}
		if knownExample(sec) || (!c.Structured && placeholder(sec)) {
			if c.Rank == RankToken {
				claim(sp.SecretStart)
			}
			return
		}
		out = append(out, Match{Rule: &c.Rule, Span: sp})
	})
	if claimed != nil {
		out = slices.DeleteFunc(out, func(x Match) bool { return x.Rule.Rank == RankGeneric && claimed[x.SecretStart] })
	}
	return resolve(out)
}

// resolve orders matches and drops those overlapping a better one.
func resolve(ms []Match) []Match {
	if len(ms) < 2 {
		return ms
	}
	better := func(a, b Match) bool {
		if a.Rule.Rank != b.Rule.Rank {
			return a.Rule.Rank < b.Rule.Rank
		}
		return a.SecretEnd-a.SecretStart > b.SecretEnd-b.SecretStart
	}
	sort.SliceStable(ms, func(i, j int) bool {
		if ms[i].SecretStart != ms[j].SecretStart {
			return ms[i].SecretStart < ms[j].SecretStart
		}
		return better(ms[i], ms[j])
	})
	out := ms[:0:0]
	for _, x := range ms {
		if n := len(out); n > 0 {
			y := out[n-1]
			if x.SecretStart < y.SecretEnd {
				if better(x, y) {
					out[n-1] = x
				}
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

// lineIndex turns byte offsets into 1-based line and column numbers. Offsets
// must be asked for in increasing order.
type lineIndex struct {
	data      []byte
	pos, line int
	lineStart int
}

func newLineIndex(data []byte) *lineIndex { return &lineIndex{data: data, line: 1} }

// at returns the line and column (in bytes, 1-based) of offset off.
func (l *lineIndex) at(off int) (line, col int) {
	if off < l.pos {
		l.pos, l.line, l.lineStart = 0, 1, 0
	}
	seg := l.data[l.pos:off]
	if n := bytes.Count(seg, []byte{'\n'}); n > 0 {
		l.line += n
		l.lineStart = l.pos + bytes.LastIndexByte(seg, '\n') + 1
	}
	l.pos = off
	return l.line, off - l.lineStart + 1
}

// lineOf returns the bounds of the line holding offset off.
func lineOf(data []byte, off int) (int, int) {
	s := bytes.LastIndexByte(data[:off], '\n') + 1
	e := bytes.IndexByte(data[off:], '\n')
	if e < 0 {
		return s, len(data)
	}
	return s, off + e
}
