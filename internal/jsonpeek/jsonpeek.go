// Package jsonpeek reads the few top-level fields keygate needs from a JSON
// request body (model, stream, max_tokens) without decoding the body, and
// rewrites the model value in place of a full re-encode. Bodies run to tens of
// megabytes of base64 images, so the scanner skips nested values without
// allocating; it still validates the whole document, so keygate never forwards
// a body whose fields an upstream could read differently from keygate.
package jsonpeek

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting Scan accepts, the same limit encoding/json applies.
const MaxDepth = 10000

// MaxTokensCeiling is the largest output-token cap Scan accepts. No model
// writes anywhere near ten million tokens in one answer, and a bound keeps
// every reservation computed from the value far from integer overflow, so
// a client cannot shrink its worst-case charge by sending a number that
// wraps around.
const MaxTokensCeiling = 10_000_000

// Span is the byte range [Start, End) of a value in a body; both are -1 when
// the value is absent.
type Span struct {
	Start, End int
}

// Fields holds the top-level request fields keygate reads. Duplicate keys
// resolve as in encoding/json: the last one wins.
type Fields struct {
	// Model is the unescaped value of "model".
	Model string
	// ModelSpan is where the model value sits in the body, quotes included.
	ModelSpan Span
	// HasModel reports whether the body has a top-level "model".
	HasModel bool
	// Stream is true only when top-level "stream" is the literal true.
	Stream bool
	// MaxTokens is the largest of "max_tokens", "max_completion_tokens" and
	// "max_output_tokens" present with a non-null value; 0 when none is.
	// Each present value is a whole number from 1 to MaxTokensCeiling, or
	// Scan refuses the body naming the field.
	MaxTokens int64
}

// SyntaxError reports a body that is not a well-formed JSON object, or a
// field keygate reads that has the wrong type. It never quotes the body.
type SyntaxError struct {
	Offset int    // byte offset of the problem
	Msg    string // what is wrong, without body content
	// Field is the top-level field at fault ("model", "max_tokens", ...) when
	// the document is well formed but that field cannot be read; "" for
	// structural errors.
	Field string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset)
}

// field identifies a top-level key keygate reads.
type field uint8

const (
	fieldOther field = iota
	fieldModel
	fieldStream
	fieldMaxTokens
	fieldMaxCompletionTokens
	fieldMaxOutputTokens
)

// fieldNames lists the keys keygate reads, indexed by field.
var fieldNames = [...]string{
	fieldModel:               "model",
	fieldStream:              "stream",
	fieldMaxTokens:           "max_tokens",
	fieldMaxCompletionTokens: "max_completion_tokens",
	fieldMaxOutputTokens:     "max_output_tokens",
}

// maxFoldedKey bounds the byte length of a key that can fold to one of
// fieldNames: a few letters have multi-byte case variants (K, ſ).
const maxFoldedKey = 32

// Scan reads the top-level fields of body, which must be one JSON object with
// optional surrounding whitespace. Keys are matched exactly after unescaping;
// a key that differs from a read field only in letter case is refused, since
// some upstreams (encoding/json among them) match keys case-insensitively and
// would read a different value than keygate checked.
func Scan(body []byte) (Fields, error) {
	s := scanner{b: body}
	f := Fields{ModelSpan: Span{-1, -1}}
	if err := s.object(&f); err != nil {
		return Fields{ModelSpan: Span{-1, -1}}, err
	}
	return f, nil
}

// object scans the whole body into f.
func (s *scanner) object(f *Fields) error {
	body := s.b
	s.ws()
	if s.i >= len(body) {
		return s.errAt(s.i, "empty body: expected a JSON object")
	}
	if body[s.i] != '{' {
		return s.errAt(s.i, "top-level value is not a JSON object")
	}
	s.depth = 1
	s.i++
	s.ws()
	var (
		modelEscaped bool
		maxVals      [3]int64
		maxSet       [3]bool
	)
	if s.i < len(body) && body[s.i] == '}' {
		s.i++
	} else {
		for {
			if s.i >= len(body) {
				return s.errAt(s.i, "unexpected end of body: expected an object key")
			}
			if body[s.i] != '"' {
				return s.errAt(s.i, "expected a string object key")
			}
			keyStart := s.i
			keyEscaped, err := s.str()
			if err != nil {
				return err
			}
			fld, err := s.classify(body[keyStart+1:s.i-1], keyEscaped, keyStart)
			if err != nil {
				return err
			}
			if err := s.colon(); err != nil {
				return err
			}
			vStart := s.i
			switch fld {
			case fieldModel:
				if body[s.i] != '"' {
					if err := s.value(); err != nil {
						return err
					}
					return &SyntaxError{Offset: vStart, Msg: "model must be a string", Field: "model"}
				}
				if modelEscaped, err = s.str(); err != nil {
					return err
				}
				f.HasModel, f.ModelSpan = true, Span{vStart, s.i}
			case fieldStream:
				if err := s.value(); err != nil {
					return err
				}
				f.Stream = s.i-vStart == 4 && string(body[vStart:s.i]) == "true"
			case fieldMaxTokens, fieldMaxCompletionTokens, fieldMaxOutputTokens:
				if err := s.value(); err != nil {
					return err
				}
				k := fld - fieldMaxTokens
				if string(body[vStart:s.i]) == "null" {
					maxSet[k] = false
					break
				}
				n, ok := parseInt(body[vStart:s.i])
				if !ok || n < 1 || n > MaxTokensCeiling {
					name := fieldNames[fld]
					return &SyntaxError{Offset: vStart, Msg: name + " must be a whole number from 1 to " + strconv.Itoa(MaxTokensCeiling), Field: name}
				}
				maxVals[k], maxSet[k] = n, true
			default:
				if err := s.value(); err != nil {
					return err
				}
			}
			s.ws()
			if s.i >= len(body) {
				return s.errAt(s.i, "unexpected end of body: expected ',' or '}' after an object value")
			}
			if body[s.i] == ',' {
				s.i++
				s.ws()
				continue
			}
			if body[s.i] == '}' {
				s.i++
				break
			}
			return s.errAt(s.i, "expected ',' or '}' after an object value")
		}
	}
	s.ws()
	if s.i != len(body) {
		return s.errAt(s.i, "unexpected data after the top-level object")
	}
	first := true
	for k, set := range maxSet {
		if set && (first || maxVals[k] > f.MaxTokens) {
			f.MaxTokens, first = maxVals[k], false
		}
	}
	if f.HasModel {
		raw := body[f.ModelSpan.Start+1 : f.ModelSpan.End-1]
		if !modelEscaped && utf8.Valid(raw) {
			f.Model = string(raw)
		} else {
			var buf [64]byte
			f.Model = string(appendUnquoted(buf[:0], raw))
		}
	}
	return nil
}

// ReplaceString returns a copy of body with the value at span replaced by
// value encoded as a JSON string, with encoding/json's escaping. It panics if
// span does not lie within body, which only a span not from Scan can cause.
func ReplaceString(body []byte, span Span, value string) []byte {
	if span.Start < 0 || span.End < span.Start || span.End > len(body) {
		panic(fmt.Sprintf("jsonpeek: span [%d,%d) outside a body of %d bytes", span.Start, span.End, len(body)))
	}
	out := make([]byte, 0, len(body)-(span.End-span.Start)+len(value)+8)
	out = append(out, body[:span.Start]...)
	out = AppendString(out, value)
	return append(out, body[span.End:]...)
}

// scanner walks a body. stack records, per nesting level, whether the
// container is an array (bit set) or an object.
type scanner struct {
	b     []byte
	i     int
	depth int
	stack [MaxDepth/64 + 1]uint64
}

func (s *scanner) errAt(off int, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg}
}

// ws skips JSON whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// colon consumes whitespace, ':' and whitespace, and checks a value follows.
func (s *scanner) colon() error {
	s.ws()
	if s.i >= len(s.b) {
		return s.errAt(s.i, "unexpected end of body: expected ':' after an object key")
	}
	if s.b[s.i] != ':' {
		return s.errAt(s.i, "expected ':' after an object key")
	}
	s.i++
	s.ws()
	if s.i >= len(s.b) {
		return s.errAt(s.i, "unexpected end of body: expected a value")
	}
	return nil
}

// classify maps a raw key (between its quotes) to the field it names.
func (s *scanner) classify(raw []byte, escaped bool, off int) (field, error) {
	key := raw
	if escaped {
		if len(raw) > 6*maxFoldedKey {
			return fieldOther, nil // too long to unescape to a short name
		}
		var buf [maxFoldedKey + 4]byte
		key = appendUnquoted(buf[:0], raw)
	}
	if len(key) > maxFoldedKey {
		return fieldOther, nil
	}
	for fld := fieldModel; int(fld) < len(fieldNames); fld++ {
		if string(key) == fieldNames[fld] {
			return fld, nil
		}
	}
	for fld := fieldModel; int(fld) < len(fieldNames); fld++ {
		if bytes.EqualFold(key, []byte(fieldNames[fld])) {
			return fieldOther, &SyntaxError{Offset: off, Field: fieldNames[fld],
				Msg: fmt.Sprintf("object key differs from %q only in letter case; use %q", fieldNames[fld], fieldNames[fld])}
		}
	}
	return fieldOther, nil
}

// value consumes one JSON value of any kind, validating it.
func (s *scanner) value() error {
	switch c := s.b[s.i]; c {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		return s.container()
	default:
		return s.scalar()
	}
}

// scalar consumes a number or literal at s.i (s.i is within the body).
func (s *scanner) scalar() error {
	start := s.i
	switch c := s.b[s.i]; {
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		n := numberLen(s.b[s.i:])
		if n == 0 {
			return s.errAt(start, "malformed number")
		}
		s.i += n
		return nil
	case c == '}' || c == ']' || c == ',' || c == ':':
		return s.errAt(start, fmt.Sprintf("unexpected %q: expected a value", c))
	default:
		return s.errAt(start, "invalid character: expected a value")
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.errAt(s.i, "invalid literal: expected "+lit)
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) push(array bool) error {
	if s.depth >= MaxDepth {
		return s.errAt(s.i, "nesting deeper than 10000 levels")
	}
	w, bit := s.depth/64, uint64(1)<<(s.depth%64)
	if array {
		s.stack[w] |= bit
	} else {
		s.stack[w] &^= bit
	}
	s.depth++
	return nil
}

// inArray reports whether the innermost open container is an array.
func (s *scanner) inArray() bool {
	d := s.depth - 1
	return s.stack[d/64]&(1<<(d%64)) != 0
}

// container consumes a whole object or array starting at s.i, iteratively,
// up to MaxDepth levels in total.
func (s *scanner) container() error {
	base := s.depth
	open := true // s.i is at '{' or '['; otherwise a value just ended
	for {
		if open {
			c := s.b[s.i]
			if err := s.push(c == '['); err != nil {
				return err
			}
			s.i++
			s.ws()
			if s.i >= len(s.b) {
				return s.errAt(s.i, "unexpected end of body inside a nested value")
			}
			if (c == '[' && s.b[s.i] == ']') || (c == '{' && s.b[s.i] == '}') {
				s.i++
				s.depth--
				open = false
			} else if err := s.member(); err != nil {
				return err
			} else if c := s.b[s.i]; c == '{' || c == '[' {
				continue
			} else if err := s.scalarOrString(); err != nil {
				return err
			} else {
				open = false
			}
			if s.depth == base {
				return nil
			}
		}
		// A value inside the innermost container just ended.
		s.ws()
		if s.i >= len(s.b) {
			return s.errAt(s.i, "unexpected end of body inside a nested value")
		}
		arr := s.inArray()
		switch c := s.b[s.i]; {
		case c == ',':
			s.i++
			s.ws()
			if s.i >= len(s.b) {
				return s.errAt(s.i, "unexpected end of body inside a nested value")
			}
			if err := s.member(); err != nil {
				return err
			}
			if c := s.b[s.i]; c == '{' || c == '[' {
				open = true
				continue
			}
			if err := s.scalarOrString(); err != nil {
				return err
			}
		case (arr && c == ']') || (!arr && c == '}'):
			s.i++
			s.depth--
			if s.depth == base {
				return nil
			}
		case arr:
			return s.errAt(s.i, "expected ',' or ']' after an array element")
		default:
			return s.errAt(s.i, "expected ',' or '}' after an object value")
		}
	}
}

// member consumes "key": when the innermost container is an object, leaving
// s.i at the start of the value. In arrays it does nothing.
func (s *scanner) member() error {
	if s.inArray() {
		return nil
	}
	if s.b[s.i] != '"' {
		return s.errAt(s.i, "expected a string object key")
	}
	if _, err := s.str(); err != nil {
		return err
	}
	return s.colon()
}

func (s *scanner) scalarOrString() error {
	if s.b[s.i] == '"' {
		_, err := s.str()
		return err
	}
	return s.scalar()
}

// numberLen returns the length of the JSON number at the start of b, or 0.
func numberLen(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	return i
}

// parseInt parses a JSON integer (no fraction or exponent) that fits int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return int64(-n), true
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	}
	return 0, false
}
