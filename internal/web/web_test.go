package web

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestClientAddrIgnoresUntrustedForwardedFor(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"203.0.113.9:5000", "198.51.100.1", "203.0.113.9"},         // spoofed header from a direct client
		{"10.1.2.3:5000", "198.51.100.1", "198.51.100.1"},           // through a trusted proxy
		{"10.1.2.3:5000", "198.51.100.1, 10.9.9.9", "198.51.100.1"}, // two trusted hops
		{"10.1.2.3:5000", "6.6.6.6, 198.51.100.1", "198.51.100.1"},  // client-prepended spoof ignored
		{"10.1.2.3:5000", "garbage, 198.51.100.1", "198.51.100.1"},  // rightmost untrusted wins
		{"10.1.2.3:5000", "198.51.100.1, garbage", "10.1.2.3"},      // malformed hop stops the walk
		{"10.1.2.3:5000", "", "10.1.2.3"},                           // no header
		{"[::ffff:203.0.113.9]:1", "198.51.100.1", "203.0.113.9"},   // v4-mapped socket address
		{"[2001:db8::1]:443", "198.51.100.1", "2001:db8::1"},        // IPv6 direct
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := ClientAddr(r, trusted).String(); got != tc.want {
			t.Errorf("remote %s xff %q: got %s want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestRecoverHidesPanicValue(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("canary-secret-in-panic") }),
		NewRequestIDs().Middleware, Recover(log, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "internal error", 500) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "canary") || strings.Contains(logs.String(), "canary") {
		t.Fatalf("status %d body %q logs %q", rec.Code, rec.Body, logs.String())
	}
	if rec.Header().Get("X-Request-Id") == "" || !strings.Contains(logs.String(), "request_id=req_") {
		t.Fatalf("request id missing: %q", logs.String())
	}
}

func TestSelfSignedCertificateServesTLS(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tls", "self-signed.crt")
	cert, err := SelfSigned(p, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = TLSConfig(cert)
	srv.StartTLS()
	defer srv.Close()
	pemBytes, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("written certificate is not PEM")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("client trusting the written certificate must connect: %v", err)
	}
	resp.Body.Close()
}
