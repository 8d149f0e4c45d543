// Package egress guards the requests keygate sends to addresses someone
// configured: passthrough services, rotation deliveries, alert and audit
// webhooks. A URL naming a cloud metadata endpoint, a loopback or private
// address, or a host whose DNS answer points at one (now or after a
// rebinding) would otherwise let whoever set the URL reach the inside of
// keygate's network with keygate's credentials. Every address is checked
// when it is dialled, after DNS; special-purpose addresses are refused
// unless the operator listed them.
package egress

import "net/netip"

// Classify reports whether ip is an ordinary public unicast address that
// keygate may send a request to without the operator allowing it. When it
// is not, reason names the range it belongs to: loopback, private (RFC 1918,
// fc00::/7), link-local (169.254.0.0/16 with the cloud metadata address,
// fe80::/10), unspecified, multicast, shared CGNAT space (100.64.0.0/10),
// 0.0.0.0/8, broadcast and the other special-purpose ranges of the IANA
// registries. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) and NAT64
// addresses (64:ff9b::a.b.c.d) are judged by the IPv4 address they carry;
// the deprecated IPv4-compatible (::a.b.c.d), 6to4 and Teredo forms are
// refused outright, as is any IPv6 address outside global unicast 2000::/3.
// The zero Addr is refused.
func Classify(ip netip.Addr) (public bool, reason string) {
	if !ip.IsValid() {
		return false, "not a valid IP address"
	}
	ip = ip.WithZone("")
	if ip.Is4() {
		r := classify4(ip.As4())
		return r == "", r
	}
	if ip.Is4In6() {
		if r := classify4(ip.Unmap().As4()); r != "" {
			return false, "IPv4-mapped " + r
		}
		return true, ""
	}
	r := classify6(ip.As16())
	return r == "", r
}

// classify4 returns why an IPv4 address is special, or "" if it is public.
func classify4(a [4]byte) string {
	switch {
	case a[0] == 0:
		return "\"this network\" address (0.0.0.0/8)"
	case a[0] == 10:
		return "private address (10.0.0.0/8, RFC 1918)"
	case a[0] == 100 && a[1]&0xc0 == 64:
		return "shared carrier-grade NAT address (100.64.0.0/10)"
	case a[0] == 127:
		return "loopback address (127.0.0.0/8)"
	case a[0] == 169 && a[1] == 254 && a[2] == 169 && a[3] == 254:
		return "link-local cloud metadata address (169.254.169.254)"
	case a[0] == 169 && a[1] == 254:
		return "link-local address (169.254.0.0/16)"
	case a[0] == 172 && a[1]&0xf0 == 16:
		return "private address (172.16.0.0/12, RFC 1918)"
	case a[0] == 192 && a[1] == 0 && a[2] == 0:
		return "IETF protocol assignment address (192.0.0.0/24)"
	case a[0] == 192 && a[1] == 0 && a[2] == 2:
		return "documentation address (192.0.2.0/24)"
	case a[0] == 192 && a[1] == 88 && a[2] == 99:
		return "deprecated 6to4 relay address (192.88.99.0/24)"
	case a[0] == 192 && a[1] == 168:
		return "private address (192.168.0.0/16, RFC 1918)"
	case a[0] == 198 && a[1]&0xfe == 18:
		return "benchmarking address (198.18.0.0/15)"
	case a[0] == 198 && a[1] == 51 && a[2] == 100:
		return "documentation address (198.51.100.0/24)"
	case a[0] == 203 && a[1] == 0 && a[2] == 113:
		return "documentation address (203.0.113.0/24)"
	case a[0]&0xf0 == 224:
		return "multicast address (224.0.0.0/4)"
	case a == [4]byte{255, 255, 255, 255}:
		return "broadcast address (255.255.255.255)"
	case a[0]&0xf0 == 240:
		return "reserved address (240.0.0.0/4)"
	}
	return ""
}

// classify6 returns why an IPv6 address (not IPv4-mapped) is special, or ""
// if it is public.
func classify6(a [16]byte) string {
	var zero12 [12]byte
	switch {
	case a == [16]byte{}:
		return "unspecified address (::)"
	case a == [16]byte{15: 1}:
		return "loopback address (::1)"
	case [12]byte(a[:12]) == zero12:
		r := "deprecated IPv4-compatible address (::/96)"
		if v4 := classify4([4]byte(a[12:])); v4 != "" {
			r += " holding a " + v4
		}
		return r
	case a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && [8]byte(a[4:12]) == [8]byte{}:
		if v4 := classify4([4]byte(a[12:])); v4 != "" {
			return "NAT64 address (64:ff9b::/96) holding a " + v4
		}
		return ""
	case a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 && a[5] == 1:
		return "local-use NAT64 address (64:ff9b:1::/48)"
	case a[0] == 0x01 && a[1] == 0x00 && [6]byte(a[2:8]) == [6]byte{}:
		return "discard-only address (100::/64)"
	case a[0]&0xfe == 0xfc:
		return "unique local address (fc00::/7)"
	case a[0] == 0xfe && a[1]&0xc0 == 0x80:
		return "link-local address (fe80::/10)"
	case a[0] == 0xfe && a[1]&0xc0 == 0xc0:
		return "deprecated site-local address (fec0::/10)"
	case a[0] == 0xff:
		return "multicast address (ff00::/8)"
	case a[0]&0xe0 != 0x20:
		return "address outside global unicast (2000::/3)"
	case a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8:
		return "documentation address (2001:db8::/32)"
	case a[0] == 0x20 && a[1] == 0x01 && a[2]&0xfe == 0:
		return "IETF protocol assignment address, Teredo included (2001::/23)"
	case a[0] == 0x20 && a[1] == 0x02:
		return "6to4 address (2002::/16)"
	case a[0] == 0x3f && a[1] == 0xff && a[2]&0xf0 == 0:
		return "documentation address (3fff::/20)"
	}
	return ""
}
