package usage

import (
	"bytes"
	"encoding/binary"
)

// SWAR constants: one in each byte, and the high bit of each byte.
const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string whose opening quote is
// at b[i]. Escapes are honoured but not validated.
func skipString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errTruncated
		}
		q := j + k
		n := 0
		for q-1-n > i && b[q-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
}

// skipContainer returns the index just past the object or array opening at
// b[i]. It tracks only strings and nesting, eight bytes at a time between
// them, so long arrays of numbers (embeddings) go by quickly.
func skipContainer(b []byte, i int) (int, error) {
	depth := 0
	for i < len(b) {
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			x := w | lo8*0x20 // folds '[' onto '{' and ']' onto '}'
			q, o, c := w^(lo8*'"'), x^(lo8*'{'), x^(lo8*'}')
			if ((q-lo8)&^q|(o-lo8)&^o|(c-lo8)&^c)&hi8 != 0 {
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '"':
			j, err := skipString(b, i)
			if err != nil {
				return 0, err
			}
			i = j
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
		i++
	}
	return 0, errTruncated
}

// skipValue returns the index just past the value starting at b[i].
// Containers are matched, not validated; scalars run to the next delimiter.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errTruncated
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		return skipContainer(b, i)
	}
	j := i
scalar:
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ':', '"', '{', '[', ' ', '\t', '\n', '\r':
			break scalar
		}
		j++
	}
	if j == i {
		return 0, errSyntax
	}
	return j, nil
}

// members walks the members of one object. b ends with the object's closing
// brace (trailing whitespace allowed) and i starts just past its opening
// brace, with first set, or at a member's key.
type members struct {
	b     []byte
	i     int
	first bool // before the first member, where '}' may close the object
	more  bool // a value was read: ',' or '}' comes next
}

// next returns the next member's raw key (between its quotes) and value.
// ok is false once the closing brace is reached; it must be the last
// non-space byte of b.
func (m *members) next() (key, val []byte, ok bool, err error) {
	b := m.b
	i := skipWS(b, m.i)
	if i >= len(b) {
		return nil, nil, false, errTruncated
	}
	if m.more || m.first {
		if b[i] == '}' {
			if skipWS(b, i+1) != len(b) {
				return nil, nil, false, errSyntax
			}
			m.i = len(b)
			return nil, nil, false, nil
		}
		if m.more {
			if b[i] != ',' {
				return nil, nil, false, errSyntax
			}
			i = skipWS(b, i+1)
		}
		m.first, m.more = false, false
	}
	if i >= len(b) || b[i] != '"' {
		return nil, nil, false, errSyntax
	}
	j, err := skipString(b, i)
	if err != nil {
		return nil, nil, false, err
	}
	key = b[i+1 : j-1]
	i = skipWS(b, j)
	if i >= len(b) || b[i] != ':' {
		return nil, nil, false, errSyntax
	}
	i = skipWS(b, i+1)
	end, err := skipValue(b, i)
	if err != nil {
		return nil, nil, false, err
	}
	m.i, m.more = end, true
	return key, b[i:end], true, nil
}

// lookup finds the value of the member named quoted (the key with its
// quotes) in obj, an object whose closing brace ends obj. The last duplicate
// wins. With fromEnd, it first tries the key's last occurrence in obj and
// checks that what follows is the rest of obj's members: that holds only for
// a member of obj itself, so a key near the end of a large object is found
// without reading the rest. Otherwise it walks obj from the start.
func lookup(obj []byte, quoted string, fromEnd bool) (val []byte, found bool, err error) {
	name := quoted[1 : len(quoted)-1]
	if fromEnd {
		if c := bytes.LastIndex(obj, []byte(quoted)); c > 0 {
			if p := lastNonWS(obj[:c]); p >= 0 && (obj[p] == ',' || obj[p] == '{') {
				val, found, err := scanMembers(members{b: obj, i: c}, name)
				if err == nil && found {
					return val, true, nil
				}
			}
		} else if bytes.Index(obj, []byte(`\u`)) < 0 {
			// The key appears nowhere, not even escaped.
			return nil, false, nil
		}
	}
	return scanMembers(members{b: obj, i: 1, first: true}, name)
}

// scanMembers walks it to the end of its object and returns the value of
// the last member named name.
func scanMembers(it members, name string) (val []byte, found bool, err error) {
	for {
		key, v, ok, err := it.next()
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return val, found, nil
		}
		if keyIs(key, name) {
			val, found = v, true
		}
	}
}

// lastNonWS returns the index of the last non-whitespace byte of b, or -1.
func lastNonWS(b []byte) int {
	i := len(b) - 1
	for i >= 0 && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i--
	}
	return i
}

// keyIs reports whether raw, a key as written between its quotes, unescapes
// to name, which is ASCII.
func keyIs(raw []byte, name string) bool {
	if len(raw) == len(name) {
		return string(raw) == name
	}
	if len(raw) < len(name) || bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	j := 0
	for i := 0; i < len(raw); {
		c := raw[i]
		if c == '\\' {
			if i+1 >= len(raw) {
				return false
			}
			switch e := raw[i+1]; e {
			case '"', '\\', '/':
				c, i = e, i+2
			case 'u':
				if i+6 > len(raw) {
					return false
				}
				r, ok := hex4(raw[i+2 : i+6])
				if !ok || r >= 0x80 {
					return false
				}
				c, i = byte(r), i+6
			default: // \b \f \n \r \t: control characters no name holds
				return false
			}
		} else {
			i++
		}
		if j >= len(name) || name[j] != c {
			return false
		}
		j++
	}
	return j == len(name)
}

// hex4 decodes four hex digits.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
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

// leadingType returns the value of "type" when it is the first member of
// the object data holds, as in every Anthropic and Responses API event.
func leadingType(data []byte) []byte {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil
	}
	i = skipWS(data, i+1)
	if !bytes.HasPrefix(data[i:], []byte(`"type"`)) {
		return nil
	}
	i = skipWS(data, i+len(`"type"`))
	if i >= len(data) || data[i] != ':' {
		return nil
	}
	i = skipWS(data, i+1)
	if i >= len(data) || data[i] != '"' {
		return nil
	}
	j := bytes.IndexByte(data[i+1:], '"')
	if j < 0 {
		return nil
	}
	return data[i+1 : i+1+j]
}
