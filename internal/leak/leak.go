// Package leak checks what keygate forwards (request bodies: prompts, tool
// arguments, MCP calls, passthrough bodies) and what it returns (model
// answers, streamed or not) for credentials: any value held in the vault,
// in its raw, base64, URL-encoded and JSON-escaped forms; any keygate key,
// refresh token or access token; and the provider-key formats of
// internal/scan.
//
// # Keeping vault values out of memory
//
// A Matcher never holds a vault value. For each watched form of each value
// it keeps only:
//
//   - the HMAC-SHA256 tag (under a key drawn from crypto/rand when the
//     Matcher is built, truncated to 16 bytes) of the whole form, and its
//     length;
//   - for each of the form's first S windows of W bytes (W is 16, or the
//     shortest form when shorter, never below 8; S is up to 8, so that S
//     windows fit in the shortest form), the window's HMAC tag and one bit
//     in a filter indexed by a cheap keyed hash of the window.
//
// A body is read once, probing one W-byte window every S bytes: the cheap
// hash of the window is looked up in the filter; only where its bit is set
// (well under 1% of probes) is the window HMAC'd and looked up among the
// window tags, and only a tag that matches leads to the HMAC of the whole
// candidate. Every occurrence of a form has exactly one probe inside its
// first S windows, so nothing is missed. Why this design:
//
//   - Holding the values (or their forms) in clear, for bytes.Index or an
//     Aho-Corasick automaton, would put every vault secret in the
//     gateway's heap for its lifetime, where injection needs only the
//     provider keys, and only briefly.
//   - An HMAC of every window costs about 400 ns a byte. A Rabin-Karp
//     rolling hash checked at every byte (the first version of this
//     package) costs a multiply chain per byte, about 1.5 ns; probing every
//     S-th byte with two 8-byte loads and two multiplies costs a fraction
//     of that, for S windows stored per form instead of one.
//   - The filter says at most about 20 bits about a window; the HMAC tags
//     say nothing without the key. Someone who dumps the process gets the
//     key too and can test guesses: a value of low entropy (a short
//     password) can be found by guessing, as from any hash; high-entropy
//     values (API keys) cannot.
//   - So that a stream of text is not held back a whole window while a
//     form may still be arriving, two facts about the forms are kept: the
//     set of bytes used by the forms made only of plain bytes (printable
//     ASCII but for a few rare marks; for API keys and base64: letters,
//     digits and a few marks), and for the other forms (binary keys, their
//     escapes, non-ASCII passwords) the most plain bytes one starts with.
//     A stream then passes on every byte followed by one outside the set,
//     such as a space, unless a byte that is not plain comes soon after
//     it. Neither says where a byte is in which secret, or how often.
//
// Values shorter than MinValueLen (8 bytes) are not watched: too short to
// tell from ordinary text.
package leak

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/scan"
	"github.com/keygate/keygate/internal/secret"
)

// Kind says what a hit is.
type Kind string

// Kinds of hits.
const (
	KindVault    Kind = "vault"    // a value held in keygate's vault
	KindKeygate  Kind = "keygate"  // a keygate key, refresh token or access token
	KindProvider Kind = "provider" // another credential format (provider keys, private keys, ...)
)

// RuleVault names hits of vault values in Hit.Rule.
const RuleVault = "vault-value"

// RuleKeygateToken names hits of keygate access tokens in Hit.Rule.
const RuleKeygateToken = "keygate-access-token"

// Hit is one credential found in a body. It carries no part of the
// credential.
type Hit struct {
	Kind Kind
	// Rule names the format: RuleVault, a scanner rule ID such as
	// "keygate-api-key" or "openai-project-key", or RuleKeygateToken.
	Rule string
	// Name is the vault record's name for vault hits (as given in
	// Value.Name), empty otherwise.
	Name string
	// Form is how a vault value was written: "raw", "base64",
	// "base64url", "url" or "json".
	Form string
	// Start and End locate the credential in the body or stream, in bytes.
	Start, End int64
}

// Value is one vault value to watch for.
type Value struct {
	// Name identifies the record in hits and audit events, such as
	// "provider:openai" or "secret:payments/stripe". Never the value.
	Name  string
	Value secret.String
}

// Options configure a Matcher.
type Options struct {
	// Values are the vault values to watch for. They are not kept.
	Values []Value
	// Rules are the credential formats to recognise; nil means Rules().
	Rules []scan.Rule
	// TokenIssuer, when set, makes JWTs whose "iss" claim equals it hits
	// of KindKeygate (rule RuleKeygateToken): keygate's access tokens.
	TokenIssuer string
	// MinValueLen is the shortest value watched; 0 means 8.
	MinValueLen int
}

const (
	maxWindow = 16 // W at most
	minWindow = 8  // W at least
	maxStride = 8  // S at most
)

// form is one watched encoding of one value, kept as tags only.
type form struct {
	value  int // index into names
	kind   string
	length int
	full   [16]byte // truncated HMAC of the whole form
}

// winRef is a window of a form: the form, and the window's offset in it.
type winRef struct {
	form, off int32
}

// Matcher finds credentials in bodies. It is immutable and safe for
// concurrent use; build a new one when the vault changes.
type Matcher struct {
	key     []byte
	w, s    int    // window length and probe stride
	k1, k2  uint64 // keys of the filter's hash
	shift   uint   // 64 - log2(filter bits)
	filter  []uint64
	windows map[[16]byte][]winRef // HMAC of a window -> where it is in which form
	forms   []form
	names   []string
	inPlain [256]bool // bytes the forms made only of plain bytes hold
	head    int       // the most plain bytes any other form starts with
	hasMark bool      // some form holds a byte that is not plain

	fmts   *scan.Matcher
	issuer string
}

// Rules returns the formats a Matcher recognises by default: every scanner
// rule except the generic ones (a value assigned to a name like password
// needs a file's context, not a prompt's) and those whose matches can be
// longer than 1 KiB, plus a rule for private key headers that stands in
// for the PEM rules and a JWT rule for keygate's access tokens.
func Rules() []scan.Rule {
	var out []scan.Rule
	for _, r := range scan.Rules() {
		if r.Rank == scan.RankGeneric || r.MaxLen > 1024 {
			continue
		}
		out = append(out, r)
	}
	out = append(out, scan.Rule{
		ID: "private-key", Family: "private-key", Description: "Private key",
		Anchors: []string{"-----BEGIN "},
		Pattern: `-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----(?:\r?\n|\\r?\\n)?[A-Za-z0-9+/=\r\n\\]{40}`,
		MaxLen:  120, Rank: scan.RankShape, Free: true, Structured: true,
	}, scan.Rule{
		ID: "jwt", Family: "jwt", Description: "JSON Web Token",
		Anchors: []string{"eyJ"}, Pattern: `eyJ[A-Za-z0-9_-]{8,1000}\.eyJ[A-Za-z0-9_-]{8,1000}\.[A-Za-z0-9_-]{16,600}`,
		MaxLen: 2700, Rank: scan.RankShape, Structured: true,
	})
	return out
}

// New builds a Matcher. The values in o are read once and not kept.
func New(o Options) (*Matcher, error) {
	if o.MinValueLen <= 0 {
		o.MinValueLen = 8
	}
	if o.Rules == nil {
		o.Rules = Rules()
	}
	fm, err := scan.NewMatcher(o.Rules)
	if err != nil {
		return nil, err
	}
	m := &Matcher{key: make([]byte, 32), windows: map[[16]byte][]winRef{}, fmts: fm, issuer: o.TokenIssuer}
	if _, err := rand.Read(m.key); err != nil {
		return nil, fmt.Errorf("leak: random key: %w", err)
	}
	var seed [16]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("leak: random filter key: %w", err)
	}
	m.k1, m.k2 = binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])

	type pending struct {
		value int
		kind  string
		text  []byte
	}
	var all []pending
	m.w = maxWindow
	for _, v := range o.Values {
		raw := v.Value.Reveal()
		if len(raw) < o.MinValueLen {
			continue
		}
		idx := len(m.names)
		m.names = append(m.names, v.Name)
		for _, f := range forms(raw) {
			all = append(all, pending{idx, f.kind, f.text})
			m.w = min(m.w, len(f.text))
		}
	}
	m.w = max(m.w, minWindow)
	shortest := 0
	for _, p := range all {
		if len(p.text) >= m.w && (shortest == 0 || len(p.text) < shortest) {
			shortest = len(p.text)
		}
	}
	m.s = min(maxStride, max(1, shortest-m.w+1))
	// The filter: about 256 bits a window, so under 0.5% of probes pass
	// it by chance; 2^16 to 2^24 bits.
	fb := uint(16)
	for fb < 24 && 1<<fb < 256*len(all)*m.s {
		fb++
	}
	m.shift = 64 - fb
	m.filter = make([]uint64, 1<<fb/64)
	mac := hmac.New(sha256.New, m.key)
	for _, p := range all {
		if len(p.text) < m.w {
			clear(p.text)
			continue
		}
		if h := plainHead(p.text); h == len(p.text) {
			for _, c := range p.text {
				m.inPlain[c] = true
			}
		} else {
			m.head, m.hasMark = max(m.head, h), true
		}
		fi := int32(len(m.forms))
		m.forms = append(m.forms, form{value: p.value, kind: p.kind, length: len(p.text), full: tag(mac, p.text)})
		for off := 0; off < m.s && off+m.w <= len(p.text); off++ {
			win := p.text[off : off+m.w]
			h := m.probe(win)
			m.filter[h>>6] |= 1 << (h & 63)
			wt := tag(mac, win)
			m.windows[wt] = append(m.windows[wt], winRef{fi, int32(off)})
		}
		clear(p.text)
	}
	return m, nil
}

// plain reports whether c is a byte of ordinary text and keys: printable
// ASCII but for the few marks prose and keys rarely hold (\ { } | ^ `),
// a tab or a line break. A random byte is one about a third of the time.
func plain(c byte) bool {
	switch c {
	case '\\', '{', '}', '|', '^', '`':
		return false
	case '\t', '\n', '\r':
		return true
	}
	return 0x20 <= c && c < 0x7f
}

// plainHead is how many bytes b starts with that are plain.
func plainHead(b []byte) int {
	for i, c := range b {
		if !plain(c) {
			return i
		}
	}
	return len(b)
}

// Watched is how many vault values the Matcher watches for.
func (m *Matcher) Watched() int { return len(m.names) }

// tag is the first 16 bytes of HMAC-SHA256(key, b).
func tag(mac hash.Hash, b []byte) [16]byte {
	mac.Reset()
	mac.Write(b)
	var sum [sha256.Size]byte
	var t [16]byte
	copy(t[:], mac.Sum(sum[:0]))
	return t
}

// probe is the filter index of a window (8 to 16 bytes): a keyed
// multiply-xor hash of its first and last eight bytes. It only has to
// spread windows over the filter; the HMAC decides.
func (m *Matcher) probe(b []byte) uint64 {
	a := binary.LittleEndian.Uint64(b)
	c := binary.LittleEndian.Uint64(b[len(b)-8:])
	x := (a ^ m.k1) * 0x9e3779b97f4a7c15
	y := (c ^ m.k2) * 0xc2b2ae3d27d4eb4f
	return (x ^ bits.RotateLeft64(y, 31) ^ x>>29) >> m.shift
}

// encoded is one form of a value.
type encoded struct {
	kind string
	text []byte
}

// forms returns the encodings of v that are watched, by kind: raw, the
// base64 and base64url characters that depend on v alone at each of the
// three byte alignments (so v is found inside a larger encoded payload,
// such as an HTTP Basic credential), URL-encoded and JSON-escaped.
func forms(v string) []encoded {
	out := []encoded{{"raw", []byte(v)}}
	add := func(kind string, f string) {
		if f == "" {
			return
		}
		for _, have := range out {
			if string(have.text) == f {
				return
			}
		}
		out = append(out, encoded{kind, []byte(f)})
	}
	for _, e := range []struct {
		kind string
		enc  *base64.Encoding
	}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
		for k := 0; k < 3; k++ {
			src := append(make([]byte, k), v...)
			s := e.enc.EncodeToString(src)
			from, to := (8*k+5)/6, 8*(k+len(v))/6
			name := e.kind
			if k > 0 {
				name = fmt.Sprintf("%s@%d", e.kind, k)
			}
			add(name, s[from:to])
			clear(src)
		}
	}
	add("url", url.QueryEscape(v))
	add("url@2", url.PathEscape(v))
	if b, err := json.Marshal(v); err == nil {
		add("json", string(b[1:len(b)-1]))
		clear(b)
	}
	add("json@2", strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
	return out
}

// kindName strips the variant from a form's kind ("base64@2" is base64).
func kindName(k string) string {
	name, _, _ := strings.Cut(k, "@")
	return name
}

// errClosed is returned by writes to a closed Stream.
var errClosed = errors.New("leak: write after Close")
