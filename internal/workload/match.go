package workload

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Match reports whether s matches pattern, where * matches any run of
// characters (slashes and colons included: GitHub subjects are
// repo:owner/name:ref:refs/heads/main) and ? exactly one; every other
// character stands for itself.
func Match(pattern, s string) bool {
	// Iterative wildcard matching with one backtrack point, linear in
	// practice and never exponential.
	var p, i, star, mark = 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == '?':
			_, n := utf8.DecodeRuneInString(s[i:])
			p, i = p+1, i+n
		case p < len(pattern) && pattern[p] == s[i]:
			p, i = p+1, i+1
		case star >= 0:
			_, n := utf8.DecodeRuneInString(s[mark:])
			mark += n
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// claims are a verified token's claims, numbers kept as written.
type claims map[string]any

// lookup finds a claim by name or by a path into nested objects with /
// between levels (kubernetes.io/namespace). A top-level claim whose name
// is the whole path wins.
func (c claims) lookup(path string) (any, bool) {
	if v, ok := c[path]; ok {
		return v, true
	}
	var cur any = map[string]any(c)
	for part := range strings.SplitSeq(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalar is a claim value as text: a string, a number as written, true or
// false. Objects, lists and null are not scalars.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// matches reports whether the claim at path matches one of patterns: a
// scalar itself, a list when one of its scalars does.
func (c claims) matches(path string, patterns []string) bool {
	v, ok := c.lookup(path)
	if !ok {
		return false
	}
	var vals []string
	if l, isList := v.([]any); isList {
		for _, e := range l {
			if s, ok := scalar(e); ok {
				vals = append(vals, s)
			}
		}
	} else if s, ok := scalar(v); ok {
		vals = append(vals, s)
	}
	for _, s := range vals {
		for _, p := range patterns {
			if Match(p, s) {
				return true
			}
		}
	}
	return false
}

// template is a scope with ${claim} placeholders, parsed once.
type template struct {
	parts []string // literal text and claim paths, alternating; literal first
}

// parseTemplate reads s: text with ${claim} or ${path/to/claim}.
func parseTemplate(s string) (template, error) {
	var t template
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			t.parts = append(t.parts, s)
			return t, nil
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return t, fmt.Errorf("%q opens ${ without a closing }", s)
		}
		name := s[i+2 : i+end]
		if name == "" || strings.ContainsAny(name, " ${") {
			return t, fmt.Errorf("${%s} does not name a claim", name)
		}
		t.parts = append(t.parts, s[:i], name)
		s = s[i+end+1:]
	}
}

// placeholders returns the template with every claim replaced by value,
// to check its grammar before any token fills it.
func (t template) placeholders(value string) string {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 1 {
			p = value
		}
		b.WriteString(p)
	}
	return b.String()
}

// fill replaces each placeholder with its claim. A claim that is missing,
// not a scalar, or holds anything but letters, digits and . _ - / @ : is
// refused: a value with a space would add a scope item, one with * or ?
// would widen a pattern.
func (t template) fill(c claims) (string, error) {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v, ok := c.lookup(p)
		if !ok {
			return "", fmt.Errorf("the token has no claim %q", p)
		}
		s, ok := scalar(v)
		if !ok || !safeValue(s) {
			return "", fmt.Errorf("claim %q cannot be put in a scope: it must be text of letters, digits and . _ - / @ :", p)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func safeValue(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/@:", c) >= 0) {
			return false
		}
	}
	return true
}
