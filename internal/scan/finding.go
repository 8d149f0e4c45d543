package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// Finding is one credential found in a file, a blob or standard input.
type Finding struct {
	RuleID      string `json:"rule_id"`
	Family      string `json:"family"`
	Description string `json:"description"`
	// Provider is the keygate provider preset the credential is a key
	// for, if any.
	Provider string `json:"provider,omitempty"`
	// Keygate marks keygate's own credentials.
	Keygate bool `json:"keygate,omitempty"`
	// File is the path, slash-separated and relative to the directory the
	// scan was started from (or the repository root for git scans); "-"
	// for standard input.
	File string `json:"file"`
	// Line and Column locate the secret's first byte, EndLine and
	// EndColumn its last; lines and columns count from 1, columns in
	// bytes.
	Line      int `json:"line"`
	Column    int `json:"column"`
	EndLine   int `json:"end_line"`
	EndColumn int `json:"end_column"`
	// Redacted shows the secret's first characters and its length, never
	// the secret.
	Redacted string `json:"redacted"`
	// Fingerprint identifies the finding across scans without revealing
	// it (see Fingerprint); baselines list fingerprints.
	Fingerprint string `json:"fingerprint"`
	// Name is the variable or key the secret is assigned to, when known.
	Name string `json:"name,omitempty"`
	// Commit, Author, Email and Date say where in git history the secret
	// was added (for --git scans).
	Commit string    `json:"commit,omitempty"`
	Author string    `json:"author,omitempty"`
	Email  string    `json:"email,omitempty"`
	Date   time.Time `json:"date,omitzero"`
	// Offset and End locate the secret in the file, in bytes.
	Offset int `json:"-"`
	End    int `json:"-"`
	// Secret is the found value. It prints redacted; only --import reads it.
	Secret secret.String `json:"-"`
}

// Fingerprint returns a finding's stable identity: the first 16 bytes of
// SHA-256 over the rule, the file and the secret, in hex. The same secret
// in the same file is the same finding wherever the line moves; in
// another file it is a new one. A fingerprint of a low-entropy password
// could be attacked by guessing, so baselines are for repositories that
// already hold the findings they list.
func Fingerprint(rule, file string, sec []byte) string {
	h := sha256.New()
	h.Write([]byte("keygate-scan-v1\x00" + rule + "\x00" + file + "\x00"))
	h.Write(sec)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Redact shows the first characters of a secret (its literal prefix and
// at most a quarter of the rest) and its length.
func Redact(r *Rule, sec []byte) string {
	show := 0
	for _, a := range r.Anchors {
		if len(sec) >= len(a) && strings.EqualFold(string(sec[:len(a)]), a) {
			show = len(a)
			break
		}
	}
	if r.Keygate && bytes.HasPrefix(sec, []byte("kg_")) {
		if i := bytes.IndexByte(sec[3:], '_'); i >= 0 {
			show = 3 + i + 1
		}
	}
	show += min(4, (len(sec)-show)/4)
	show = min(show, len(sec)/2)
	var b strings.Builder
	for _, c := range sec[:show] {
		if c < 32 || c > 126 {
			c = '?'
		}
		b.WriteByte(c)
	}
	b.WriteString("…")
	b.WriteString("(" + itoa(len(sec)) + " chars)")
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// allowMarker on a line, or on the line before it, keeps findings on that
// line out of reports.
const allowMarker = "keygate:allow"

// findings turns matches in data into findings for file, dropping those
// on lines marked keygate:allow, and says how many it dropped.
func findings(file string, data []byte, ms []Match) ([]Finding, int) {
	if len(ms) == 0 {
		return nil, 0
	}
	dropped := 0
	out := make([]Finding, 0, len(ms))
	li := newLineIndex(data)
	for _, m := range ms {
		if inlineAllowed(data, m.SecretStart) {
			dropped++
			continue
		}
		sec := data[m.SecretStart:m.SecretEnd]
		line, col := li.at(m.SecretStart)
		eline, ecol := li.at(max(m.SecretStart, m.SecretEnd-1))
		out = append(out, Finding{
			RuleID: m.Rule.ID, Family: m.Rule.Family, Description: m.Rule.Description, Provider: m.Rule.Provider, Keygate: m.Rule.Keygate,
			File: file, Line: line, Column: col, EndLine: eline, EndColumn: ecol,
			Redacted: Redact(m.Rule, sec), Fingerprint: Fingerprint(m.Rule.ID, file, sec), Name: m.Name,
			Offset: m.SecretStart, End: m.SecretEnd, Secret: secret.New(string(sec)),
		})
	}
	return out, dropped
}

// inlineAllowed reports whether the line holding offset off, or the line
// before it, carries the keygate:allow marker.
func inlineAllowed(data []byte, off int) bool {
	s, e := lineOf(data, off)
	if bytes.Contains(data[s:e], []byte(allowMarker)) {
		return true
	}
	if s == 0 {
		return false
	}
	ps, pe := lineOf(data, s-1)
	return bytes.Contains(data[ps:pe], []byte(allowMarker))
}

// FindingsIn runs m over data, the content of file, and returns the
// findings not marked keygate:allow.
func FindingsIn(m *Matcher, file string, data []byte) []Finding {
	fs, _ := findings(file, data, m.Find(data))
	return fs
}
