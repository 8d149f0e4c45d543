package jsonpeek

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unicode/utf8"
)

// SWAR constants: one in each byte, and the high bit of each byte.
const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// str consumes the string starting at s.i (a '"'), validating escapes and
// rejecting raw control characters. It reports whether the string has
// escapes.
func (s *Scanner) str() (escaped, ok bool) {
	start := s.i
	b := s.b
	i := start + 1
	for {
		// Eight bytes at a time to the next '"', '\\' or byte below 0x20.
		for i+8 <= len(b) {
			if m := specialMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return escaped, s.fail(start, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return escaped, s.fail(start, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return escaped, s.fail(start, "unterminated string")
				}
				if _, ok := hex4(b[i+2 : i+6]); !ok {
					return escaped, s.fail(i, "invalid \\u escape in string")
				}
				i += 6
			default:
				return escaped, s.fail(i, "invalid escape in string")
			}
		case c < 0x20:
			return escaped, s.fail(i, "control character in string")
		default: // the last bytes, fewer than eight
			i++
		}
	}
}

// specialMask sets the high bit of the bytes of w that may be '"', '\\' or
// below 0x20. The lowest one set is always one of them: the tests (SWAR
// "has a zero byte" on w^'"' and w^'\\', and "has a byte below 0x20" on w)
// give false positives only above a true one. The three share their last
// step: '"' and '\\' are ASCII, so w^'"' and w^'\\' have w's high bits.
func specialMask(w uint64) uint64 {
	q, bs := w^(lo8*'"'), w^(lo8*'\\')
	return ((q - lo8) | (bs - lo8) | (w - lo8*0x20)) &^ w & hi8
}

// hex4 decodes four hex digits.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// AppendUnquoted appends the text of raw, one JSON string with its quotes
// as Skip returns it, decoded as encoding/json decodes it: invalid UTF-8 and
// unpaired surrogates become U+FFFD. It returns dst unchanged and false when
// raw is not exactly one valid JSON string.
func AppendUnquoted(dst, raw []byte) ([]byte, bool) {
	s := NewScanner(raw)
	if s.Peek() != '"' || s.Skip() == nil || !s.End() {
		return dst, false
	}
	return appendUnquoted(dst, raw[1:len(raw)-1], math.MaxInt)
}

// appendUnquoted appends the decoded contents of a string already validated
// by str (raw excludes the quotes). Like encoding/json, it turns invalid UTF-8
// and unpaired surrogates into U+FFFD. It stops and returns false rather
// than let dst grow past limit bytes, so a dst with that capacity is never
// reallocated.
func appendUnquoted(dst, raw []byte, limit int) ([]byte, bool) {
	for i := 0; i < len(raw); {
		var r rune
		switch c := raw[i]; {
		case c == '\\':
			e := raw[i+1]
			i += 2
			switch e {
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				r, _ = hex4(raw[i:])
				i += 4
				if r >= 0xD800 && r < 0xDC00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2, ok := hex4(raw[i+2:]); ok && r2 >= 0xDC00 && r2 < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						i += 6
					}
				}
				if r >= 0xD800 && r < 0xE000 {
					r = utf8.RuneError
				}
			default: // '"', '\\', '/'
				r = rune(e)
			}
		case c < utf8.RuneSelf:
			r = rune(c)
			i++
		default:
			var n int
			r, n = utf8.DecodeRune(raw[i:])
			i += n
		}
		if len(dst)+utf8.RuneLen(r) > limit {
			return dst, false
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst, true
}

// AppendString appends s as a JSON string with encoding/json's escaping:
// quotes, backslashes, control characters, <, > and &, U+2028 and U+2029
// escaped, and invalid UTF-8 replaced by U+FFFD.
func AppendString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += n
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
