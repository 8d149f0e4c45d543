package usage

import (
	"bytes"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// Gemini's native API reports usage as a GenerateContentResponse's
// usageMetadata:
//
//	{"promptTokenCount":12,"candidatesTokenCount":30,"thoughtsTokenCount":8,
//	 "toolUsePromptTokenCount":0,"cachedContentTokenCount":4,"totalTokenCount":50}
//
// promptTokenCount includes the cached tokens, as OpenAI's prompt_tokens
// does; Google bills the thinking tokens and the tool-use prompt tokens,
// which the other counts leave out, at the output and input price. So
// InputTokens is promptTokenCount plus toolUsePromptTokenCount,
// OutputTokens candidatesTokenCount plus thoughtsTokenCount, and
// CacheReadTokens cachedContentTokenCount. A stream repeats usageMetadata
// in its chunks, the counts so far; the last one seen wins.

// errGeminiUsageType reports a usageMetadata that is not an object.
const errGeminiUsageType usageError = `"usageMetadata" is not a JSON object`

// geminiFromJSON reads the usage of a generateContent answer, or of the
// last element of a JSON array of answers (streamGenerateContent without
// alt=sse). An array cut off before its end reports what it had read so
// far with Complete false. Unlike FromJSON's other dialects it walks the
// whole body from the start: the key has capitals, which the search from
// the end cannot rule out in escaped form.
func geminiFromJSON(body []byte) (Usage, error) {
	s := jsonpeek.NewScanner(body)
	var u Usage
	switch s.Peek() {
	case '{':
		f, found, err := geminiObject(&s)
		if err != nil {
			return Usage{}, err
		}
		if !s.End() {
			return Usage{}, errSyntax
		}
		f.mergeInto(&u)
		u.Complete = found
		return u, nil
	case '[':
		found := false
		for ok := s.FirstElement(); ok; ok = s.NextElement() {
			if s.Peek() != '{' {
				if s.Skip() == nil {
					return u, nil
				}
				continue
			}
			f, has, err := geminiObject(&s)
			if err != nil {
				return u, nil // a stream cut off: what was read stands, incomplete
			}
			if has {
				f.mergeInto(&u)
				found = true
			}
		}
		if s.Failed() || !s.End() {
			return u, nil
		}
		u.Complete = found
		return u, nil
	}
	return Usage{}, errNotObject
}

// geminiObject reads the object s is at up to its end and returns the
// counts of its usageMetadata member, if it has one.
func geminiObject(s *jsonpeek.Scanner) (f figures, found bool, err error) {
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		match := string(key) == "usageMetadata"
		v := s.Skip()
		if v == nil {
			break
		}
		if match {
			var isObject bool
			if f, isObject, err = readGeminiUsage(v); err != nil {
				return figures{}, false, err
			}
			found = isObject
		}
	}
	if s.Failed() {
		return figures{}, false, errSyntax
	}
	return f, found, nil
}

// readGeminiUsage reads a usageMetadata value: an object, or null
// (isObject false).
func readGeminiUsage(val []byte) (f figures, isObject bool, err error) {
	if string(val) == "null" {
		return figures{}, false, nil
	}
	if len(val) == 0 || val[0] != '{' {
		return figures{}, false, errGeminiUsageType
	}
	var prompt, toolPrompt, candidates, thoughts, cached count
	s := jsonpeek.NewScanner(val)
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		var c *count
		switch string(key) {
		case "promptTokenCount":
			c = &prompt
		case "toolUsePromptTokenCount":
			c = &toolPrompt
		case "candidatesTokenCount":
			c = &candidates
		case "thoughtsTokenCount":
			c = &thoughts
		case "cachedContentTokenCount":
			c = &cached
		}
		v := s.Skip()
		if v != nil && c != nil {
			if err := c.setFrom(v); err != nil {
				return figures{}, false, err
			}
		}
	}
	if !s.End() {
		return figures{}, false, errSyntax
	}
	if prompt.set || toolPrompt.set {
		f.in, f.has = sat(prompt.v, toolPrompt.v), f.has|hasIn
	}
	if candidates.set || thoughts.set {
		f.out, f.has = sat(candidates.v, thoughts.v), f.has|hasOut
	}
	if cached.set {
		f.cacheRead, f.has = cached.v, f.has|hasCacheRead
	}
	return f, true, nil
}

// sat adds two counts reported by an upstream, stopping at the largest
// int64 rather than wrapping; a negative count counts as 0.
func sat(a, b int64) int64 {
	a, b = max(a, 0), max(b, 0)
	if a > (1<<63-1)-b {
		return 1<<63 - 1
	}
	return a + b
}

// geminiChunk reads one streamGenerateContent?alt=sse event: its
// usageMetadata, and the size of the text its candidates carry. The
// stream is complete once a chunk has carried a finishReason and usage
// has been seen.
func (m *StreamMeter) geminiChunk(data []byte) {
	data = trimWS(data)
	if len(data) == 0 || data[0] != '{' {
		return
	}
	if bytes.Contains(data, []byte(`"usageMetadata"`)) {
		s := jsonpeek.NewScanner(data)
		if f, found, err := geminiObject(&s); err == nil && found {
			f.mergeInto(&m.u)
			m.geminiUsage = true
		}
	}
	if i := bytes.Index(data, []byte(`"candidates"`)); i >= 0 {
		m.u.StreamedBytes += m.textBytes(data[i:], geminiTextKey)
		if bytes.Contains(data[i:], []byte(`"finishReason"`)) {
			m.geminiDone = true
		}
	}
	if m.geminiUsage && m.geminiDone {
		m.u.Complete = true
	}
}
