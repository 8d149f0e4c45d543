// Package provider holds the two API dialects keygate speaks, OpenAI and
// Anthropic: how a client presents its keygate key, how the real upstream key
// is injected, how upstream URLs are formed, and how errors and model lists
// look to each dialect's official SDKs.
package provider

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// Dialect is one client-facing API dialect. Implementations are stateless
// values, safe for concurrent use.
type Dialect interface {
	// Name is "openai", "anthropic" or "gemini", as stored on a provider.
	Name() string
	// UpstreamPath maps a client path (/v1/...) onto an upstream base path as
	// the dialect's own SDK takes it (OpenAI bases end in the version).
	UpstreamPath(basePath, clientPath string) string
	// ClientKey returns the credential the client presented.
	ClientKey(h http.Header) (string, bool)
	// StripCredentials removes every client credential from outbound headers.
	StripCredentials(h http.Header)
	// InjectAuth sets the upstream credential (and required version headers).
	InjectAuth(h http.Header, key secret.String)
	// WriteError answers with an error body the dialect's SDKs parse.
	WriteError(w http.ResponseWriter, status int, code, message string)
	// WriteModels answers GET /v1/models in the dialect's list shape.
	WriteModels(w http.ResponseWriter, models []Model)
	// ParseModels reads an upstream's GET /v1/models answer.
	ParseModels(body []byte) ([]Model, error)
}

// Model is one entry of a models list, in either dialect.
type Model struct {
	ID          string
	OwnedBy     string    // OpenAI owned_by; not part of the Anthropic shape
	Created     time.Time // zero when the upstream did not say
	DisplayName string    // Anthropic display_name, Gemini displayName; not part of the OpenAI shape
	// Raw is the upstream's own entry, for a dialect that lists it back
	// with all its fields (Gemini); nil otherwise.
	Raw json.RawMessage
}

// Lookup returns the dialect called name ("openai", "anthropic" or
// "gemini").
func Lookup(name string) (Dialect, bool) {
	switch name {
	case "openai":
		return OpenAI{}, true
	case "anthropic":
		return Anthropic{}, true
	case "gemini":
		return Gemini{}, true
	}
	return nil, false
}

// DetectListDialect picks the dialect of a request to a path the SDKs
// share, such as GET /v1/models: Gemini when it carries x-goog-api-key or
// the Google SDKs' x-goog-api-client; Anthropic when it carries
// anthropic-version, or x-api-key without Authorization; OpenAI otherwise.
func DetectListDialect(h http.Header) Dialect {
	if h.Get("X-Goog-Api-Key") != "" || h.Get("X-Goog-Api-Client") != "" {
		return Gemini{}
	}
	if h.Get("Anthropic-Version") != "" || (h.Get("X-Api-Key") != "" && h.Get("Authorization") == "") {
		return Anthropic{}
	}
	return OpenAI{}
}

// clientKey reads "Authorization: Bearer <key>" (scheme in any case) or
// "x-api-key: <key>", preferring preferAPIKey's header when both are sent.
// A header sent more than once, or a value with inner whitespace, is refused:
// keygate must not check one credential while an upstream might read another.
func clientKey(h http.Header, preferAPIKey bool) (string, bool) {
	bearer, bearerOK := bearerToken(h)
	apiKey, apiKeyOK := singleValue(h, "X-Api-Key")
	if apiKeyOK && !validToken(apiKey) {
		apiKeyOK = false
	}
	switch {
	case bearerOK && (!apiKeyOK || !preferAPIKey):
		return bearer, true
	case apiKeyOK:
		return apiKey, true
	}
	return "", false
}

func bearerToken(h http.Header) (string, bool) {
	v, ok := singleValue(h, "Authorization")
	if !ok {
		return "", false
	}
	sp := strings.IndexAny(v, " \t")
	if sp < 0 || !strings.EqualFold(v[:sp], "Bearer") {
		return "", false
	}
	rest := strings.Trim(v[sp:], " \t")
	if !validToken(rest) {
		return "", false
	}
	return rest, true
}

// singleValue returns the trimmed value of a header sent exactly once.
func singleValue(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	if len(vs) != 1 {
		return "", false
	}
	v := strings.Trim(vs[0], " \t")
	return v, v != ""
}

// validToken reports whether v is non-empty printable ASCII without spaces.
func validToken(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return false
		}
	}
	return true
}

// credentialHeaders lists the headers that can carry a client credential or
// ambient authority, in canonical form. OpenAI-Organization and
// OpenAI-Project are kept: they select an organization or project the
// upstream key already belongs to, and grant nothing on their own.
var credentialHeaders = [...]string{
	"Authorization",
	"Proxy-Authorization",
	"X-Api-Key",
	"Api-Key",
	"X-Goog-Api-Key",
	"Cookie",
}

// stripCredentials deletes credentialHeaders in any spelling of their names,
// so a header map built without canonical keys is cleaned too.
func stripCredentials(h http.Header) {
	for name := range h {
		for _, c := range credentialHeaders {
			if strings.EqualFold(name, c) {
				delete(h, name)
				break
			}
		}
	}
}

// setHeader replaces name (any spelling) with the single value v.
func setHeader(h http.Header, name, v string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
	h[name] = []string{v}
}

// UpstreamURL returns the URL to send a client request to: base's scheme and
// host, d's path mapping of the client path, and the client's query string
// after any query base itself carries (such as an api-version).
func UpstreamURL(d Dialect, base, client *url.URL) *url.URL {
	u := &url.URL{Scheme: base.Scheme, User: base.User, Host: base.Host,
		Path: d.UpstreamPath(base.Path, client.Path), RawQuery: client.RawQuery}
	if base.RawQuery != "" {
		u.RawQuery = base.RawQuery
		if client.RawQuery != "" {
			u.RawQuery += "&" + client.RawQuery
		}
	}
	return u
}

// joinPath appends suffix to base without doubling or dropping the slash.
func joinPath(base, suffix string) string {
	base = strings.TrimRight(base, "/")
	if base == "" {
		return suffix
	}
	return base + suffix
}

// writeJSON encodes v and writes it as the response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only plain structs are passed; this cannot happen
		http.Error(w, `{"error":"internal encoding error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// setRetryHint tells the OpenAI and Anthropic SDKs, which read
// x-should-retry, not to retry a denial that will not change on retry. 408,
// 409, 429 and 5xx keep the SDKs' default retry behaviour.
func setRetryHint(h http.Header, status int) {
	if status >= 400 && status < 500 && status != http.StatusRequestTimeout &&
		status != http.StatusConflict && status != http.StatusTooManyRequests {
		h.Set("X-Should-Retry", "false")
	}
}
