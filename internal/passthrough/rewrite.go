package passthrough

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// PathError reports a client path that Rewrite refuses because it could
// reach outside the service's base path or be read differently by the
// upstream than by keygate. The client should send a plain path.
type PathError struct {
	Path   string // the refused path, shortened if long
	Reason string // what is wrong with it
}

// Error describes the refused path.
func (e *PathError) Error() string {
	return fmt.Sprintf("passthrough: path %q refused: %s; send a plain path without dot segments, encoded slashes or backslashes", e.Path, e.Reason)
}

// CredentialError is the type of ErrNoCredential and ErrBadCredential.
// Its message never holds the credential.
type CredentialError string

// Error returns the message.
func (e CredentialError) Error() string { return string(e) }

// ErrNoCredential is returned by Rewrite when the service has no credential
// to inject. Store the upstream credential for the service first.
const ErrNoCredential = CredentialError("passthrough: the service has no upstream credential; store one before routing requests to it")

// ErrBadCredential is returned by Rewrite when the stored credential holds
// bytes that cannot be sent in a header (control characters). Store it
// again without the stray characters.
const ErrBadCredential = CredentialError("passthrough: the stored upstream credential holds control characters and cannot be sent in a header; store it again")

// maxDecodeDepth bounds how many layers of percent-encoding CheckPath peels
// looking for a hidden dot segment, slash or control byte.
const maxDecodeDepth = 4

// maxShownPath bounds how much of a refused path an error repeats.
const maxShownPath = 200

// CheckPath reports whether rest, the escaped part of a request path after
// /proxy/{name}, is safe to append to a base path. It must be empty or start
// with '/', and it is refused if, at any layer of percent-decoding, it holds
// a dot segment ("." or "..", also as "%2e" or followed by ";params"), an
// encoded slash, a backslash, an empty segment ("//"), a control byte, or
// '?' or '#'. Errors are *PathError. Rewrite calls it; the gateway may call
// it earlier to answer 400 before proxying.
func CheckPath(rest string) error {
	if rest == "" {
		return nil
	}
	if rest[0] != '/' {
		return pathErr(rest, "it does not start with '/'")
	}
	layer := rest
	for depth := 0; ; depth++ {
		reason, next, more := checkLayer(layer, depth)
		if reason != "" {
			return pathErr(rest, reason)
		}
		if !more {
			return nil
		}
		if depth+1 >= maxDecodeDepth {
			return pathErr(rest, "it is percent-encoded too many times over")
		}
		layer = next
	}
}

// checkLayer checks one layer of encoding. It returns a reason when the
// layer is refused; otherwise the decoded layer and whether that still
// holds well-formed percent escapes worth checking again. Layer 0 is the
// path as the client sent it, where malformed escapes are refused; deeper
// layers are what a server that decodes more than once would see, where a
// stray '%' is just a character.
func checkLayer(s string, depth int) (reason, decoded string, more bool) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if r := badByte(c, depth > 0); r != "" {
			return r, "", false
		}
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			if depth == 0 {
				return "it has malformed percent-encoding", "", false
			}
			b.WriteByte(c)
			continue
		}
		d := unhex(s[i+1])<<4 | unhex(s[i+2])
		switch {
		case d == '/':
			return "it has an encoded slash (%2F)", "", false
		case d == '\\':
			return "it has an encoded backslash (%5C)", "", false
		case d < 0x20 || d == 0x7f:
			return "it has an encoded control byte", "", false
		case d == '%':
			more = true
		}
		b.WriteByte(d)
		i += 2
	}
	decoded = b.String()
	// Segments are split on the slashes of this layer; none was encoded.
	for seg := range strings.SplitSeq(decoded[1:], "/") {
		name, _, _ := strings.Cut(seg, ";")
		if name == "." || name == ".." {
			return "it has a dot segment", "", false
		}
	}
	if strings.Contains(decoded, "//") {
		return "it has an empty segment (//)", "", false
	}
	return "", decoded, more
}

// badByte returns why c may not appear in a path, or "" if it may. '?' and
// '#' are refused only as the client sent them (decoded, they are data).
func badByte(c byte, decodedLayer bool) string {
	switch {
	case c < 0x20 || c == 0x7f:
		return "it has a control byte"
	case c == '\\':
		return "it has a backslash"
	case (c == '?' || c == '#') && !decodedLayer:
		return "it has an unencoded '?' or '#'"
	}
	return ""
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func pathErr(path, reason string) *PathError {
	if len(path) > maxShownPath {
		path = path[:maxShownPath] + "..."
	}
	return &PathError{Path: path, Reason: reason}
}

// credentialHeaders are the headers that can carry a client's credential or
// ambient authority; Rewrite removes them in any spelling before injecting.
func credentialHeaders() [7]string {
	return [...]string{"Authorization", "Proxy-Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "X-Auth-Token", "Cookie"}
}

// isCredentialHeader reports whether name is one of credentialHeaders or the
// service's own credential header.
func isCredentialHeader(name string, a Auth) bool {
	if a.Kind == AuthHeader && strings.EqualFold(name, a.Name) {
		return true
	}
	for _, c := range credentialHeaders() {
		if strings.EqualFold(name, c) {
			return true
		}
	}
	return false
}

// Rewrite turns out, a copy of the client's request, into the upstream
// request for s. rest is the escaped path after /proxy/{name} (see
// ServiceFromPath) and rawQuery the client's raw query. Rewrite
//
//   - refuses rest with a *PathError unless CheckPath accepts it, and sets
//     out.URL to the base URL with rest appended to its path, keeping the
//     client's percent-encoding, and out.Host to the base URL's host;
//   - removes every credential header the client sent (Authorization,
//     Proxy-Authorization, X-Api-Key, Api-Key, X-Goog-Api-Key,
//     X-Auth-Token, Cookie and the service's own header) and, for query
//     auth, every query parameter with the credential's name;
//   - sets the service's fixed Headers, then the credential.
//
// On error out may be partly changed and must not be sent. Attach s to the
// request's context with WithService so the transport can check it.
func (s *Service) Rewrite(out *http.Request, rest string, rawQuery string, key secret.String) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if key.IsZero() {
		return ErrNoCredential
	}
	if s.Auth.Kind != AuthQuery && !validHeaderValue(key.Reveal()) {
		return ErrBadCredential
	}
	if err := CheckPath(rest); err != nil {
		return err
	}

	escaped := s.BaseURL.EscapedPath() + rest
	if escaped == "" {
		escaped = "/"
	}
	p, err := url.PathUnescape(escaped)
	if err != nil { // CheckPath has refused malformed escapes already
		return pathErr(rest, "it has malformed percent-encoding")
	}
	u := &url.URL{Scheme: s.BaseURL.Scheme, Host: s.BaseURL.Host, Path: p}
	if u.EscapedPath() != escaped {
		u.RawPath = escaped
	}
	u.RawQuery = rawQuery
	if s.Auth.Kind == AuthQuery {
		u.RawQuery = withQueryCredential(rawQuery, s.Auth.Name, key)
	}
	out.URL = u
	out.Host = s.BaseURL.Host

	if out.Header == nil {
		out.Header = make(http.Header)
	}
	for name := range out.Header {
		if isCredentialHeader(name, s.Auth) {
			delete(out.Header, name)
		}
	}
	for k, v := range s.Headers {
		setHeader(out.Header, k, v)
	}
	switch s.Auth.Kind {
	case AuthHeader:
		setHeader(out.Header, s.Auth.Name, s.Auth.Prefix+key.Reveal())
	case AuthBearer:
		setHeader(out.Header, "Authorization", "Bearer "+key.Reveal())
	case AuthBasic:
		user, pass := s.Auth.User, key.Reveal()
		if user == "" {
			user, pass = pass, ""
		}
		setHeader(out.Header, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	return nil
}

// setHeader replaces name, in any spelling, with the single value v.
func setHeader(h http.Header, name, v string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
	h[http.CanonicalHeaderKey(name)] = []string{v}
}

// withQueryCredential removes from rawQuery every parameter called name and
// appends name=key. Names are compared after decoding and case-sensitively,
// as servers compare them; both '&' and ';' count as separators, so a server
// that splits on either never sees the client's own value. Everything else
// keeps the client's order and encoding.
func withQueryCredential(rawQuery, name string, key secret.String) string {
	var kept []string
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if !strings.Contains(pair, ";") {
			if pair != "" && !paramIs(pair, name) {
				kept = append(kept, pair)
			}
			continue
		}
		var sub []string
		for part := range strings.SplitSeq(pair, ";") {
			if !paramIs(part, name) {
				sub = append(sub, part)
			}
		}
		if len(sub) > 0 {
			kept = append(kept, strings.Join(sub, ";"))
		}
	}
	kept = append(kept, url.QueryEscape(name)+"="+url.QueryEscape(key.Reveal()))
	return strings.Join(kept, "&")
}

// paramIs reports whether the raw query parameter pair ("k=v" or "k") is
// called name, however the client encoded the name.
func paramIs(pair, name string) bool {
	k, _, _ := strings.Cut(pair, "=")
	if k == name {
		return true
	}
	dec, err := url.QueryUnescape(k)
	return err == nil && dec == name
}
