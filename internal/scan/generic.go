package scan

import (
	"bytes"
	"math"
	"strings"
)

// genericKeywords are the words in a variable or key name that announce a
// credential.
var genericKeywords = []string{
	"password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "api_key", "api-key",
	"access_key", "accesskey", "auth_key", "authkey", "private_key", "privatekey", "credential",
	"_key", "-key", ".key",
}

// genericDenySuffixes end names that hold something about a credential
// (its length, its file, its name) rather than the credential.
var genericDenySuffixes = []string{
	"id", "ids", "name", "names", "type", "types", "len", "length", "path", "file", "filename", "files", "url", "uri",
	"endpoint", "header", "field", "prefix", "suffix", "count", "ttl", "expiry", "expires", "expiration", "format",
	"version", "env", "var", "ref", "min", "max", "policy", "size", "mode", "enabled", "required", "pattern",
	"regex", "label", "hint", "placeholder", "description", "store", "manager", "provider", "service", "source",
	"class", "dir", "location", "algorithm", "alg", "kind", "arn", "key_id", "keyid", "hash", "digest",
	"param", "params", "index", "column", "table", "mount", "storage", "method", "text", "message", "error",
	"start", "end", "offset", "pos", "signature",
}

// generic is the fallback rule: a value with enough entropy, assigned in
// code or configuration to a name holding one of genericKeywords.
func generic() Rule {
	return Rule{
		ID: "generic-secret", Family: "generic", Description: "High-entropy value assigned to a credential name",
		Anchors: genericKeywords, MaxLen: 300, Rank: RankGeneric, Free: true,
		Find: findAssignment,
	}
}

func isIdent(c byte) bool { return isAlnum(c) || c == '_' || c == '-' || c == '.' }

// findAssignment reads `NAME <op> VALUE` around a keyword at offset at,
// where op is =, :=, :, =>, and VALUE is quoted or runs to a delimiter.
func findAssignment(data []byte, at int) (Span, bool) {
	l := at
	for l > 0 && isIdent(data[l-1]) && at-l < 64 {
		l--
	}
	r := at
	for r < len(data) && isIdent(data[r]) && r-l < 80 {
		r++
	}
	name := data[l:r]
	if len(name) > 64 || (r < len(data) && isIdent(data[r])) || !namesCredential(name) {
		return Span{}, false
	}
	low := bytes.ToLower(bytes.TrimRight(name, "._-"))
	for _, s := range genericDenySuffixes {
		if bytes.HasSuffix(low, []byte(s)) && len(low) > len(s) {
			c := low[len(low)-len(s)-1]
			// "api_key_id", "tokenType", "passwordLength": a word of its own.
			if c == '_' || c == '-' || c == '.' || isCamelBreak(name, len(low)-len(s)) {
				return Span{}, false
			}
		}
	}
	i := r
	if i < len(data) && (data[i] == '"' || data[i] == '\'' || data[i] == '`') {
		i++
	}
	i = skipBlank(data, i, 4)
	switch {
	case hasAt(data, i, ":="), hasAt(data, i, "=>"):
		i += 2
	case hasAt(data, i, "=="), hasAt(data, i, "=~"):
		return Span{}, false
	case hasAt(data, i, "="), hasAt(data, i, ":"):
		i++
	default:
		return Span{}, false
	}
	i = skipBlank(data, i, 8)
	if i >= len(data) {
		return Span{}, false
	}
	var vs, ve int
	quoted := false
	switch q := data[i]; q {
	case '"', '\'', '`':
		vs = i + 1
		ve = vs
		quoted = true
		for ve < len(data) && data[ve] != q && data[ve] != '\n' && ve-vs <= 200 {
			if data[ve] == '\\' {
				return Span{}, false // escapes: a template or a regular expression, not a value
			}
			ve++
		}
		if ve >= len(data) || data[ve] != q {
			return Span{}, false
		}
	default:
		vs = i
		ve = vs
		for ve < len(data) && ve-vs <= 200 && !bytes.ContainsRune([]byte(" \t\r\n,;)}]&\"'`"), rune(data[ve])) {
			ve++
		}
	}
	v := data[vs:ve]
	if !plausibleSecret(v, quoted) {
		return Span{}, false
	}
	end := ve
	if end < len(data) && (data[end] == '"' || data[end] == '\'' || data[end] == '`') {
		end++
	}
	return Span{Start: l, End: end, SecretStart: vs, SecretEnd: ve, Name: string(name)}, true
}

func isCamelBreak(name []byte, i int) bool {
	return i > 0 && i < len(name) && 'A' <= name[i] && name[i] <= 'Z' && 'a' <= name[i-1] && name[i-1] <= 'z'
}

func hasAt(data []byte, i int, s string) bool {
	return i+len(s) <= len(data) && string(data[i:i+len(s)]) == s
}

func skipBlank(data []byte, i, max int) int {
	for n := 0; i < len(data) && (data[i] == ' ' || data[i] == '\t') && n < max; n++ {
		i++
	}
	return i
}

// plausibleSecret decides whether an assigned value looks like a
// credential rather than a word, a number, a reference or a path.
func plausibleSecret(v []byte, quoted bool) bool {
	if len(v) < 8 || len(v) > 200 {
		return false
	}
	switch v[0] {
	case '$', '{', '<', '/', '.', '~':
		return false
	case '%', '@', '&', '*', '!', '#', '[', '|', '>':
		if !quoted {
			return false // YAML anchors, aliases, tags and block scalars
		}
	}
	if bytes.Contains(v, []byte("://")) || bytes.ContainsAny(v, "()[]{} \t") || codeReference(v) || wordAndNumber(v) || wordy(v) {
		return false
	}
	if quoted && (v[0] == '+' || v[len(v)-1] == '+') {
		return false // the inside of "..." + x + "...": code, not a value
	}
	var lower, upper, digit, other bool
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		case '0' <= c && c <= '9':
			digit = true
		default:
			other = true
		}
	}
	if !lower && !upper {
		return false // a number, a date, a version
	}
	h := entropy(v)
	if !digit && !other {
		// Letters only: an identifier or a word, unless long and random.
		return len(v) >= 20 && h >= 4 && lower && upper
	}
	if !digit && !(lower && upper) {
		return false // snake_case, kebab-case or SCREAMING_CASE words
	}
	return h >= math.Min(3.2, 0.8*math.Log2(float64(len(v))))
}

// codeReference reports a dotted identifier such as process.env.API_KEY or
// settings.secrets.token: code reading a credential, not one.
func codeReference(v []byte) bool {
	parts := bytes.Split(v, []byte{'.'})
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if len(p) == 0 || ('0' <= p[0] && p[0] <= '9') {
			return false
		}
		for _, c := range p {
			if !isAlnum(c) && c != '_' {
				return false
			}
		}
	}
	return true
}

// wordAndNumber reports a word joined to a short number, such as
// session-72, release_2024 or 12345-build: names and versions.
func wordAndNumber(v []byte) bool {
	i := 0
	for i < len(v) && (('a' <= v[i] && v[i] <= 'z') || ('A' <= v[i] && v[i] <= 'Z')) {
		i++
	}
	letters := i
	if i < len(v) && (v[i] == '-' || v[i] == '_' || v[i] == '.') {
		i++
	}
	d := i
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	return letters > 0 && i == len(v) && i-d > 0 && i-d <= 6
}

// namesCredential reports whether name holds one of genericKeywords as a
// word of its own: followed by its end, a separator or an upper-case
// letter (apiKeyId), not by more lower-case letters (keygate, tokens,
// secretary).
func namesCredential(name []byte) bool {
	low := bytes.ToLower(name)
	for _, k := range genericKeywords {
		for i := 0; ; {
			j := bytes.Index(low[i:], []byte(k))
			if j < 0 {
				break
			}
			e := i + j + len(k)
			if e == len(name) || !('a' <= name[e] && name[e] <= 'z') {
				return true
			}
			i += j + 1
		}
	}
	return false
}

// wordy reports a value made of words and numbers joined by separators,
// such as test-upstream-key-123 or payments/stripe@3: a name, a path or a
// reference, not a random credential. A word is all lower case, all upper
// case, capitalised, or all digits.
func wordy(v []byte) bool {
	segs := bytes.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune("-_./@:", r) })
	if len(segs) < 2 {
		return false
	}
	for _, s := range segs {
		if !isWord(s) {
			return false
		}
	}
	return true
}

func isWord(s []byte) bool {
	var lower, upper, digit int
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z':
			lower++
		case 'A' <= c && c <= 'Z':
			upper++
		case '0' <= c && c <= '9':
			digit++
		default:
			return false
		}
	}
	switch {
	case digit == len(s), lower == len(s), upper == len(s):
		return true
	case digit == 0 && upper == 1 && 'A' <= s[0] && s[0] <= 'Z':
		return true // Capitalised
	}
	return false
}
