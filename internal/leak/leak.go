// Package leak checks what keygate forwards (request bodies: prompts, tool
// arguments, MCP calls, passthrough bodies) and what it returns (model
// answers, streamed or not) for credentials: any value held in the vault,
// in its raw, base64, URL-encoded and JSON-escaped forms; any keygate key,
// refresh token or access token; and the provider-key formats of
// internal/scan.
//
// # Keeping vault values out of memory
//
// A Matcher never holds a vault value. It keeps, for each watched form of
// each value:
//
//   - one bit in a 2^20-bit filter (128 KiB) for the rolling hash of the
//     form's first W bytes (W is 16, or the shortest form when shorter,
//     but never below 8);
//   - an HMAC-SHA256 tag (under a key drawn from crypto/rand when the
//     Matcher is built) of those W bytes, and one of the whole form, and
//     the form's length.
//
// A body is read once: a Rabin-Karp rolling hash (random odd multiplier,
// arithmetic mod 2^64) of the last W bytes is updated per byte and looked
// up in the filter; only where its bit is set (about once in 2^20 / forms
// positions) is the W-byte window HMAC'd and looked up, and only a tag
// that matches leads to the HMAC of the whole candidate. Why this and not
// the alternatives:
//
//   - Holding the values (or the forms) in clear, for bytes.Index or an
//     Aho-Corasick automaton, would put every vault secret in the
//     gateway's heap for its lifetime, where injection needs only the
//     provider keys, and only briefly.
//   - A keyed hash of every window position (no rolling prefilter) costs
//     an HMAC per byte: about 100x slower.
//   - The filter alone reveals at most 20 bits about one W-byte window;
//     the HMAC tags reveal nothing without the key. Someone who dumps the
//     process gets the HMAC key too and can test guesses: a value of low
//     entropy (a short password) can be found by guessing, as it could be
//     from any hash. High-entropy values (API keys) cannot.
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
	filterBits = 20
	maxWindow  = 16
	minWindow  = 8
)

// form is one watched encoding of one value, kept as tags only.
type form struct {
	value  int // index into names
	kind   string
	length int
	full   [16]byte // truncated HMAC of the whole form
}

// Matcher finds credentials in bodies. It is immutable and safe for
// concurrent use; build a new one when the vault changes.
type Matcher struct {
	key     []byte
	w       int
	mult    uint64 // rolling hash multiplier
	multW   uint64 // mult^(w-1)
	filter  []uint64
	windows map[[16]byte][]int32 // HMAC of a form's first w bytes -> forms
	forms   []form
	names   []string
	maxForm int

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
	m := &Matcher{key: make([]byte, 32), filter: make([]uint64, 1<<filterBits/64), windows: map[[16]byte][]int32{}, fmts: fm, issuer: o.TokenIssuer}
	if _, err := rand.Read(m.key); err != nil {
		return nil, fmt.Errorf("leak: random key: %w", err)
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("leak: random multiplier: %w", err)
	}
	m.mult = binary.LittleEndian.Uint64(seed[:]) | 1

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
	m.multW = 1
	for range m.w - 1 {
		m.multW *= m.mult
	}
	mac := hmac.New(sha256.New, m.key)
	for _, p := range all {
		if len(p.text) < m.w {
			clear(p.text)
			continue
		}
		h := m.roll(p.text[:m.w])
		m.filter[h>>6] |= 1 << (h & 63)
		wt := tag(mac, p.text[:m.w])
		f := form{value: p.value, kind: p.kind, length: len(p.text), full: tag(mac, p.text)}
		m.windows[wt] = append(m.windows[wt], int32(len(m.forms)))
		m.forms = append(m.forms, f)
		m.maxForm = max(m.maxForm, len(p.text))
		clear(p.text)
	}
	return m, nil
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

// roll is the filter index of the rolling hash of b (len w).
func (m *Matcher) roll(b []byte) uint64 {
	var h uint64
	for _, c := range b {
		h = h*m.mult + uint64(c)
	}
	return mix(h)
}

func mix(h uint64) uint64 { return (h * 0x9e3779b97f4a7c15) >> (64 - filterBits) }

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
