// Package scan finds credentials written where they should not be: in
// source files, configuration, notebooks, prompts and git history.
//
// A Rule describes one credential format: literal anchors that start or mark
// it (such as "ghp_" or "AKIA"), a regular expression checked only where an
// anchor occurs, and optional checks a match must pass (a checksum, a
// minimum entropy). A Matcher runs every rule over a buffer in one linear
// pass: an index of byte pairs finds the anchors (pairs.go), and each
// rule's expression runs on a small window at each one. Matches that look like
// placeholders or documented examples are dropped.
//
// Scanner walks files, standard input and git history with a Matcher, in
// parallel, each file read once; allow-lists, inline `keygate:allow`
// comments and baselines take findings out; the formats in report.go and
// sarif.go print what is left.
package scan

import (
	"fmt"
	"regexp"
	"strings"
)

// Rank orders rules whose matches overlap: the lower rank is reported.
const (
	RankToken   = 0 // a distinctive prefix or a checksum: near-certain
	RankContext = 1 // a known format recognised by a nearby keyword
	RankShape   = 2 // a structure such as a PEM block, a JWT or a URL with a password
	RankGeneric = 3 // a high-entropy value assigned to a name like password or api_key
)

// Rule is one credential format.
type Rule struct {
	// ID names the rule in findings and output, such as "github-pat".
	ID string
	// Family groups rules of one issuer ("github", "openai", "aws"), for
	// reports and the per-family figures of the corpus test.
	Family string
	// Description says what the credential is, in a few words.
	Description string
	// Provider is the keygate provider preset this credential is a key
	// for ("openai", "anthropic", ...), or empty. `keygate scan --import`
	// turns such a key into a provider instead of a secret.
	Provider string
	// Anchors are literals (matched ignoring ASCII case) at least one of
	// which occurs in every match. Pattern is tried only where one occurs.
	Anchors []string
	// Pattern is the regular expression (RE2 syntax) a match must satisfy.
	// Unless Back is set it must match starting at the anchor. A capture
	// group named "s" holds the secret; without one the whole match is.
	Pattern string
	// Back is how many bytes before its anchor a match may start, for
	// formats whose anchor sits inside them (":AA" of a Telegram token).
	Back int
	// BackClass is a character class (RE2, such as `[0-9a-f]`) holding
	// every byte the part of a match before its anchor can have. A stream
	// holds back only a run of such bytes while an anchor may still come;
	// without it, a stream holds Back bytes of anything.
	BackClass string
	// MaxLen bounds a match's length, in bytes, from its anchor.
	MaxLen int
	// Check, when set, must accept the secret (a checksum, a decodable
	// structure). A match it refuses is not reported.
	Check func(secret []byte) bool
	// MinEntropy is the least Shannon entropy, in bits a character, the
	// secret must have.
	MinEntropy float64
	// Free lifts the rule that a secret is not glued to letters or digits
	// on either side.
	Free bool
	// Rank orders overlapping matches: RankToken first.
	Rank int
	// Structured skips the placeholder heuristics (placeholder words,
	// repeated runs), which misfire on long encoded bodies such as a PEM
	// block's; documented examples are still left out.
	Structured bool
	// Keygate marks keygate's own credentials (kg_ keys and refresh
	// tokens), which `--revoke-found` can revoke.
	Keygate bool
	// Find, when set, replaces Pattern: it inspects data around the anchor
	// at offset at and returns the match and secret spans.
	Find func(data []byte, at int) (m Span, ok bool)
}

// Span locates a match and the secret inside it, as byte offsets.
type Span struct {
	Start, End             int // the whole match
	SecretStart, SecretEnd int // the secret
	// Name is the variable or key the secret is assigned to, when the
	// rule saw one (DB_PASSWORD in DB_PASSWORD=...); `--import` names
	// secrets after it.
	Name string
}

// compiled is a Rule ready to run.
type compiled struct {
	Rule
	re       *regexp.Regexp
	anchored bool
	group    int // capture group of the secret, 0 for the whole match
	nameGrp  int // capture group named "n" (the variable name), or -1
	// exact: the anchor occurs in matches with the case it is written
	// in, so a hit in another case is dropped before the pattern runs.
	// leftBound: the secret starts at the anchor, so a hit glued to a
	// letter or digit on its left is dropped too.
	exact, leftBound bool
	// back: the bytes BackClass allows (all of them when it is empty).
	back *[256]bool
	// prefix tells a stream when a pending match can no longer be one.
	prefix *undecided
}

func compileRule(r Rule) (*compiled, error) {
	if r.ID == "" || len(r.Anchors) == 0 {
		return nil, fmt.Errorf("scan: rule %q needs an ID and at least one anchor", r.ID)
	}
	if r.MaxLen <= 0 {
		return nil, fmt.Errorf("scan: rule %s needs MaxLen", r.ID)
	}
	c := &compiled{Rule: r, nameGrp: -1}
	if r.Back > 0 {
		set, err := byteClass(r.BackClass)
		if err != nil {
			return nil, fmt.Errorf("scan: rule %s: BackClass: %w", r.ID, err)
		}
		c.back = set
	}
	if r.Find != nil {
		return c, nil
	}
	src := r.Pattern
	c.anchored = r.Back == 0
	if c.anchored {
		src = `\A(?:` + src + `)`
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("scan: rule %s: %w", r.ID, err)
	}
	c.re = re
	if c.anchored {
		if c.prefix, err = newUndecided(r.Pattern); err != nil {
			return nil, fmt.Errorf("scan: rule %s: %w", r.ID, err)
		}
	}
	if i := re.SubexpIndex("s"); i > 0 {
		c.group = i
	}
	c.exact = !strings.Contains(r.Pattern, "(?i")
	c.leftBound = c.exact && c.group == 0 && r.Back == 0 && !r.Free
	c.nameGrp = re.SubexpIndex("n")
	return c, nil
}

// match runs the rule at an anchor starting at offset at.
func (c *compiled) match(data []byte, at int) (Span, bool) {
	if c.Find != nil {
		return c.Find(data, at)
	}
	start := max(0, at-c.Back)
	end := min(len(data), at+c.MaxLen)
	win := data[start:end]
	var loc []int
	if c.anchored {
		loc = c.re.FindSubmatchIndex(win)
	} else {
		rel := at - start
		for _, l := range c.re.FindAllSubmatchIndex(win, -1) {
			if l[0] <= rel && rel < l[1] {
				loc = l
				break
			}
		}
	}
	if loc == nil || loc[2*c.group] < 0 {
		return Span{}, false
	}
	sp := Span{Start: start + loc[0], End: start + loc[1], SecretStart: start + loc[2*c.group], SecretEnd: start + loc[2*c.group+1]}
	if c.nameGrp > 0 && loc[2*c.nameGrp] >= 0 {
		sp.Name = string(win[loc[2*c.nameGrp]:loc[2*c.nameGrp+1]])
	}
	return sp, true
}

// byteClass returns the bytes a character class matches; every byte when
// class is empty.
func byteClass(class string) (*[256]bool, error) {
	var set [256]bool
	if class == "" {
		for i := range set {
			set[i] = true
		}
		return &set, nil
	}
	re, err := regexp.Compile(`\A` + class + `\z`)
	if err != nil {
		return nil, err
	}
	for i := range set {
		set[i] = re.Match([]byte{byte(i)})
	}
	return &set, nil
}

func isAlnum(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// bounded reports whether the secret at [s, e) is not glued to letters or
// digits.
func bounded(data []byte, s, e int) bool {
	return (s == 0 || !isAlnum(data[s-1])) && (e >= len(data) || !isAlnum(data[e]))
}

// assign builds the pattern of a context rule: a keyword in a variable or
// key name, an assignment, and a value matching value. The name is
// captured as "n", the value as "s".
func assign(keyword, value string) string {
	return `(?P<n>(?i:` + keyword + `)[A-Za-z0-9_.-]{0,40})["'\x60]?\s{0,4}(?:=|:=|:|=>|<-|\bis\b)\s{0,4}[\[({]?\s{0,4}(?:["'\x60]|\b)(?P<s>` + value + `)`
}

// alt joins literals into an alternation of quoted literals.
func alt(lits ...string) string {
	q := make([]string, len(lits))
	for i, l := range lits {
		q[i] = regexp.QuoteMeta(l)
	}
	return `(?:` + strings.Join(q, "|") + `)`
}
