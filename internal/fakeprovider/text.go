package fakeprovider

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// reply is the precomputed assistant reply: its text, its stream pieces and
// their JSON-quoted forms, so a request only appends prebuilt bytes.
type reply struct {
	text         string
	quoted       []byte
	pieces       []string
	quotedPieces [][]byte
	tokens       int
}

func newReply(text string, chunks int) reply {
	r := reply{text: text, quoted: appendQuoted(nil, text), tokens: countWords(text)}
	if r.tokens == 0 {
		r.tokens = 1
	}
	runes := utf8.RuneCountInString(text)
	if chunks > runes {
		chunks = runes
	}
	if chunks < 1 {
		chunks = 1
	}
	// Split on rune boundaries into chunks pieces of near-equal rune counts.
	start, seen, piece := 0, 0, 0
	for i := range text {
		if seen == (piece+1)*runes/chunks && i > start {
			r.pieces = append(r.pieces, text[start:i])
			start = i
			piece++
		}
		seen++
	}
	r.pieces = append(r.pieces, text[start:])
	for _, p := range r.pieces {
		r.quotedPieces = append(r.quotedPieces, appendQuoted(nil, p))
	}
	return r
}

// generateText returns deterministic prose of exactly n bytes.
func generateText(n int) string {
	words := []string{"keygate", "relays", "this", "benchmark", "reply", "through", "a", "fake", "upstream", "with", "steady", "text."}
	b := make([]byte, 0, n+16)
	for i := 0; len(b) < n; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, words[i%len(words)]...)
	}
	return string(b[:n])
}

// countWords is the fake's rough token count: whitespace-separated words.
func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		space := c == ' ' || c == '\n' || c == '\t' || c == '\r'
		if !space && !in {
			n++
		}
		in = !space
	}
	return n
}

// countContentWords counts words in a chat-style content value: a JSON
// string or an array of parts with "text" fields.
func countContentWords(raw json.RawMessage) int {
	if len(raw) == 0 {
		return 0
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return countWords(s)
		}
	case '[':
		var parts []struct {
			Text    string          `json:"text"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(raw, &parts) == nil {
			n := 0
			for _, p := range parts {
				n += countWords(p.Text) + countContentWords(p.Content)
			}
			return n
		}
	}
	return 0
}

// embedding returns a deterministic unit vector of dims floats derived from
// the input's bytes.
func embedding(input []byte, dims int) []float32 {
	h := fnv.New64a()
	_, _ = h.Write(input)
	x := h.Sum64() | 1
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		// xorshift64* keeps the sequence deterministic per input.
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		f := float64(int64(x*2685821657736338717)>>11) / float64(1<<52)
		v[i] = float32(f)
		norm += f * f
	}
	if norm > 0 {
		inv := 1 / math.Sqrt(norm)
		for i := range v {
			v[i] = float32(float64(v[i]) * inv)
		}
	}
	return v
}

func appendFloats(dst []byte, v []float32) []byte {
	dst = append(dst, '[')
	for i, f := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendFloat(dst, float64(f), 'g', -1, 32)
	}
	return append(dst, ']')
}

// appendQuoted appends s as a JSON string literal, escaped as encoding/json does.
func appendQuoted(dst []byte, s string) []byte { return jsonpeek.AppendString(dst, s) }

// appendNullableQuoted appends s quoted, or null when s is empty.
func appendNullableQuoted(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendQuoted(dst, s)
}

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
