package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// marshal encodes v without HTML escaping, so text reaches the other API as
// the client wrote it.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("translate: encoding the translated body: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// topLevel splits a request body into its members, sorted by name so that
// the first problem reported is always the same one.
func topLevel(body []byte, api string) (map[string]json.RawMessage, []string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		reason := "it is not a JSON object"
		var syn *json.SyntaxError
		switch {
		case errors.As(err, &syn):
			reason = fmt.Sprintf("it is not valid JSON (%v at byte %d)", syn, syn.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF) || (err != nil && strings.Contains(err.Error(), "unexpected end")):
			reason = "it is not valid JSON (it ends too early)"
		}
		return nil, nil, invalid("", "%s; send a %s request as one JSON object", reason, api)
	}
	keys := make([]string, 0, len(top))
	for k, v := range top {
		if !isNull(v) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return top, keys, nil
}

// decode reads v from raw, reporting field and the expected shape on
// failure.
func decode(raw json.RawMessage, v any, field, want string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return invalid(field, "expected %s", want)
	}
	return nil
}

// stringOrParts reads a content value that is either a string or an array
// of parts.
func stringOrParts[P any](raw json.RawMessage, field string) (text *string, parts []P, err error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, invalid(field, "expected a string")
		}
		return &s, nil, nil
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, nil, invalid(field, "expected a string or an array of content parts")
	}
	return nil, parts, nil
}

// compactObject checks raw is a JSON object and returns it compacted.
func compactObject(raw []byte) (json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, false
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return nil, false
	}
	return b.Bytes(), true
}

// dataURI splits data:<media type>;base64,<data>.
func dataURI(url string) (mediaType, data string, ok bool) {
	rest, ok := strings.CutPrefix(url, "data:")
	if !ok {
		return "", "", false
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", false
	}
	mediaType, ok = strings.CutSuffix(meta, ";base64")
	return mediaType, data, ok && mediaType != ""
}
