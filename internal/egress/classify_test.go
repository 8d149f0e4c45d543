package egress

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		ip     string
		public bool
		says   string
	}{
		// IPv4
		{"8.8.8.8", true, ""},
		{"1.1.1.1", true, ""},
		{"93.184.216.34", true, ""},
		{"100.63.255.255", true, ""},
		{"100.128.0.0", true, ""},
		{"172.15.255.255", true, ""},
		{"172.32.0.0", true, ""},
		{"192.169.0.1", true, ""},
		{"198.20.0.1", true, ""},
		{"223.255.255.255", true, ""},
		{"0.0.0.0", false, "this network"},
		{"0.1.2.3", false, "0.0.0.0/8"},
		{"10.0.0.1", false, "private"},
		{"100.64.0.1", false, "carrier-grade NAT"},
		{"100.127.255.254", false, "carrier-grade NAT"},
		{"127.0.0.1", false, "loopback"},
		{"127.255.255.254", false, "loopback"},
		{"169.254.169.254", false, "metadata"},
		{"169.254.1.1", false, "link-local"},
		{"172.16.0.1", false, "private"},
		{"172.31.255.255", false, "private"},
		{"192.0.0.8", false, "IETF"},
		{"192.0.2.1", false, "documentation"},
		{"192.88.99.1", false, "6to4 relay"},
		{"192.168.0.1", false, "private"},
		{"198.18.0.1", false, "benchmarking"},
		{"198.19.255.255", false, "benchmarking"},
		{"198.51.100.1", false, "documentation"},
		{"203.0.113.9", false, "documentation"},
		{"224.0.0.1", false, "multicast"},
		{"239.255.255.250", false, "multicast"},
		{"240.0.0.1", false, "reserved"},
		{"255.255.255.255", false, "broadcast"},
		// IPv6
		{"2606:4700:4700::1111", true, ""},
		{"2001:4860:4860::8888", true, ""},
		{"2001:200::1", true, ""},
		{"::", false, "unspecified"},
		{"::1", false, "loopback"},
		{"fc00::1", false, "unique local"},
		{"fd12:3456::1", false, "unique local"},
		{"fe80::1", false, "link-local"},
		{"fe80::1%eth0", false, "link-local"},
		{"febf::1", false, "link-local"},
		{"fec0::1", false, "site-local"},
		{"ff02::1", false, "multicast"},
		{"ff05::2", false, "multicast"},
		{"100::1", false, "discard"},
		{"2001:db8::1", false, "documentation"},
		{"3fff::1", false, "documentation"},
		{"2001::1", false, "Teredo"},
		{"2002:7f00:1::1", false, "6to4"},
		{"5f00::1", false, "outside global unicast"},
		{"4000::1", false, "outside global unicast"},
		{"64:ff9b:1::1", false, "local-use NAT64"},
		{"fd00:ec2::254", false, "unique local"},
		// IPv4-mapped, IPv4-compatible and NAT64 forms
		{"::ffff:8.8.8.8", true, ""},
		{"::ffff:127.0.0.1", false, "IPv4-mapped loopback"},
		{"::ffff:10.0.0.1", false, "IPv4-mapped private"},
		{"::ffff:169.254.169.254", false, "IPv4-mapped link-local cloud metadata"},
		{"::ffff:0.0.0.0", false, "IPv4-mapped"},
		{"::ffff:100.64.0.1", false, "IPv4-mapped shared"},
		{"::127.0.0.1", false, "IPv4-compatible address (::/96) holding a loopback"},
		{"::8.8.8.8", false, "IPv4-compatible"},
		{"::169.254.169.254", false, "metadata"},
		{"64:ff9b::8.8.8.8", true, ""},
		{"64:ff9b::127.0.0.1", false, "NAT64"},
		{"64:ff9b::a9fe:a9fe", false, "metadata"},
	}
	for _, c := range cases {
		public, reason := Classify(netip.MustParseAddr(c.ip))
		if public != c.public || !strings.Contains(reason, c.says) || (public && reason != "") {
			t.Errorf("Classify(%s) = %v, %q; want %v and a reason containing %q", c.ip, public, reason, c.public, c.says)
		}
	}
	if public, _ := Classify(netip.Addr{}); public {
		t.Error("the zero Addr must not be public")
	}
}
