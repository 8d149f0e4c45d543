package web

import (
	"crypto/tls"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestPublicOrigin: a configured public URL wins; a trusted proxy's
// forwarded scheme and host are believed; anyone else's are not.
func TestPublicOrigin(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for name, tc := range map[string]struct {
		public, remote string
		tls            bool
		headers        map[string]string
		want           string
	}{
		"plain":                    {remote: "192.0.2.1:5000", want: "http://kg.internal:8787"},
		"tls":                      {remote: "192.0.2.1:5000", tls: true, want: "https://kg.internal:8787"},
		"public URL":               {public: "https://external.example", remote: "192.0.2.1:5000", headers: map[string]string{"X-Forwarded-Host": "evil.example"}, want: "https://external.example"},
		"untrusted spoof":          {remote: "192.0.2.1:5000", headers: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, want: "http://kg.internal:8787"},
		"trusted proxy":            {remote: "10.1.2.3:5000", headers: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "external.example"}, want: "https://external.example"},
		"trusted, proto only":      {remote: "10.1.2.3:5000", headers: map[string]string{"X-Forwarded-Proto": "https"}, want: "https://kg.internal:8787"},
		"trusted, last value wins": {remote: "10.1.2.3:5000", headers: map[string]string{"X-Forwarded-Proto": "javascript, https", "X-Forwarded-Host": "evil.example, external.example"}, want: "https://external.example"},
		"trusted, bad values":      {remote: "10.1.2.3:5000", headers: map[string]string{"X-Forwarded-Proto": "ftp", "X-Forwarded-Host": "evil.example/path@x"}, want: "http://kg.internal:8787"},
	} {
		r := httptest.NewRequest("GET", "http://kg.internal:8787/.well-known/oauth-authorization-server", nil)
		r.RemoteAddr = tc.remote
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		if got := PublicOrigin(r, tc.public, proxies); got != tc.want {
			t.Errorf("%s: PublicOrigin = %q, want %q", name, got, tc.want)
		}
	}
}
