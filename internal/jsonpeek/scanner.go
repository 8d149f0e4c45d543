package jsonpeek

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// maxKey is the longest unescaped key a Scanner hands back decoded; see
// FirstMember.
const maxKey = 32

// Scanner reads one JSON document held in memory without decoding it: it
// walks the members of objects and the elements of arrays and hands back
// keys and values as slices of the document, so strings can be copied out
// verbatim. Everything it passes over is validated, accepting exactly what
// encoding/json.Valid accepts (strings are not checked for valid UTF-8, as
// there) with nesting limited to MaxDepth levels, and it never allocates,
// not even on malformed input: it records the first error, after which
// every method reports failure, and Err builds the error on demand.
//
// An object is walked with
//
//	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
//		v := s.Skip() // or walk the value in place, or read it with Peek and Skip
//	}
//	if s.Failed() { ... }
//
// and an array alike with FirstElement and NextElement. The caller consumes
// each member's value, and each element, exactly once before asking for the
// next. End checks that nothing but whitespace follows the document.
//
// The zero Scanner holds an empty document; NewScanner or Reset gives it one.
type Scanner struct {
	b      []byte
	i      int
	depth  int    // containers open, counted against MaxDepth
	errAt  int    // offset of the first error
	errMsg string // the first error; "" while there is none
	keyAt  int    // offset of the last key's opening quote
	key    [maxKey]byte
}

// NewScanner returns a Scanner at the start of b.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// Reset starts s over on b, clearing any error.
func (s *Scanner) Reset(b []byte) {
	s.b, s.i, s.depth, s.errAt, s.errMsg = b, 0, 0, 0, ""
}

// Pos returns the offset of the next byte s reads.
func (s *Scanner) Pos() int { return s.i }

// Failed reports whether s met malformed JSON.
func (s *Scanner) Failed() bool { return s.errMsg != "" }

// Err returns the first error s met as a *SyntaxError, or nil.
func (s *Scanner) Err() error {
	if s.errMsg == "" {
		return nil
	}
	return &SyntaxError{Offset: s.errAt, Msg: s.errMsg}
}

// fail records the first error and returns false.
func (s *Scanner) fail(off int, msg string) bool {
	if s.errMsg == "" {
		s.errAt, s.errMsg = off, msg
	}
	return false
}

// Peek skips whitespace and returns the next byte without consuming it: '{',
// '[', '"', a digit, '-', 't', 'f' or 'n' when a value follows. It returns 0
// at the end of the document or after an error.
func (s *Scanner) Peek() byte {
	if s.errMsg != "" {
		return 0
	}
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// FirstMember enters the object that comes next and reads its first key and
// the colon after it, leaving s at the member's value. It returns false for
// an empty object, which it consumes, or on an error.
//
// The key is unescaped, so it can be compared with a name directly. Without
// escapes it is a slice of the document; with them it is held in s and stays
// valid until the next FirstMember, NextMember or Member (Skip leaves it
// be). A key with escapes that unescapes to more than 32 bytes is returned
// as written: it holds a backslash, so it equals no name that holds none.
// Invalid UTF-8 is returned as it is.
func (s *Scanner) FirstMember() (key []byte, ok bool) {
	if s.errMsg != "" {
		return nil, false
	}
	s.ws()
	if s.i >= len(s.b) {
		return nil, s.fail(s.i, "unexpected end of body: expected an object")
	}
	if s.b[s.i] != '{' {
		return nil, s.fail(s.i, "expected an object")
	}
	if !s.push() {
		return nil, false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return nil, false
	}
	return s.member()
}

// NextMember reads the next key of the object s is in, after the previous
// member's value, and the colon after it. At the object's closing brace it
// consumes the brace and returns false; it also returns false on an error.
// The key is as FirstMember describes.
func (s *Scanner) NextMember() (key []byte, ok bool) {
	if s.errMsg != "" {
		return nil, false
	}
	s.ws()
	if s.i >= len(s.b) {
		return nil, s.fail(s.i, "unexpected end of body: expected ',' or '}' after an object value")
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return s.member()
	case '}':
		s.i++
		if s.depth > 0 {
			s.depth--
		}
		return nil, false
	}
	return nil, s.fail(s.i, "expected ',' or '}' after an object value")
}

// Member reads a key and its colon where one starts, for a Scanner set on
// the middle of an object (just after its '{' or a ','); NextMember goes on
// from there. The key is as FirstMember describes.
func (s *Scanner) Member() (key []byte, ok bool) {
	if s.errMsg != "" {
		return nil, false
	}
	s.ws()
	return s.member()
}

// FirstElement enters the array that comes next, leaving s at its first
// element. It returns false for an empty array, which it consumes, or on an
// error.
func (s *Scanner) FirstElement() bool {
	if s.errMsg != "" {
		return false
	}
	s.ws()
	if s.i >= len(s.b) {
		return s.fail(s.i, "unexpected end of body: expected an array")
	}
	if s.b[s.i] != '[' {
		return s.fail(s.i, "expected an array")
	}
	if !s.push() {
		return false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return false
	}
	return true
}

// NextElement moves to the next element of the array s is in, after the
// previous element. At the array's closing bracket it consumes the bracket
// and returns false; it also returns false on an error.
func (s *Scanner) NextElement() bool {
	if s.errMsg != "" {
		return false
	}
	s.ws()
	if s.i >= len(s.b) {
		return s.fail(s.i, "unexpected end of body: expected ',' or ']' after an array element")
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return true
	case ']':
		s.i++
		if s.depth > 0 {
			s.depth--
		}
		return false
	}
	return s.fail(s.i, "expected ',' or ']' after an array element")
}

// Skip consumes the value that comes next, validating all of it, and
// returns it as written, without surrounding whitespace. It returns nil on
// an error; a value is never empty.
func (s *Scanner) Skip() []byte {
	if s.errMsg != "" {
		return nil
	}
	s.ws()
	if s.i >= len(s.b) {
		s.fail(s.i, "unexpected end of body: expected a value")
		return nil
	}
	start := s.i
	var ok bool
	switch s.b[s.i] {
	case '"':
		_, ok = s.str()
	case '{', '[':
		ok = s.container()
	default:
		ok = s.scalar()
	}
	if !ok {
		return nil
	}
	return s.b[start:s.i]
}

// End reports whether s read its document without error and only
// whitespace follows where it stopped; otherwise it records an error.
func (s *Scanner) End() bool {
	if s.errMsg != "" {
		return false
	}
	s.ws()
	if s.i != len(s.b) {
		return s.fail(s.i, "unexpected data after the top-level value")
	}
	return true
}

// ws skips JSON whitespace.
func (s *Scanner) ws() {
	for s.i < len(s.b) && s.b[s.i] <= ' ' && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// push counts one more open container against MaxDepth.
func (s *Scanner) push() bool {
	if s.depth >= MaxDepth {
		return s.fail(s.i, "nesting deeper than 10000 levels")
	}
	s.depth++
	return true
}

// member reads a key at s.i, and the colon after it, and returns the key
// unescaped as FirstMember describes.
func (s *Scanner) member() ([]byte, bool) {
	start := s.i
	escaped, ok := s.rawKey()
	if !ok {
		return nil, false
	}
	s.keyAt = start
	raw := s.b[start+1 : s.i-1]
	if !s.colon() {
		return nil, false
	}
	if !escaped {
		return raw, true
	}
	if key, ok := appendUnquoted(s.key[:0], raw, len(s.key)); ok {
		return key, true
	}
	return raw, true
}

// rawKey consumes the key string at s.i and reports whether it has escapes.
func (s *Scanner) rawKey() (escaped, ok bool) {
	if s.i >= len(s.b) {
		return false, s.fail(s.i, "unexpected end of body: expected an object key")
	}
	if s.b[s.i] != '"' {
		return false, s.fail(s.i, "expected a string object key")
	}
	return s.str()
}

// colon consumes whitespace, ':' and whitespace, and checks a value follows.
func (s *Scanner) colon() bool {
	s.ws()
	if s.i >= len(s.b) {
		return s.fail(s.i, "unexpected end of body: expected ':' after an object key")
	}
	if s.b[s.i] != ':' {
		return s.fail(s.i, "expected ':' after an object key")
	}
	s.i++
	s.ws()
	if s.i >= len(s.b) {
		return s.fail(s.i, "unexpected end of body: expected a value")
	}
	return true
}

// container consumes the object or array at s.i, validating it, without
// recursion for each level: whether each open container is an array is one
// bit of a word. A container nested 64 levels below the one this call
// opened is consumed by a recursive call with a fresh word, so the
// recursion is at most MaxDepth/64 deep and nothing is allocated.
func (s *Scanner) container() bool {
	var arrays uint64 // bit k: the container k levels in is an array
	n := 0            // containers this call has open
	b := s.b
	for {
		// s.i is at a '{' or '[' to open.
		if n == 64 {
			if !s.container() {
				return false
			}
		} else {
			c := b[s.i]
			if !s.push() {
				return false
			}
			if c == '[' {
				arrays |= 1 << n
			} else {
				arrays &^= 1 << n
			}
			n++
			s.i++
			s.ws()
			if s.i >= len(b) {
				return s.fail(s.i, "unexpected end of body inside a nested value")
			}
			if (c == '[' && b[s.i] == ']') || (c == '{' && b[s.i] == '}') {
				s.i++
				s.depth--
				n--
			} else {
				if c == '{' && !s.nestedKey() {
					return false
				}
				if v := b[s.i]; v == '{' || v == '[' {
					continue
				}
				if !s.scalarOrString() {
					return false
				}
			}
		}
		// A value inside the innermost open container just ended: read on,
		// closing containers as they end, until another one opens.
	values:
		for n > 0 {
			s.ws()
			if s.i >= len(b) {
				return s.fail(s.i, "unexpected end of body inside a nested value")
			}
			arr := arrays&(1<<(n-1)) != 0
			switch c := b[s.i]; {
			case c == ',':
				s.i++
				s.ws()
				if s.i >= len(b) {
					return s.fail(s.i, "unexpected end of body inside a nested value")
				}
				if !arr && !s.nestedKey() {
					return false
				}
				switch v := b[s.i]; {
				case v == '"':
					if _, ok := s.str(); !ok {
						return false
					}
				case v == '{' || v == '[':
					break values
				case v == '-' || v-'0' < 10: // arrays of numbers are long
					if !s.number() {
						return false
					}
					for arr && s.i+1 < len(b) && b[s.i] == ',' && (b[s.i+1]-'0' < 10 || b[s.i+1] == '-') {
						s.i++
						if !s.number() {
							return false
						}
					}
				case !s.scalar():
					return false
				}
			case (arr && c == ']') || (!arr && c == '}'):
				s.i++
				s.depth--
				n--
			case arr:
				return s.fail(s.i, "expected ',' or ']' after an array element")
			default:
				return s.fail(s.i, "expected ',' or '}' after an object value")
			}
		}
		if n == 0 {
			return true
		}
	}
}

// nestedKey consumes a key and its colon inside a skipped value, without
// unescaping it.
func (s *Scanner) nestedKey() bool {
	if _, ok := s.rawKey(); !ok {
		return false
	}
	return s.colon()
}

func (s *Scanner) scalarOrString() bool {
	if s.b[s.i] == '"' {
		_, ok := s.str()
		return ok
	}
	return s.scalar()
}

// scalar consumes a number or literal at s.i (s.i is within the document).
func (s *Scanner) scalar() bool {
	switch c := s.b[s.i]; {
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == '}':
		return s.fail(s.i, "unexpected '}': expected a value")
	case c == ']':
		return s.fail(s.i, "unexpected ']': expected a value")
	case c == ',':
		return s.fail(s.i, "unexpected ',': expected a value")
	case c == ':':
		return s.fail(s.i, "unexpected ':': expected a value")
	default:
		return s.fail(s.i, "invalid character: expected a value")
	}
}

func (s *Scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail(s.i, "invalid literal: expected "+lit)
	}
	s.i += len(lit)
	return true
}

// number consumes the number at s.i.
func (s *Scanner) number() bool {
	b, i := s.b, s.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i]-'1' < 9:
		i = digits(b, i+1)
	default:
		return s.fail(s.i, "malformed number")
	}
	if i < len(b) && b[i] == '.' {
		d := i + 1
		if i = digits(b, d); i == d {
			return s.fail(s.i, "malformed number")
		}
	}
	if i < len(b) && b[i]|0x20 == 'e' {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		if i = digits(b, d); i == d {
			return s.fail(s.i, "malformed number")
		}
	}
	s.i = i
	return true
}

// digits returns the index of the first byte at or after i that is not a
// decimal digit, eight bytes at a time: long runs of digits fill arrays of
// embeddings and token ids.
func digits(b []byte, i int) int {
	const hiNibbles, zeros, six = 0xF0F0F0F0F0F0F0F0, lo8 * '0', lo8 * 6
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		// A byte is a digit when its high nibble is 3, and still is after
		// adding 6 (which carries out of '9' and no digit). A carry out of a
		// byte changes only later bytes, past a non-digit already found.
		if m := (w&hiNibbles ^ zeros) | ((w+six)&hiNibbles ^ zeros); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(b) && b[i]-'0' < 10 {
		i++
	}
	return i
}

// ParseInt reads raw, a JSON value as Skip returns it, as a whole number:
// ok is false for a fraction, an exponent, a value outside int64, or
// anything but a number.
func ParseInt(raw []byte) (n int64, ok bool) {
	neg := len(raw) > 0 && raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return 0, false
	}
	var u uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	}
	return 0, false
}
