package adminclient

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ErrPlainHTTP is wrapped by the error New, and CheckCleartext, return for
// a plain http:// URL whose host is not this machine: a credential sent
// there would cross a network in clear.
var ErrPlainHTTP = errors.New("plain HTTP to another machine")

// Origin returns the origin of an admin URL: scheme://host:port with the
// scheme and host in lower case and the default port (80, 443) written out,
// so that http://LOCALHOST:80/ and http://localhost name the same server.
// A saved credential belongs to one origin and is sent to no other.
func Origin(raw string) (string, error) {
	u, err := parseBaseURL(raw)
	if err != nil {
		return "", err
	}
	return OriginOf(u), nil
}

// OriginOf returns the origin of u, as Origin does; u must be an absolute
// http or https URL.
func OriginOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// IsLoopbackHost reports whether host (a name or an IP address, with or
// without brackets) can only be this machine: localhost, 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// CheckCleartext returns an error wrapping ErrPlainHTTP when u is plain
// http:// to a host that is not loopback, and nil otherwise. Callers check
// it before sending u a credential.
func CheckCleartext(u *url.URL) error {
	if strings.EqualFold(u.Scheme, "http") && !IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%w: %s is not this machine, and a credential sent there over http:// crosses the network in clear; use https://", ErrPlainHTTP, u.Host)
	}
	return nil
}
