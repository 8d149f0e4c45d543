package policy

import (
	"fmt"
	"path"
	"strings"
)

// PathRule permits one HTTP method, or every method, on a path or a family of
// paths. It is written "METHOD PATTERN":
//
//	POST /v1/embeddings        one method, one path
//	* /v1/chat/completions     every method on one path
//	POST /v1/*                 a trailing * matches the rest of the path, across slashes
//	GET /v1/threads/*/runs     elsewhere * matches within one path segment
//
// Patterns use path.Match syntax (*, ?, [...]) except for the trailing *. A
// PathRule is made by ParsePathRule; its zero value matches nothing.
type PathRule struct {
	method  string // upper case, or "*" for every method
	pattern string // as the administrator wrote it
	stem    string // pattern without a trailing "*"
	prefix  bool   // pattern ends in "*": stem must match the start of the path
	glob    bool   // stem contains glob characters
}

// ParsePathRule parses a rule such as "POST /v1/embeddings" or "* /v1/*".
// The method is case-insensitive and stored upper case.
func ParsePathRule(spec string) (PathRule, error) {
	fields := strings.Fields(spec)
	if len(fields) != 2 {
		return PathRule{}, fmt.Errorf(`policy: path rule %q: want "METHOD /path", e.g. "POST /v1/embeddings" or "* /v1/*"`, spec)
	}
	method, pattern := strings.ToUpper(fields[0]), fields[1]
	if method != "*" && !isToken(method) {
		return PathRule{}, fmt.Errorf(`policy: path rule %q: %q is not an HTTP method; write one such as GET or POST, or * for every method`, spec, fields[0])
	}
	if pattern != "*" && !strings.HasPrefix(pattern, "/") {
		return PathRule{}, fmt.Errorf(`policy: path rule %q: the path must start with "/", e.g. "/v1/embeddings"`, spec)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return PathRule{}, fmt.Errorf("policy: path rule %q: %q is not a valid pattern (check its [ ] and \\ escapes): %v", spec, pattern, err)
	}
	r := PathRule{method: method, pattern: pattern, stem: pattern}
	if strings.HasSuffix(pattern, "*") && !strings.HasSuffix(pattern, `\*`) {
		r.prefix, r.stem = true, strings.TrimSuffix(pattern, "*")
	}
	if !isCleanPath(r.stem) && r.stem != "" {
		return PathRule{}, fmt.Errorf(`policy: path rule %q: the path has an empty, "." or ".." segment; write it in clean form, e.g. "/v1/models"`, spec)
	}
	r.glob = strings.ContainsAny(r.stem, `*?[\`)
	return r, nil
}

// ParsePathRules parses several rules, stopping at the first bad one.
func ParsePathRules(specs []string) ([]PathRule, error) {
	rules := make([]PathRule, 0, len(specs))
	for _, s := range specs {
		r, err := ParsePathRule(s)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// String returns the rule as "METHOD PATTERN", which ParsePathRule accepts.
func (r PathRule) String() string { return r.method + " " + r.pattern }

// MarshalText encodes the rule as its String form, for configuration files.
func (r PathRule) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses a rule written as ParsePathRule accepts it.
func (r *PathRule) UnmarshalText(b []byte) error {
	v, err := ParsePathRule(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Allows reports whether the rule permits the request method on the path.
// The method is compared exactly (HTTP methods are case-sensitive).
func (r PathRule) Allows(method, p string) bool {
	if r.method == "" || (r.method != "*" && r.method != method) {
		return false
	}
	switch {
	case !r.prefix && !r.glob:
		return p == r.stem
	case !r.prefix:
		ok, _ := path.Match(r.stem, p)
		return ok
	case !r.glob:
		return strings.HasPrefix(p, r.stem)
	}
	// A glob stem followed by "*": some leading part of the path must match
	// the stem. Request paths are short, so trying each length is cheap.
	for i := 0; i <= len(p); i++ {
		if ok, _ := path.Match(r.stem, p[:i]); ok {
			return true
		}
	}
	return false
}

// PathsAllow reports whether any rule permits the request. No rules permit
// every request. p is the request's decoded URL path; when rules are set, a
// path that is not in clean form (an empty, "." or ".." segment, as in
// "/v1/models/../files" or "//v1") is refused, so no rule can be side-stepped
// by a path the upstream would resolve differently.
func PathsAllow(rules []PathRule, method, p string) bool {
	if len(rules) == 0 {
		return true
	}
	if !isCleanPath(p) {
		return false
	}
	for _, r := range rules {
		if r.Allows(method, p) {
			return true
		}
	}
	return false
}

// isCleanPath reports whether p is absolute and has no empty, "." or ".."
// segments. A single trailing slash is allowed.
func isCleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return false
		}
	}
	return true
}

// isToken reports whether s is a plausible HTTP method: upper-case letters,
// digits, "-" and "_".
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Covers reports whether every request o permits, r permits too. It is
// conservative: it answers true when r is the same rule, when r's method
// covers o's and r is a literal prefix (a trailing *) that o's literal
// start extends, or when o names one literal path that r allows.
func (r PathRule) Covers(o PathRule) bool {
	if r.method != "*" && r.method != o.method {
		return false
	}
	if r.pattern == o.pattern || r.pattern == "*" {
		return true
	}
	if r.prefix && !r.glob && !o.glob && strings.HasPrefix(o.stem, r.stem) {
		return true
	}
	if !o.prefix && !o.glob && o.method != "*" {
		return r.Allows(o.method, o.stem)
	}
	return false
}

// PathRulesCover reports whether rules permit everything rule o permits:
// no rules permit every request; otherwise one rule must cover o.
func PathRulesCover(rules []PathRule, o PathRule) bool {
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		if r.Covers(o) {
			return true
		}
	}
	return false
}
