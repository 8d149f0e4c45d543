package passthrough

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// scrubbedValue replaces the credential in URLs ScrubLocation cannot
// rebuild; it is safe in any part of a URL.
const scrubbedValue = "REDACTED"

// ScrubLocation removes the injected credential from the URL-bearing
// response headers Location, Content-Location and Link. Upstreams that take
// the credential as a query parameter often repeat the request's query in a
// redirect target or pagination link, which would hand the credential to
// the client. In a Location or Content-Location URL, every query parameter
// whose value is the credential, or, for query auth, whose name is the
// credential's parameter, is removed; anywhere else the credential, raw or
// percent-encoded, is replaced by "REDACTED"; a value that still decodes to
// something holding the credential is dropped. It handles every auth kind,
// not only query auth. Other headers and bodies are not looked at: scrub
// them as the gateway scrubs provider responses. Matching is by value, so a
// credential only a few characters long would make unrelated values look
// like they hold it, and those would be dropped.
func ScrubLocation(h http.Header, s *Service, key secret.String) {
	if h == nil || key.IsZero() {
		return
	}
	k := key.Reveal()
	param := ""
	if s != nil && s.Auth.Kind == AuthQuery {
		param = s.Auth.Name
	}
	for name, vals := range h {
		canon := http.CanonicalHeaderKey(name)
		if canon != "Location" && canon != "Content-Location" && canon != "Link" {
			continue
		}
		kept := make([]string, 0, len(vals))
		for _, v := range vals {
			if canon != "Link" {
				v = withoutCredentialParams(v, k, param)
			}
			if mentions(v, k) {
				v = replaceForms(v, k)
			}
			if !mentions(v, k) {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			delete(h, name)
		} else {
			h[name] = kept
		}
	}
}

// mentions reports whether v holds key raw or under up to maxDecodeDepth
// layers of percent-encoding, reading '+' as a space or as itself.
func mentions(v, key string) bool {
	for range maxDecodeDepth + 1 {
		if strings.Contains(v, key) || strings.Contains(lenientUnescape(strings.ReplaceAll(v, "+", " ")), key) {
			return true
		}
		d := lenientUnescape(v)
		if d == v {
			return false
		}
		v = d
	}
	return false
}

// lenientUnescape decodes the well-formed percent escapes of v and leaves
// stray '%' alone.
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

// withoutCredentialParams drops the query parameters of the URL v whose
// decoded value is key or whose name is param (when param is not empty),
// keeping the others as they were encoded. A value that is not a URL, or
// has no query, comes back unchanged.
func withoutCredentialParams(v, key, param string) string {
	u, err := url.Parse(v)
	if err != nil || u.RawQuery == "" {
		return v
	}
	var kept []string
	for pair := range strings.SplitSeq(u.RawQuery, "&") {
		_, val, _ := strings.Cut(pair, "=")
		if (param != "" && paramIs(pair, param)) || mentions(val, key) {
			continue
		}
		kept = append(kept, pair)
	}
	if len(kept) == strings.Count(u.RawQuery, "&")+1 {
		return v // nothing dropped: keep the upstream's spelling
	}
	u.RawQuery = strings.Join(kept, "&")
	return u.String()
}

// replaceForms replaces key, raw and in its query and path encodings, by
// scrubbedValue.
func replaceForms(v, key string) string {
	for _, form := range []string{key, url.QueryEscape(key), url.PathEscape(key)} {
		v = strings.ReplaceAll(v, form, scrubbedValue)
	}
	return v
}
