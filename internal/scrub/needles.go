package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// MinNeedle is the length of the shortest byte string a Set looks for.
// Shorter forms of a credential are not looked for on their own: a 4-byte
// needle would shred unrelated text (every "test" in a body) while hiding
// next to nothing. The longer forms that contain a short credential, such
// as "Bearer <key>", are still looked for.
const MinNeedle = 8

// Credential is one upstream credential as it went on the wire.
type Credential struct {
	// Key is the raw credential keygate injected.
	Key secret.String
	// Header is the whole value of the header that carried it, exactly as
	// sent: "Bearer <key>", "Basic <base64 of user:key>", "Token <key>".
	// Leave it zero when the header value is Key itself or when the
	// credential went in the query.
	Header secret.String
}

// Set is the compiled set of byte strings (needles) to remove from what an
// upstream sends back. It is immutable and safe for concurrent use; build it
// once per credential and share it.
type Set struct {
	needles  [][]byte // longest first, then bytewise; no duplicates
	maxLen   int
	inNeedle [256]bool   // bytes some needle holds
	first    [257]uint32 // byFirst[first[c]:first[c+1]] start with byte c
	byFirst  []uint32    // needle indexes by first byte, longest first
	anchors  []anchor
	minLen   int         // the shortest needle's length
	grams    *gramFilter // the needles' 4-byte grams (see find)
	bodyMask []byte      // "[REDACTED]" then '*' up to maxLen
	// shortMask is "[REDACT]*", for needles of 8 and 9 bytes.
	shortMask []byte
}

// anchor is one rare byte the matcher scans for with bytes.IndexByte. Every
// needle holds at least one anchor byte at an offset before its last byte;
// the byte after the anchor narrows the needles worth comparing.
type anchor struct {
	b       byte
	next    [257]uint32 // entries[next[x]:next[x+1]] follow the anchor with byte x
	entries []entry
}

// entry is a needle whose anchor byte sits at off.
type entry struct {
	needle int
	off    int
}

// New builds the Set for the credentials that went on the wire. For each
// it looks for:
//   - the raw key, and the base64 of the key in the standard and URL
//     alphabets, padded and unpadded, and the part of its base64 that does
//     not depend on alignment, so the key is found inside a longer base64
//     text (a JWT, a dump of the request) whatever bytes precede it;
//   - the whole header value as sent;
//   - for a Basic header, the decoded "user:key" and its base64 in both
//     alphabets, padded and unpadded;
//   - each of the above percent-encoded as a query value
//     (url.QueryEscape) and as a path segment (url.PathEscape), and as it
//     reads inside a JSON string (Go's escaping, and "\/" for '/').
//
// Needles shorter than MinNeedle are dropped. A Set built from nothing, or
// from zero keys only, is empty: its readers pass bytes through untouched.
func New(creds ...Credential) *Set {
	var forms []string
	for _, c := range creds {
		forms = appendForms(forms, c)
	}
	slices.Sort(forms)
	forms = slices.Compact(forms) // the two base64 alphabets often agree
	var needles []string
	for _, f := range forms {
		needles = appendEncodings(needles, f)
	}
	return compile(needles)
}

// ForRequest builds the Set for an upstream request as keygate sent it:
// every key given, and every header value of req that carries one of them,
// raw or, for Basic authorization, inside the base64. Call it with the
// outgoing request (resp.Request in ReverseProxy.ModifyResponse) and the
// keys injected into it.
func ForRequest(req *http.Request, keys ...secret.String) *Set {
	return New(requestCredentials(req, keys)...)
}

// appendForms appends the plain forms of c: the strings that went on the
// wire or that an upstream may derive from them, before percent or JSON
// encoding.
func appendForms(forms []string, c Credential) []string {
	if k := c.Key.Reveal(); k != "" {
		forms = append(forms, k)
		forms = appendBase64(forms, k)
		forms = appendBase64Cores(forms, k)
	}
	if h := c.Header.Reveal(); h != "" {
		forms = append(forms, h)
		if up := basicUserPass(h); up != "" {
			forms = append(forms, up)
			forms = appendBase64(forms, up)
		}
	}
	return forms
}

// basicUserPass returns the decoded "user:password" of a Basic
// authorization value, or "" when v is not one.
func basicUserPass(v string) string {
	scheme, b64, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return ""
	}
	b64 = strings.TrimSpace(b64)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(b64); err == nil {
			return string(d)
		}
	}
	return ""
}

// appendBase64 appends s in base64, standard and URL alphabets, padded and
// unpadded.
func appendBase64(forms []string, s string) []string {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(s)))
	}
	return forms
}

// appendBase64Cores appends, for each of the three byte alignments s can
// have inside a longer base64 text, and both alphabets, the characters
// that depend on s's bytes alone. Character j of an encoding covers bits
// 6j to 6j+6 of the input; with a bytes before s, s covers bits 8a to
// 8(a+len(s)).
func appendBase64Cores(forms []string, s string) []string {
	for a := range 3 {
		in := append(make([]byte, a, a+len(s)), s...)
		lo, hi := (8*a+5)/6, 8*(a+len(s))/6
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if e := enc.EncodeToString(in); hi > lo && hi <= len(e) {
				forms = append(forms, e[lo:hi])
			}
		}
	}
	return forms
}

// appendEncodings appends f and the ways a service may write it back: in
// a URL query or path, and inside a JSON string.
func appendEncodings(out []string, f string) []string {
	out = append(out, f, url.QueryEscape(f), url.PathEscape(f))
	if j := jsonString(f); j != f {
		out = append(out, j)
	}
	if strings.Contains(f, "/") {
		out = append(out, strings.ReplaceAll(jsonString(f), "/", `\/`))
	}
	return out
}

// jsonString returns f as Go's encoding/json writes it between quotes.
func jsonString(f string) string {
	plain := true
	for i := 0; i < len(f) && plain; i++ {
		c := f[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if plain {
		return f
	}
	j, err := json.Marshal(f)
	if err != nil {
		return f
	}
	return string(j[1 : len(j)-1])
}

// compile drops short needles, sorts and deduplicates the rest and builds
// the matcher's tables.
func compile(forms []string) *Set {
	forms = slices.DeleteFunc(forms, func(f string) bool { return len(f) < MinNeedle })
	slices.SortFunc(forms, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	forms = slices.Compact(forms)
	s := &Set{}
	if len(forms) == 0 {
		return s
	}
	total := 0
	for _, f := range forms {
		total += len(f)
	}
	arena := make([]byte, 0, total)
	s.needles = make([][]byte, len(forms))
	for i, f := range forms {
		arena = append(arena, f...)
		s.needles[i] = arena[len(arena)-len(f):]
	}
	s.maxLen = len(forms[0])
	for _, n := range s.needles {
		s.first[int(n[0])+1]++
		for _, c := range n {
			s.inNeedle[c] = true
		}
	}
	for c := range 256 {
		s.first[c+1] += s.first[c]
	}
	s.byFirst = make([]uint32, len(s.needles))
	var fill [256]uint32
	for i, n := range s.needles {
		s.byFirst[s.first[n[0]]+fill[n[0]]] = uint32(i)
		fill[n[0]]++
	}
	s.bodyMask = make([]byte, max(s.maxLen, len(secret.Redacted)))
	copy(s.bodyMask, secret.Redacted)
	for i := len(secret.Redacted); i < len(s.bodyMask); i++ {
		s.bodyMask[i] = '*'
	}
	s.shortMask = []byte("[REDACT]*")
	s.minLen = len(forms[len(forms)-1])
	s.anchors = chooseAnchors(s.needles)
	s.addGrams()
	return s
}

// Empty reports whether the Set has nothing to look for.
func (s *Set) Empty() bool { return s == nil || len(s.needles) == 0 }

// MaxHold is the most bytes a Reader may hold back waiting for the rest of
// a needle: the longest needle's length minus one.
func (s *Set) MaxHold() int {
	if s.Empty() {
		return 0
	}
	return s.maxLen - 1
}

// mask returns what replaces a needle of n bytes in a body: as many bytes,
// so a body keeps its length and Content-Length stays true. It reads
// "[REDACTED]" padded with '*', or "[REDACT]" for the shortest needles.
func (s *Set) mask(n int) []byte {
	if n >= len(secret.Redacted) {
		return s.bodyMask[:n]
	}
	return s.shortMask[:n]
}

// chooseAnchors picks a small set of bytes such that every needle holds one
// of them before its last byte, preferring bytes rare in the JSON and
// English text bodies carry (greedy weighted set cover: every byte scanned
// for costs a pass over the data, a frequent one also a false hit per
// occurrence), and indexes each needle under its rarest chosen byte.
func chooseAnchors(needles [][]byte) []anchor {
	const passCost = 50 // one pass costs about as much as a byte seen 0.5% of the time
	covered := make([]bool, len(needles))
	var chosen []byte
	for left := len(needles); left > 0; {
		var counts [256]int
		for i, n := range needles {
			if covered[i] {
				continue
			}
			var seen [256]bool
			for _, c := range n[:len(n)-1] {
				if !seen[c] {
					seen[c] = true
					counts[c]++
				}
			}
		}
		best, bestScore := -1, 0.0
		for c, k := range counts {
			if k == 0 {
				continue
			}
			if score := float64(k) / float64(passCost+textFreq(byte(c))); score > bestScore {
				best, bestScore = c, score
			}
		}
		if best < 0 {
			break // cannot happen: compile keeps needles of 2 bytes or more
		}
		chosen = append(chosen, byte(best))
		for i, n := range needles {
			if !covered[i] && bytes.IndexByte(n[:len(n)-1], byte(best)) >= 0 {
				covered[i] = true
				left--
			}
		}
	}
	slices.SortFunc(chosen, func(a, b byte) int { return textFreq(a) - textFreq(b) })
	anchors := make([]anchor, len(chosen))
	for i, c := range chosen {
		anchors[i].b = c
	}
	// Index each needle under the first chosen (rarest) byte it holds: count
	// the entries per following byte, then place them.
	where := make([]entry, len(needles)) // needle -> anchor (in needle) and offset
	for ni, n := range needles {
		for ai, c := range chosen {
			if off := bytes.IndexByte(n[:len(n)-1], c); off >= 0 {
				where[ni] = entry{needle: ai, off: off}
				anchors[ai].next[int(n[off+1])+1]++
				break
			}
		}
	}
	for ai := range anchors {
		a := &anchors[ai]
		for x := range 256 {
			a.next[x+1] += a.next[x]
		}
		a.entries = make([]entry, a.next[256])
	}
	fill := make([][256]uint32, len(anchors))
	for ni, n := range needles {
		ai, off := where[ni].needle, where[ni].off
		x := n[off+1]
		anchors[ai].entries[anchors[ai].next[x]+fill[ai][x]] = entry{needle: ni, off: off}
		fill[ai][x]++
	}
	return anchors
}

// textFreq estimates how often byte c occurs in 10,000 bytes of the JSON
// and English text API bodies carry. Only the order matters: it steers
// the matcher to scan for rare bytes.
func textFreq(c byte) int {
	// English letter frequencies per 10,000 letters, a..z.
	lowerFreq := [26]int{
		650, 120, 220, 340, 1000, 180, 160, 490, 560, 10, 60, 320, 190,
		540, 600, 150, 8, 480, 510, 730, 220, 80, 190, 15, 160, 7,
	}
	switch {
	case c == ' ':
		return 1500
	case c >= 'a' && c <= 'z':
		return lowerFreq[c-'a']
	case c >= 'A' && c <= 'Z':
		return (lowerFreq[c-'A'] + 9) / 10
	case c >= '0' && c <= '9':
		return 60
	}
	switch c {
	case '"':
		return 400
	case ',', ':', '.', '\n':
		return 150
	case '_', '{', '}', '-':
		return 80
	case '/', '\\', '[', ']', '=', '(', ')', '\'':
		return 30
	case '+', '%', '&', '?', ';', '!', '*', '#', '<', '>', '@', '$', '\t', '\r', '|', '~', '^', '`':
		return 5
	}
	return 1
}
