package web

import (
	"net/http"
	"net/netip"
	"strings"
)

// PublicOrigin returns scheme://host as clients reach this listener, for
// URLs keygate hands out about itself (OAuth issuer and metadata). In
// order: public, the configured public URL's origin, when set; else, when
// the socket's peer is one of the trusted proxies, its X-Forwarded-Proto
// and X-Forwarded-Host (the last value of each, which the nearest proxy
// set); else the request's own TLS state and Host. An untrusted peer's
// X-Forwarded-* headers are ignored, so a client cannot choose the origin.
func PublicOrigin(r *http.Request, public string, trusted []netip.Prefix) string {
	if public != "" {
		return public
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !isTrusted(ap.Addr().Unmap(), trusted) {
		return scheme + "://" + host
	}
	if p := strings.ToLower(lastForwarded(r.Header.Values("X-Forwarded-Proto"))); p == "http" || p == "https" {
		scheme = p
	}
	if h := lastForwarded(r.Header.Values("X-Forwarded-Host")); validHost(h) {
		host = h
	}
	return scheme + "://" + host
}

// lastForwarded is the last comma-separated item of a forwarded header's
// values, trimmed.
func lastForwarded(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	last := vs[len(vs)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.TrimSpace(last)
}

// validHost accepts a host[:port] a proxy may forward: letters, digits,
// dots, hyphens, a port, or a bracketed IPv6 address; nothing that could
// end the authority or start a path, query or user info.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}
