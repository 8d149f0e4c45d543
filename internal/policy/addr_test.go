package policy_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/policy"
)

func TestParseCIDRs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string // prefixes as strings
		err  string
	}{
		{name: "none", in: nil, want: nil},
		{name: "v4 cidr", in: []string{"203.0.113.0/24"}, want: []string{"203.0.113.0/24"}},
		{name: "v6 cidr", in: []string{"2001:db8::/32"}, want: []string{"2001:db8::/32"}},
		{name: "bare v4", in: []string{"198.51.100.7"}, want: []string{"198.51.100.7/32"}},
		{name: "bare v6", in: []string{"2001:db8::1"}, want: []string{"2001:db8::1/128"}},
		{name: "host bits cleared", in: []string{"10.1.2.3/8"}, want: []string{"10.0.0.0/8"}},
		{name: "mapped bare", in: []string{"::ffff:198.51.100.7"}, want: []string{"198.51.100.7/32"}},
		{name: "mapped cidr", in: []string{"::ffff:203.0.113.0/120"}, want: []string{"203.0.113.0/24"}},
		{name: "spaces", in: []string{" 192.0.2.1 ", "\t2001:db8::/48"}, want: []string{"192.0.2.1/32", "2001:db8::/48"}},
		{name: "empty entry", in: []string{"192.0.2.1", ""}, err: "empty entry"},
		{name: "garbage", in: []string{"example.com"}, err: `"example.com" is not an IP address`},
		{name: "bad cidr", in: []string{"192.0.2.0/33"}, err: `"192.0.2.0/33" is not a valid CIDR`},
		{name: "v4 octet", in: []string{"192.0.2.256"}, err: `"192.0.2.256"`},
		{name: "zone", in: []string{"fe80::1%eth0"}, err: "zone"},
		{name: "mapped too wide", in: []string{"::ffff:0:0/90"}, err: "IPv4-mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policy.ParseCIDRs(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func TestAddrAllowed(t *testing.T) {
	list, err := policy.ParseCIDRs([]string{"203.0.113.0/24", "198.51.100.7", "2001:db8:1::/48"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		prefixes []netip.Prefix
		addr     netip.Addr
		want     bool
	}{
		{"empty list allows", nil, netip.MustParseAddr("8.8.8.8"), true},
		{"empty list allows unknown", nil, netip.Addr{}, true},
		{"in v4 network", list, netip.MustParseAddr("203.0.113.200"), true},
		{"outside v4 network", list, netip.MustParseAddr("203.0.114.1"), false},
		{"single address", list, netip.MustParseAddr("198.51.100.7"), true},
		{"next to single address", list, netip.MustParseAddr("198.51.100.8"), false},
		{"mapped v4", list, netip.MustParseAddr("::ffff:203.0.113.9"), true},
		{"in v6 network", list, netip.MustParseAddr("2001:db8:1:ffff::1"), true},
		{"outside v6 network", list, netip.MustParseAddr("2001:db8:2::1"), false},
		{"zone ignored", list, netip.MustParseAddr("2001:db8:1::1%eth0"), true},
		{"invalid denied", list, netip.Addr{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy.AddrAllowed(tc.prefixes, tc.addr); got != tc.want {
				t.Errorf("AddrAllowed(%v, %v) = %v, want %v", tc.prefixes, tc.addr, got, tc.want)
			}
		})
	}
}
