package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseCIDRs parses an IP allowlist. Each entry is a network in CIDR form
// ("203.0.113.0/24", "2001:db8::/32") or a bare address ("198.51.100.7",
// "2001:db8::1"), which stands for that one address. IPv4-mapped IPv6 forms
// ("::ffff:203.0.113.0/120") are rewritten as IPv4, host bits are cleared
// ("10.1.2.3/8" becomes "10.0.0.0/8"), and surrounding spaces are ignored.
// No entries give a nil list, which allows every address.
func ParseCIDRs(specs []string) ([]netip.Prefix, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(specs))
	for _, s := range specs {
		p, err := parseCIDR(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("policy: IP allowlist has an empty entry; remove it or write an address or CIDR such as 203.0.113.0/24")
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("policy: IP allowlist entry %q is not an IP address or CIDR; write e.g. 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("policy: IP allowlist entry %q has an IPv6 zone; zones only name an interface on one host, so drop the %%%s", s, a.Zone())
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("policy: IP allowlist entry %q is not a valid CIDR; write e.g. 203.0.113.0/24 or 2001:db8::/32", s)
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("policy: IP allowlist entry %q mixes IPv4-mapped and other IPv6 addresses; write the IPv4 network in dotted form, e.g. 203.0.113.0/24", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// AddrAllowed reports whether addr lies in one of the prefixes. No prefixes
// allow every address. When a list is set, an invalid (unknown) address is
// refused. IPv4-mapped IPv6 addresses are compared as IPv4, and zones are
// ignored.
func AddrAllowed(prefixes []netip.Prefix, addr netip.Addr) bool {
	if len(prefixes) == 0 {
		return true
	}
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
