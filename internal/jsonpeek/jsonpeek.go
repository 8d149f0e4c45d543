// Package jsonpeek reads JSON without decoding it. Its Scanner walks a
// document's objects and arrays in place, validating everything it passes
// over and allocating nothing, and hands back keys and values as slices of
// the document; keygate's request peek (Scan), its usage meter and its
// stream translators all read JSON through it.
//
// Scan reads the few top-level fields keygate needs from a request body
// (model, stream, max_tokens) and ReplaceString rewrites the model value in
// place of a full re-encode. Bodies run to tens of megabytes of base64
// images, so nested values are skipped without allocating; the whole
// document is still validated, so keygate never forwards a body whose fields
// an upstream could read differently from keygate.
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
	// TurnsTail is the end of the conversation: the last TurnsTailBytes of
	// the top-level "messages", "input" or "contents" array (whichever
	// comes last), brackets included; -1, -1 when there is none. Requests
	// whose conversations end alike end in the same bytes here, which is
	// what the loop detector compares, without parsing the turns.
	TurnsTail Span
}

// TurnsTailBytes is the most of a conversation's end Fields.TurnsTail
// covers.
const TurnsTailBytes = 512

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
	fieldMessages
	fieldInput
	fieldContents
)

// fieldNames lists the keys keygate reads, indexed by field.
var fieldNames = [...]string{
	fieldModel:               "model",
	fieldStream:              "stream",
	fieldMaxTokens:           "max_tokens",
	fieldMaxCompletionTokens: "max_completion_tokens",
	fieldMaxOutputTokens:     "max_output_tokens",
	fieldMessages:            "messages",
	fieldInput:               "input",
	fieldContents:            "contents",
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
	s := NewScanner(body)
	f := Fields{ModelSpan: Span{-1, -1}, TurnsTail: Span{-1, -1}}
	if err := scanFields(&s, &f); err != nil {
		return Fields{ModelSpan: Span{-1, -1}, TurnsTail: Span{-1, -1}}, err
	}
	return f, nil
}

// scanFields reads the whole body into f.
func scanFields(s *Scanner, f *Fields) error {
	switch c := s.Peek(); {
	case s.Pos() >= len(s.b):
		return &SyntaxError{Offset: s.Pos(), Msg: "empty body: expected a JSON object"}
	case c != '{':
		return &SyntaxError{Offset: s.Pos(), Msg: "top-level value is not a JSON object"}
	}
	var (
		maxVals [3]int64
		maxSet  [3]bool
	)
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		fld, err := classify(key, s.keyAt)
		if err != nil {
			return err
		}
		vStart := s.Pos()
		v := s.Skip()
		if v == nil {
			break
		}
		switch fld {
		case fieldModel:
			if v[0] != '"' {
				return &SyntaxError{Offset: vStart, Msg: "model must be a string", Field: "model"}
			}
			f.HasModel, f.ModelSpan = true, Span{vStart, s.Pos()}
		case fieldStream:
			f.Stream = string(v) == "true"
		case fieldMessages, fieldInput, fieldContents:
			if v[0] == '[' {
				f.TurnsTail = Span{max(vStart, s.Pos()-TurnsTailBytes), s.Pos()}
			}
		case fieldMaxTokens, fieldMaxCompletionTokens, fieldMaxOutputTokens:
			k := fld - fieldMaxTokens
			if string(v) == "null" {
				maxSet[k] = false
				break
			}
			n, ok := ParseInt(v)
			if !ok || n < 1 || n > MaxTokensCeiling {
				name := fieldNames[fld]
				return &SyntaxError{Offset: vStart, Msg: name + " must be a whole number from 1 to " + strconv.Itoa(MaxTokensCeiling), Field: name}
			}
			maxVals[k], maxSet[k] = n, true
		}
	}
	if !s.End() {
		return s.Err()
	}
	first := true
	for k, set := range maxSet {
		if set && (first || maxVals[k] > f.MaxTokens) {
			f.MaxTokens, first = maxVals[k], false
		}
	}
	if f.HasModel {
		raw := s.b[f.ModelSpan.Start+1 : f.ModelSpan.End-1]
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			f.Model = string(raw)
		} else {
			var buf [64]byte
			model, _ := appendUnquoted(buf[:0], raw, math.MaxInt)
			f.Model = string(model)
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

// classify maps a key, unescaped as Scanner returns it, to the field it
// names; off is where the key starts, for the error.
func classify(key []byte, off int) (field, error) {
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
