package web

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzClientAddr: whatever X-Forwarded-For a client sends, the address
// keygate believes is the socket's unless the socket is a trusted proxy,
// and is never an address the chain could only claim through an
// untrusted hop.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "10.0.0.1, 203.0.113.7", "garbage", "", "::ffff:1.2.3.4", "1.2.3.4,,5.6.7.8", "[::1]"} {
		f.Add("198.51.100.2:5555", s)
		f.Add("10.0.0.9:443", s)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := ClientAddr(r, trusted)
		ap, err := netip.ParseAddrPort(remote)
		if err != nil {
			if got.IsValid() {
				t.Fatalf("unreadable socket address %q gave %s", remote, got)
			}
			return
		}
		peer := ap.Addr().Unmap()
		if !trusted[0].Contains(peer) && got != peer {
			t.Fatalf("an untrusted socket %s was believed to be %s (X-Forwarded-For %q)", peer, got, xff)
		}
	})
}
