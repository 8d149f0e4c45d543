// Package usage reads token usage out of provider responses as they pass
// through keygate, so keygate can meter tokens and cost per key. FromJSON
// reads a plain JSON answer; StreamMeter watches a server-sent event stream
// chunk by chunk as the proxy copies it to the client, without buffering the
// stream and without decoding the events that cannot carry usage.
//
// Both read only what the upstream reported. Bodies must reach them as the
// upstream encoded them before any Content-Encoding: keygate meters
// uncompressed responses only.
package usage

import (
	"bytes"
	"io"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// Dialects keygate speaks. An empty or unknown dialect reads the usage
// fields and stream events of both.
const (
	// DialectOpenAI is the OpenAI wire format: chat completions,
	// completions, embeddings and the Responses API.
	DialectOpenAI = "openai"
	// DialectAnthropic is the Anthropic Messages wire format.
	DialectAnthropic = "anthropic"
	// DialectGemini is Gemini's native API: generateContent's
	// usageMetadata, in one answer, a JSON array of chunks or SSE.
	DialectGemini = "gemini"
)

// Usage is what a response said it consumed.
//
// InputTokens is the upstream's input figure as reported: OpenAI's
// prompt_tokens (Responses: input_tokens) and Gemini's promptTokenCount
// include cached tokens, while Anthropic's input_tokens exclude cache
// reads and cache writes. Cost calculation must therefore take the
// dialect into account.
type Usage struct {
	// InputTokens is prompt_tokens or input_tokens.
	InputTokens int64
	// OutputTokens is completion_tokens or output_tokens; for an Anthropic
	// stream, the latest cumulative figure.
	OutputTokens int64
	// CacheReadTokens is Anthropic's cache_read_input_tokens, or OpenAI's
	// prompt_tokens_details.cached_tokens (Responses:
	// input_tokens_details.cached_tokens), which OpenAI also counts in
	// InputTokens.
	CacheReadTokens int64
	// CacheWriteTokens is Anthropic's cache_creation_input_tokens.
	CacheWriteTokens int64
	// Complete reports that the response carried its final usage figures.
	// A stream cut off before them reports what it had seen, with Complete
	// false; so does an OpenAI stream requested without
	// stream_options.include_usage, which never carries usage.
	Complete bool
	// StreamedBytes is the size of the generated text a stream's content
	// deltas carried (text, tool-call arguments, reasoning), counted as
	// JSON-escaped on the wire, so keygate can estimate output tokens when
	// a stream ends without usage. It is always zero for FromJSON.
	StreamedBytes int64
}

// Errors FromJSON returns. They never quote the body.
const (
	errNotObject  usageError = "response body is not a JSON object"
	errSyntax     usageError = "malformed or truncated JSON in response body"
	errUsageType  usageError = `"usage" is not a JSON object`
	errCountType  usageError = "a token count in usage is not an integer"
	errDetailType usageError = "a usage details field is not a JSON object"
)

// usageError is an error FromJSON reports about a response body.
type usageError string

// Error implements error.
func (e usageError) Error() string { return "usage: " + string(e) }

// FromJSON reads the top-level "usage" object of a plain JSON response: an
// OpenAI chat completion, completion, embeddings list or Responses object, or
// an Anthropic message. dialect is DialectOpenAI or DialectAnthropic.
//
// A body without usage (or with "usage": null) yields a zero Usage with
// Complete false and no error. Keys are matched exactly after unescaping and
// the last duplicate wins, as with encoding/json. FromJSON does not allocate
// and does not decode the body: it locates usage from the end of the body,
// where every upstream puts it, so a multi-megabyte embeddings answer costs
// the same as a short one. The part of the body before usage's member is
// jumped over, not validated; it reports an error when the body is not an
// object or what it reads (with jsonpeek's validating Scanner) is
// malformed.
//
// With DialectGemini it reads a generateContent answer's usageMetadata
// (geminiUsage), or that of the last element of a JSON array of them,
// the form streamGenerateContent answers in without alt=sse.
func FromJSON(dialect string, body []byte) (Usage, error) {
	if dialect == DialectGemini {
		return geminiFromJSON(body)
	}
	s := jsonpeek.NewScanner(body)
	if s.Peek() != '{' {
		return Usage{}, errNotObject
	}
	val, found, err := lookup(body[s.Pos():], `"usage"`, true)
	if err != nil || !found {
		return Usage{}, err
	}
	f, isObject, err := readUsage(val)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	f.mergeInto(&u)
	u.Complete = isObject
	return u, nil
}

// lookup finds the value of the member named quoted (the key with its
// quotes) in obj, an object whose closing brace ends obj. The last duplicate
// wins. With fromEnd, it first tries the key's last occurrence in obj and
// checks that what follows is the rest of obj's members: that holds only for
// a member of obj itself, so a key near the end of a large object is found
// without reading the rest. Otherwise it walks obj from the start. What it
// walks is validated; what it jumps over is not. With fromEnd the name must
// be lowercase letters.
func lookup(obj []byte, quoted string, fromEnd bool) (val []byte, found bool, err error) {
	name := quoted[1 : len(quoted)-1]
	if fromEnd {
		if c := bytes.LastIndex(obj, []byte(quoted)); c > 0 {
			if p := lastNonWS(obj[:c]); p >= 0 && (obj[p] == ',' || obj[p] == '{') {
				s := jsonpeek.NewScanner(obj[c:])
				key, ok := s.Member()
				val, found, err := lastMember(&s, key, ok, name)
				if err == nil && found {
					return val, true, nil
				}
			}
		} else if !bytes.Contains(obj, []byte(`\u006`)) && !bytes.Contains(obj, []byte(`\u007`)) {
			// The key appears nowhere, not even escaped: a lowercase
			// letter escaped is \u0061 to \u007a. Other escapes (\u003c
			// from Go upstreams, accents) do not make the walk needed.
			return nil, false, nil
		}
	}
	s := jsonpeek.NewScanner(obj)
	key, ok := s.FirstMember()
	return lastMember(&s, key, ok, name)
}

// lastMember reads the members of the object s is in to its end, from the
// one whose key (and ok) the caller has just read, checks nothing follows
// the object, and returns the value of the last member named name.
func lastMember(s *jsonpeek.Scanner, key []byte, ok bool, name string) (val []byte, found bool, err error) {
	for ; ok; key, ok = s.NextMember() {
		match := string(key) == name
		v := s.Skip()
		if match {
			val, found = v, true
		}
	}
	if !s.End() {
		return nil, false, errSyntax
	}
	return val, found, nil
}

// lastNonWS returns the index of the last non-whitespace byte of b, or -1.
func lastNonWS(b []byte) int {
	i := len(b) - 1
	for i >= 0 && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i--
	}
	return i
}

// figures are the counts one usage object carried; has marks which.
type figures struct {
	in, out, cacheRead, cacheWrite int64
	has                            uint8
}

// Bits of figures.has.
const (
	hasIn uint8 = 1 << iota
	hasOut
	hasCacheRead
	hasCacheWrite
)

// mergeInto overwrites u's counts with those f carries; absent counts keep
// u's values, so Anthropic's message_delta updates only what it reports.
func (f *figures) mergeInto(u *Usage) {
	if f.has&hasIn != 0 {
		u.InputTokens = f.in
	}
	if f.has&hasOut != 0 {
		u.OutputTokens = f.out
	}
	if f.has&hasCacheRead != 0 {
		u.CacheReadTokens = f.cacheRead
	}
	if f.has&hasCacheWrite != 0 {
		u.CacheWriteTokens = f.cacheWrite
	}
}

// count is one integer field of a usage object; null or absent is unset.
type count struct {
	v   int64
	set bool
}

// setFrom reads an integer or null.
func (c *count) setFrom(val []byte) error {
	if string(val) == "null" {
		*c = count{}
		return nil
	}
	v, ok := jsonpeek.ParseInt(val)
	if !ok {
		return errCountType
	}
	*c = count{v, true}
	return nil
}

// readUsage reads a usage value: an object, or null (isObject false).
//
// Precedence when a body carries both spellings: input_tokens over
// prompt_tokens, output_tokens over completion_tokens, and
// cache_read_input_tokens over input_tokens_details.cached_tokens over
// prompt_tokens_details.cached_tokens.
func readUsage(val []byte) (f figures, isObject bool, err error) {
	if string(val) == "null" {
		return figures{}, false, nil
	}
	if len(val) == 0 || val[0] != '{' {
		return figures{}, false, errUsageType
	}
	var prompt, completion, input, output, cacheRead, cacheWrite, promptCached, inputCached count
	s := jsonpeek.NewScanner(val)
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		var c, cached *count
		switch string(key) {
		case "prompt_tokens":
			c = &prompt
		case "completion_tokens":
			c = &completion
		case "input_tokens":
			c = &input
		case "output_tokens":
			c = &output
		case "cache_read_input_tokens":
			c = &cacheRead
		case "cache_creation_input_tokens":
			c = &cacheWrite
		case "prompt_tokens_details":
			cached = &promptCached
		case "input_tokens_details":
			cached = &inputCached
		}
		v := s.Skip()
		switch {
		case v == nil:
		case c != nil:
			err = c.setFrom(v)
		case cached != nil:
			*cached, err = readCached(v)
		}
		if err != nil {
			return figures{}, false, err
		}
	}
	if !s.End() {
		return figures{}, false, errSyntax
	}
	pick := func(dst *int64, bit uint8, cs ...count) {
		for _, c := range cs {
			if c.set {
				*dst, f.has = c.v, f.has|bit
				return
			}
		}
	}
	pick(&f.in, hasIn, input, prompt)
	pick(&f.out, hasOut, output, completion)
	pick(&f.cacheRead, hasCacheRead, cacheRead, inputCached, promptCached)
	pick(&f.cacheWrite, hasCacheWrite, cacheWrite)
	return f, true, nil
}

// readCached reads cached_tokens from a details object, or null.
func readCached(val []byte) (count, error) {
	if string(val) == "null" {
		return count{}, nil
	}
	if len(val) == 0 || val[0] != '{' {
		return count{}, errDetailType
	}
	var c count
	s := jsonpeek.NewScanner(val)
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		match := string(key) == "cached_tokens"
		v := s.Skip()
		if match && v != nil {
			if err := c.setFrom(v); err != nil {
				return count{}, err
			}
		}
	}
	if !s.End() {
		return count{}, errSyntax
	}
	return c, nil
}

// MeterBody returns a body that reads from body and writes every byte it
// returns to m, typically a *StreamMeter, before handing it on. keygate
// installs it in httputil.ReverseProxy.ModifyResponse: the proxy's own reads
// feed the meter, so the stream is neither copied nor delayed. Write errors
// from m are ignored. Closing the returned body closes body. Do not wrap the
// body of a 101 Switching Protocols response, which the proxy needs to be
// writable. A nil m returns body unchanged.
func MeterBody(body io.ReadCloser, m io.Writer) io.ReadCloser {
	if m == nil {
		return body
	}
	return &meteredBody{body: body, m: m}
}

// meteredBody tees reads into a meter.
type meteredBody struct {
	body io.ReadCloser
	m    io.Writer
}

// Read implements io.Reader.
func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		_, _ = b.m.Write(p[:n])
	}
	return n, err
}

// Close implements io.Closer.
func (b *meteredBody) Close() error { return b.body.Close() }

// trimWS trims JSON whitespace from both ends of b.
func trimWS(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}
