// Package passthrough holds the building blocks of keygate's generic
// passthrough route, /proxy/{service}/..., which forwards any HTTP API call
// to a configured base URL with the real upstream credential injected.
//
// The pieces are meant to be used together by the gateway:
//
//   - ParseService builds and checks a Service from configuration.
//   - ServiceFromPath splits an incoming escaped path into the service name
//     and the rest of the path.
//   - Service.Rewrite builds the upstream request from the client's: it
//     refuses paths that could leave the base path, strips every credential
//     the client sent and injects the real one.
//   - NewTransport returns the http.RoundTripper that sends it, refusing
//     private and special-purpose addresses at dial time unless the service
//     allows them, refusing any host other than the service's, and never
//     following redirects. Attach the service to the request's context with
//     WithService before the request reaches the transport.
//   - ScrubLocation removes the credential from redirect targets the
//     upstream sends back.
//
// Authentication of keygate's own callers, scopes, limits and auditing are
// the gateway's concern, not this package's.
package passthrough

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// RoutePrefix is the path prefix of the passthrough route. A request for
// /proxy/{name}/rest goes to the service called name.
const RoutePrefix = "/proxy/"

// Auth kinds: how the credential is put on the upstream request.
const (
	// AuthHeader sets the header Auth.Name to Auth.Prefix followed by the
	// credential, for example "X-Api-Key: <key>" or "Authorization: Token <key>".
	AuthHeader = "header"
	// AuthBearer sets "Authorization: Bearer <key>".
	AuthBearer = "bearer"
	// AuthQuery adds the query parameter Auth.Name=<key>.
	AuthQuery = "query"
	// AuthBasic sets HTTP Basic authorization with Auth.User as the user
	// name and the credential as the password, or, when Auth.User is empty,
	// the credential as the user name and an empty password.
	AuthBasic = "basic"
)

// Service is one upstream reachable through the passthrough route.
// Build it with ParseService; if Headers is set afterwards, call Validate.
type Service struct {
	// Name is the path segment that selects the service: /proxy/{Name}/...
	Name string
	// BaseURL is where requests go, such as https://api.stripe.com or
	// https://api.example.com/v2. The client's path is appended to its path.
	BaseURL *url.URL
	// Auth says how the credential is injected.
	Auth Auth
	// AllowPrivate lets the transport connect to loopback, private,
	// link-local and other special-purpose addresses. Leave it false unless
	// the upstream is deliberately internal.
	AllowPrivate bool
	// Headers are fixed headers set on every upstream request, such as an
	// API version. They replace any value the client sent. Optional.
	Headers map[string]string
}

// Auth describes how a service's credential is put on the upstream request.
type Auth struct {
	// Kind is one of AuthHeader, AuthBearer, AuthQuery, AuthBasic.
	Kind string
	// Name is the header name (AuthHeader) or query parameter name
	// (AuthQuery). Other kinds leave it empty.
	Name string
	// Prefix is prepended to the credential in the header value (AuthHeader
	// only), for example "Token ". Optional.
	Prefix string
	// User is the Basic user name, the credential being the password
	// (AuthBasic only). When empty, the credential is sent as the user name
	// with an empty password, as Stripe expects.
	User string
}

// ConfigError reports a passthrough service configuration keygate cannot use.
type ConfigError struct {
	Service string // the service's name as given, possibly empty
	Field   string // the offending setting: "name", "base_url", "auth", "headers"
	Reason  string // what is wrong and how to fix it
}

// Error describes the bad setting.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("passthrough service %q: %s: %s", e.Service, e.Field, e.Reason)
}

// ParseService builds a Service from its configuration and checks it:
// the name must be a plain lower-case path segment, the base URL an http or
// https URL without user info, query or fragment, and the auth settings
// complete for their kind. Errors are *ConfigError.
func ParseService(name, baseURL string, auth Auth, allowPrivate bool) (*Service, error) {
	cfgErr := func(field, format string, args ...any) error {
		return &ConfigError{Service: name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := checkName(name); err != nil {
		return nil, cfgErr("name", "%s", err.Error())
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, cfgErr("base_url", "%q is not a valid URL; give an absolute URL such as https://api.example.com/v1", baseURL)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	// A trailing slash on the base would double the slash the client's path starts with.
	if p := strings.TrimRight(u.EscapedPath(), "/"); p != u.EscapedPath() {
		dec, derr := url.PathUnescape(p)
		if derr != nil {
			return nil, cfgErr("base_url", "the path of %q has malformed percent-encoding", baseURL)
		}
		u.Path, u.RawPath = dec, p
	}
	s := &Service{Name: name, BaseURL: u, Auth: auth, AllowPrivate: allowPrivate}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks a Service built or changed by hand, Headers included.
// ParseService calls it; Rewrite calls it too, so a service that fails it
// never sends a request. Errors are *ConfigError.
func (s *Service) Validate() error {
	if s == nil {
		return &ConfigError{Field: "service", Reason: "no service given"}
	}
	cfgErr := func(field, format string, args ...any) error {
		return &ConfigError{Service: s.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := checkName(s.Name); err != nil {
		return cfgErr("name", "%s", err.Error())
	}
	if err := checkBaseURL(s.BaseURL); err != nil {
		return cfgErr("base_url", "%s", err.Error())
	}
	if err := checkAuth(s.Auth); err != nil {
		return cfgErr("auth", "%s", err.Error())
	}
	for k, v := range s.Headers {
		if err := checkFixedHeader(k, v, s.Auth); err != nil {
			return cfgErr("headers", "%s", err.Error())
		}
	}
	return nil
}

// maxNameLen bounds a service name.
const maxNameLen = 63

// checkName accepts lower-case letters, digits, '-' and '_', starting with a
// letter or digit: names that are a path segment as they are.
// CheckName reports whether name can name a passthrough service: a plain
// lower-case path segment, as in "stripe" or "github-app".
func CheckName(name string) error { return checkName(name) }

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("the service name is empty; give a name such as \"stripe\"")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("the service name is longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return fmt.Errorf("the service name %q may hold only lower-case letters, digits, '-' and '_', and must start with a letter or digit", name)
		}
	}
	return nil
}

// checkBaseURL checks the parts of a base URL that decide where a request goes.
func checkBaseURL(u *url.URL) error {
	if u == nil {
		return fmt.Errorf("no base URL; give one such as https://api.example.com/v1")
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: the scheme must be http or https", shown)
	case u.Opaque != "":
		return fmt.Errorf("%q: not a hierarchical URL; write it as scheme://host/path", shown)
	case u.User != nil:
		return fmt.Errorf("%q: user info in the base URL is not allowed; put the credential in the service's auth settings instead", shown)
	case u.Host == "":
		return fmt.Errorf("%q: no host", shown)
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Errorf("%q: a query in the base URL is not allowed; fixed parameters belong in the path or headers, credentials in the auth settings", shown)
	case u.Fragment != "" || u.RawFragment != "":
		return fmt.Errorf("%q: a fragment in the base URL is not allowed", shown)
	case u.Host != strings.ToLower(u.Host):
		return fmt.Errorf("%q: write the host in lower case", shown)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return fmt.Errorf("%q: no host name", shown)
	}
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%q: empty port", shown)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not a number from 1 to 65535", shown, port)
		}
	}
	if strings.HasSuffix(u.EscapedPath(), "/") {
		return fmt.Errorf("%q: the base path ends with '/'; remove it (ParseService does)", shown)
	}
	if p := u.EscapedPath(); p != "" {
		if err := CheckPath(p); err != nil {
			return fmt.Errorf("%q: base path: %s", shown, err.(*PathError).Reason)
		}
	}
	return nil
}

// checkAuth checks that the settings of an Auth match its kind.
func checkAuth(a Auth) error {
	switch a.Kind {
	case AuthHeader:
		if !validToken(a.Name) {
			return fmt.Errorf("kind %q needs a header name (letters, digits and !#$%%&'*+-.^_`|~), got %q", a.Kind, a.Name)
		}
		if isFramingHeader(a.Name) {
			return fmt.Errorf("kind %q cannot use %q as the credential header; it controls the HTTP exchange itself", a.Kind, a.Name)
		}
		if !validHeaderValue(a.Prefix) {
			return fmt.Errorf("the prefix holds control characters")
		}
		if a.User != "" {
			return fmt.Errorf("kind %q takes no user; remove it", a.Kind)
		}
	case AuthBearer:
		if a.Name != "" || a.Prefix != "" || a.User != "" {
			return fmt.Errorf("kind %q always uses \"Authorization: Bearer\"; remove name, prefix and user", a.Kind)
		}
	case AuthQuery:
		if a.Name == "" || !validHeaderValue(a.Name) {
			return fmt.Errorf("kind %q needs the query parameter name, such as \"api_key\"", a.Kind)
		}
		if a.Prefix != "" || a.User != "" {
			return fmt.Errorf("kind %q takes no prefix or user; remove them", a.Kind)
		}
	case AuthBasic:
		if a.Name != "" || a.Prefix != "" {
			return fmt.Errorf("kind %q always uses \"Authorization: Basic\"; remove name and prefix", a.Kind)
		}
		if strings.Contains(a.User, ":") || !validHeaderValue(a.User) {
			return fmt.Errorf("the basic user name may not contain ':' or control characters")
		}
	case "":
		return fmt.Errorf("no auth kind; use one of %q, %q, %q, %q", AuthHeader, AuthBearer, AuthQuery, AuthBasic)
	default:
		return fmt.Errorf("unknown auth kind %q; use one of %q, %q, %q, %q", a.Kind, AuthHeader, AuthBearer, AuthQuery, AuthBasic)
	}
	return nil
}

// checkFixedHeader checks one entry of Service.Headers.
func checkFixedHeader(name, value string, a Auth) error {
	if !validToken(name) {
		return fmt.Errorf("%q is not a valid header name", name)
	}
	if isFramingHeader(name) {
		return fmt.Errorf("%q controls the HTTP exchange itself and cannot be a fixed header", name)
	}
	if isCredentialHeader(name, a) {
		return fmt.Errorf("%q carries credentials; configure the credential through the auth settings instead", name)
	}
	if !validHeaderValue(value) {
		return fmt.Errorf("the value of %q holds control characters", name)
	}
	return nil
}

// isFramingHeader reports headers that belong to the transport, not the API.
func isFramingHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Host", "Connection", "Content-Length", "Transfer-Encoding", "Te", "Trailer",
		"Upgrade", "Keep-Alive", "Proxy-Connection", "Expect":
		return true
	}
	return false
}

// validToken reports whether s is an RFC 9110 token, the syntax of header names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as (part of) a header
// value: no control bytes other than horizontal tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ServiceFromPath splits an escaped request path of the form
// /proxy/{name}/rest... into the service name and the rest, which keeps its
// leading slash ("/v1/charges") or is empty for /proxy/{name}. Pass the
// escaped path (r.URL.EscapedPath()), so that Rewrite sees the client's
// encoding. ok is false when the path is not under /proxy/ or the name is
// not a valid service name.
func ServiceFromPath(path string) (name, rest string, ok bool) {
	after, found := strings.CutPrefix(path, RoutePrefix)
	if !found {
		return "", "", false
	}
	name, rest = after, ""
	if i := strings.IndexByte(after, '/'); i >= 0 {
		name, rest = after[:i], after[i:]
	}
	if checkName(name) != nil {
		return "", "", false
	}
	return name, rest, true
}

// hostPort returns u's host with the scheme's default port made explicit,
// the form the transport dials.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
