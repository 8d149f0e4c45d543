package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// BlockedError is a connection egress refused: the address it would have
// dialled is special-purpose and not allowed.
type BlockedError struct {
	Addr   netip.Addr // the address refused; zero when it could not be read
	Reason string     // which range it is in, and what to do
}

// Error describes the refusal.
func (e *BlockedError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("egress: refused to connect to %s: %s", e.Addr, e.Reason)
	}
	return "egress: refused to connect: " + e.Reason
}

// Policy decides which addresses keygate may connect to: every public
// address, and the special-purpose ones in Allow (an internal webhook
// receiver at 10.1.2.3/32, say). The zero Policy allows public addresses
// only.
type Policy struct {
	Allow []netip.Prefix
	// What names the setting that lists Allow, for refusal messages
	// (default egress.allow, keygate's configuration key).
	What string
}

// Check returns nil when the policy allows connecting to ip, or a
// *BlockedError.
func (p Policy) Check(ip netip.Addr) error {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	public, reason := Classify(ip)
	if public {
		return nil
	}
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	what := p.What
	if what == "" {
		what = "egress.allow"
	}
	return &BlockedError{Addr: ip, Reason: reason + " is not reachable from keygate unless listed in " + what}
}

// Control is a net.Dialer ControlContext that refuses what the policy
// does not allow. It runs after DNS resolution, on the address actually
// dialled, so a name that resolves or rebinds to a refused address is
// refused too.
func (p Policy) Control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Reason: "the dialled address could not be checked"}
	}
	return p.Check(ap.Addr())
}

// Client returns an HTTP client that connects only where the policy
// allows, uses no proxy from the environment (a URL's request never takes
// a detour), follows no redirect (a 3xx is returned as the answer, so a
// receiver cannot bounce keygate elsewhere), and gives up after timeout.
func (p Policy) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, ControlContext: p.Control}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// IsBlocked reports whether err is a connection egress refused.
func IsBlocked(err error) bool {
	var b *BlockedError
	return errors.As(err, &b)
}

// ParsePrefixes reads addresses and CIDRs ("10.1.2.3", "10.0.0.0/8",
// "fd00::/8") for Policy.Allow, naming the bad one.
func ParsePrefixes(specs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(specs))
	for _, s := range specs {
		if pfx, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a.WithZone(""), a.BitLen()))
	}
	return out, nil
}
