package scrub

import (
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// urlMask replaces a needle inside a URL-bearing header; unlike
// secret.Redacted it holds no bracket, so the URL stays valid.
const urlMask = "REDACTED"

// maxDecodeDepth bounds how many layers of percent-encoding Header peels
// looking for a needle hidden under them.
const maxDecodeDepth = 4

// Header removes the Set's needles from every header in h, in place:
//   - a header whose name holds a needle, in any letter case (names are
//     canonicalized, which changes case), is deleted;
//   - in each value every needle is replaced by "[REDACTED]", or by
//     "REDACTED" in the URL-bearing Location, Content-Location, Link and
//     Refresh, so the URL stays well-formed; the needles include the query
//     and path encodings of each form, so a credential inside a query
//     string is found as the URL spells it;
//   - a value that still holds a needle once percent-decoded (up to four
//     layers, '+' read as a space or as itself) is dropped, and a header
//     left with no value is deleted.
//
// It reports whether it changed h. Apply it to trailers too if they are
// forwarded.
func (s *Set) Header(h http.Header) bool {
	if s.Empty() || h == nil {
		return false
	}
	changed := false
	for name, vals := range h {
		if s.nameHolds(name) {
			delete(h, name)
			changed = true
			continue
		}
		with := secret.Redacted
		switch name { // net/http hands response headers over canonicalized
		case "Location", "Content-Location", "Link", "Refresh":
			with = urlMask
		}
		// Values are rewritten in place; only a dropped value rebuilds the
		// list (most headers hold no needle and are left untouched).
		kept, dropped := vals, false
		for i, v := range vals {
			v2, replaced := s.replaceString(v, with)
			if s.hiddenIn(v2) {
				if !dropped {
					kept, dropped = append([]string(nil), vals[:i]...), true
				}
				changed = true
				continue
			}
			if replaced {
				vals[i], changed = v2, true
			}
			if dropped {
				kept = append(kept, v2)
			}
		}
		switch {
		case len(kept) == 0:
			delete(h, name)
		case dropped:
			h[name] = kept
		}
	}
	return changed
}

// nameHolds reports whether a header name holds a needle in any case.
func (s *Set) nameHolds(name string) bool {
	if len(name) < MinNeedle || len(name) < s.minLen {
		return false
	}
	for _, n := range s.needles {
		for i := 0; i+len(n) <= len(name); i++ {
			if strings.EqualFold(name[i:i+len(n)], string(n)) {
				return true
			}
		}
	}
	return false
}

// hiddenIn reports whether v, once percent-decoded one to maxDecodeDepth
// times (with '+' read as itself and as a space), holds a needle.
func (s *Set) hiddenIn(v string) bool {
	for range maxDecodeDepth {
		if !strings.ContainsAny(v, "%+") {
			return false
		}
		plus := lenientUnescape(strings.ReplaceAll(v, "+", " "))
		d := lenientUnescape(v)
		if s.Contains([]byte(plus)) || s.Contains([]byte(d)) {
			return true
		}
		if d == v {
			return false
		}
		v = d
	}
	return false
}

// lenientUnescape decodes the well-formed percent escapes of v and leaves
// a stray '%' alone.
func lenientUnescape(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
			i += 2
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
