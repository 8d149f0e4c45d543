package translate

// A small validating JSON scanner for the stream translators. It finds
// members and array elements as raw byte slices without decoding them, so
// that strings (text deltas, ids, argument fragments) are copied to the
// output verbatim: a JSON string has the same encoding in both APIs.

const maxDepth = 10000

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] (which
// must be '"'), or -1 when it is not a valid JSON string.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return -1
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return -1
					}
				}
				i += 6
			default:
				return -1
			}
		default:
			i++
		}
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipValue returns the index just past the value starting at or after
// b[i], or -1 when there is no valid JSON value there.
func skipValue(b []byte, i int) int {
	return skipValueDepth(b, i, 0)
}

func skipValueDepth(b []byte, i, depth int) int {
	i = skipWS(b, i)
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return -1
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1
		}
		for {
			if c == '{' {
				i = skipWS(b, i)
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i = skipString(b, i); i < 0 {
					return -1
				}
				i = skipWS(b, i)
				if i >= len(b) || b[i] != ':' {
					return -1
				}
				i++
			}
			if i = skipValueDepth(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == closing {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i++
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	default:
		return skipNumber(b, i)
	}
}

func literal(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

func skipNumber(b []byte, i int) int {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return -1
		}
	}
	if i == start {
		return -1
	}
	return i
}

// validJSON reports whether b holds exactly one JSON value.
func validJSON(b []byte) bool {
	i := skipValue(b, 0)
	return i >= 0 && skipWS(b, i) == len(b)
}

// object iterates the members of a JSON object.
type object struct {
	b     []byte
	i     int
	bad   bool
	after bool // a member has been read, so a comma must come next
	end   int  // index just past the closing brace, once reached
}

// complete reports whether the iteration reached the closing brace of an
// object that is the whole of raw.
func (o *object) complete(raw []byte) bool {
	return !o.bad && o.end > 0 && skipWS(raw, o.end) == len(raw)
}

// members starts iterating raw, which must be a JSON object; otherwise the
// iteration is empty and bad is set.
func members(raw []byte) object {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return object{bad: true}
	}
	return object{b: raw, i: i + 1}
}

// next returns the next member's key (without quotes, still escaped) and raw
// value.
func (o *object) next() (key, val []byte, ok bool) {
	if o.bad || o.b == nil {
		return nil, nil, false
	}
	i := skipWS(o.b, o.i)
	if i < len(o.b) && o.b[i] == '}' {
		o.b, o.end = nil, i+1
		return nil, nil, false
	}
	if o.after {
		if i >= len(o.b) || o.b[i] != ',' {
			o.bad = true
			return nil, nil, false
		}
		i = skipWS(o.b, i+1)
	}
	o.after = true
	if i >= len(o.b) || o.b[i] != '"' {
		o.bad = true
		return nil, nil, false
	}
	end := skipString(o.b, i)
	if end < 0 {
		o.bad = true
		return nil, nil, false
	}
	key = o.b[i+1 : end-1]
	i = skipWS(o.b, end)
	if i >= len(o.b) || o.b[i] != ':' {
		o.bad = true
		return nil, nil, false
	}
	vs := skipWS(o.b, i+1)
	ve := skipValue(o.b, vs)
	if ve < 0 {
		o.bad = true
		return nil, nil, false
	}
	o.i = ve
	return key, o.b[vs:ve], true
}

// field returns the raw value of the first member of obj named key, or nil.
func field(obj []byte, key string) []byte {
	it := members(obj)
	for {
		k, v, ok := it.next()
		if !ok {
			return nil
		}
		if string(k) == key {
			return v
		}
	}
}

// array iterates the elements of a JSON array.
type array struct {
	b     []byte
	i     int
	bad   bool
	after bool
}

func elements(raw []byte) array {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return array{bad: true}
	}
	return array{b: raw, i: i + 1}
}

func (a *array) next() ([]byte, bool) {
	if a.bad || a.b == nil {
		return nil, false
	}
	i := skipWS(a.b, a.i)
	if i < len(a.b) && a.b[i] == ']' {
		a.b = nil
		return nil, false
	}
	if a.after {
		if i >= len(a.b) || a.b[i] != ',' {
			a.bad = true
			return nil, false
		}
		i++
	}
	a.after = true
	vs := skipWS(a.b, i)
	ve := skipValue(a.b, vs)
	if ve < 0 {
		a.bad = true
		return nil, false
	}
	a.i = ve
	return a.b[vs:ve], true
}

// isString reports whether raw is a JSON string token.
func isString(raw []byte) bool { return len(raw) >= 2 && raw[0] == '"' }

// nonEmptyString reports whether raw is a JSON string with at least one
// character.
func nonEmptyString(raw []byte) bool { return len(raw) > 2 && raw[0] == '"' }

// isNull reports whether raw is absent or the JSON null.
func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

// uint64Of reads raw as a non-negative integer; anything else reads as 0.
func uint64Of(raw []byte) (uint64, bool) {
	if len(raw) == 0 || len(raw) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
