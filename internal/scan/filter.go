package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
)

// entropy returns the Shannon entropy of s in bits a byte.
func entropy(s []byte) float64 {
	if len(s) == 0 {
		return 0
	}
	var n [256]int
	for _, c := range s {
		n[c]++
	}
	h, l := 0.0, float64(len(s))
	for _, k := range n {
		if k > 0 {
			p := float64(k) / l
			h -= p * math.Log2(p)
		}
	}
	return h
}

// placeholderWords mark example values in documentation and templates,
// wherever they occur (ignoring case).
var placeholderWords = [][]byte{
	[]byte("example"), []byte("placeholder"), []byte("redacted"), []byte("changeme"), []byte("change_me"),
	[]byte("replace_"), []byte("replace-"), []byte("replaceme"), []byte("secret_here"), []byte("key_here"), []byte("token_here"),
	[]byte("notreal"), []byte("not_real"), []byte("not-real"), []byte("not-a-real"), []byte("insert_"), []byte("insert-"),
	[]byte("${"), []byte("{{"), []byte("}}"), []byte("%("), []byte("<"), []byte(">"), []byte("..."), []byte("…"), []byte("****"),
}

// placeholderShort are shorter words that mark placeholders only as words
// of their own, next to a separator or an end ("your-key-here",
// "YOUR_TOKEN", "sk-fake-1"): inside a random string they occur by chance.
var placeholderShort = [][]byte{
	[]byte("xxxx"), []byte("your"), []byte("fake"), []byte("todo"), []byte("fixme"), []byte("dummy"),
	[]byte("sample"),
}

// knownExamples are SHA-256 digests of credentials published in
// documentation (the jwt.io sample token, Stripe's documented test key),
// kept as digests so this file holds nothing shaped like a credential.
var knownExamples = map[string]bool{
	"7f75367e7881255134e1375e723d1dea8ad5f6a4fdb79d938df1f1754a830606": true, // the jwt.io sample token
	"2cafc0970149a84f3b9e62eaf169f36f59907a3b3e31f7b82e68c69cd27f7326": true, // Stripe's documented test key
	"f2d6ca16515033e5dce14eba840b979d27b5cbae24bb3e5bf484339667f86397": true, // Stripe's older documented test key
}

// placeholder reports whether secret looks like an example, template or
// redaction rather than a credential: a placeholder word, a run of six or
// more equal characters, or a six-step ascending run (abcdef, 123456).
func placeholder(secret []byte) bool {
	low := bytes.ToLower(secret)
	for _, w := range placeholderWords {
		if bytes.Contains(low, w) {
			return true
		}
	}
	for _, w := range placeholderShort {
		for i := 0; ; {
			j := bytes.Index(low[i:], w)
			if j < 0 {
				break
			}
			j += i
			if (j == 0 || !isAlnum(low[j-1])) || (j+len(w) == len(low) || !isAlnum(low[j+len(w)])) {
				return true
			}
			i = j + 1
		}
	}
	run, asc := 1, 1
	for i := 1; i < len(secret); i++ {
		if secret[i] == secret[i-1] {
			run++
		} else {
			run = 1
		}
		if secret[i] == secret[i-1]+1 && isAlnum(secret[i]) {
			asc++
		} else {
			asc = 1
		}
		if run >= 6 || asc >= 6 {
			return true
		}
	}
	return false
}

// knownExample reports whether secret is a credential published in
// documentation.
func knownExample(secret []byte) bool {
	sum := sha256.Sum256(secret)
	return knownExamples[hex.EncodeToString(sum[:])]
}
