package gateway

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/apikey"
)

// A client's keygate credential must never reach an upstream. The dialect
// strips the headers it is read from (Authorization, x-api-key...), but a
// client may also send it, or another keygate key, in a query parameter
// (?api_key=) or a header of its own (X-My-Key:). stripCredentialCopies
// removes every header and query parameter that holds the presented
// credential or anything shaped like a keygate key.

// stripCredentialCopies removes from out every header value and query
// parameter holding cred or a well-formed keygate key.
func stripCredentialCopies(out *http.Request, cred string) {
	for name, vals := range out.Header {
		for _, v := range vals {
			if holdsCredential(v, cred) {
				delete(out.Header, name)
				break
			}
		}
	}
	q := out.URL.RawQuery
	if q == "" || !(strings.Contains(q, "kg_") || (cred != "" && strings.Contains(q, cred)) || strings.Contains(q, "%")) {
		return
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		// A query keygate cannot read could hide a credential: send none.
		out.URL.RawQuery = ""
		return
	}
	changed := false
	for name, vs := range vals {
		for _, v := range vs {
			if holdsCredential(v, cred) || holdsCredential(name, cred) {
				delete(vals, name)
				changed = true
				break
			}
		}
	}
	if changed {
		out.URL.RawQuery = vals.Encode()
	}
}

// holdsCredential reports whether s holds cred, or a keygate key.
func holdsCredential(s, cred string) bool {
	if cred != "" && len(s) >= len(cred) && strings.Contains(s, cred) {
		return true
	}
	return apikey.Contains(s)
}
