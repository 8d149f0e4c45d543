package siem_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/siem"
)

var at = time.Date(2026, 3, 1, 11, 0, 0, 123456000, time.UTC)

// nasty is a record whose client-chosen values hold every character
// that could end a field, a header or the event at a collector.
func nasty() siem.Record {
	return siem.Record{
		Time: at, Severity: 4, ID: "auth.failure", Name: "auth|failure \\ deny\nnext",
		Fields: []siem.Field{
			{Name: "seq", CEF: "cn1", Value: "7"},
			{Name: "client", CEF: "src", Value: "10.0.0.5"},
			{Name: "resource", CEF: "request", Value: "POST /v1/x=1|2\\3]\"\nCEF:0|forged|event"},
			{Name: "reason", CEF: "reason", Value: "invalid_api_key"},
			{Name: "reason", CEF: "reason", Value: "too_many"},
			{Name: "key_id", CEF: "cs1", Value: "key_a"},
			{Name: "model", Value: "gpt=4o"},
		},
		Text: `{"seq":7}`,
	}
}

// readFrame reads one octet-counted frame (RFC 6587), as a collector does.
func readFrame(r *bufio.Reader) (string, error) {
	n, err := r.ReadString(' ')
	if err != nil {
		return "", err
	}
	size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
	if err != nil || size <= 0 {
		return "", errors.New("bad frame length " + strconv.Quote(n))
	}
	b := make([]byte, size)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// parseCEF splits a CEF line into its seven header fields and its
// extension, undoing the escapes as a CEF parser does.
func parseCEF(t *testing.T, line string) ([]string, map[string]string) {
	t.Helper()
	i := strings.Index(line, "CEF:0|")
	if i < 0 {
		t.Fatalf("no CEF:0 in %q", line)
	}
	s := line[i:]
	var head []string
	var cur strings.Builder
	j := 0
	for ; j < len(s) && len(head) < 7; j++ {
		switch s[j] {
		case '\\':
			j++
			cur.WriteByte(s[j])
		case '|':
			head = append(head, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[j])
		}
	}
	ext := s[j:]
	// Keys are word characters followed by an unescaped '='.
	keyRe := regexp.MustCompile(`(?:^| )([A-Za-z0-9]+)=`)
	locs := keyRe.FindAllStringSubmatchIndex(ext, -1)
	var real [][]int
	for _, l := range locs {
		if l[0] > 0 && ext[l[0]-1] == '\\' {
			continue
		}
		// an escaped '=' just before the key's '=' is part of a value
		if l[1] >= 2 && ext[l[1]-2] == '\\' {
			continue
		}
		real = append(real, l)
	}
	out := map[string]string{}
	for k, l := range real {
		end := len(ext)
		if k+1 < len(real) {
			end = real[k+1][0]
		}
		raw := ext[l[1]:end]
		var v strings.Builder
		for x := 0; x < len(raw); x++ {
			if raw[x] == '\\' && x+1 < len(raw) {
				x++
				switch raw[x] {
				case 'n':
					v.WriteByte('\n')
				case 'r':
					v.WriteByte('\r')
				default:
					v.WriteByte(raw[x])
				}
				continue
			}
			v.WriteByte(raw[x])
		}
		out[ext[l[2]:l[3]]] = v.String()
	}
	return head, out
}

func TestCEFEscapingOverUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	w, err := siem.Dial(t.Context(), siem.Options{URL: "udp://" + pc.LocalAddr().String(), Format: siem.FormatCEF, Hostname: "gw-1", Version: "1.2|3"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Send(t.Context(), nasty()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	line := string(buf[:n])
	if strings.ContainsAny(line, "\r\n") {
		t.Fatalf("a CEF event spans lines: %q", line)
	}
	if !strings.HasPrefix(line, "<84>1 2026-03-01T11:00:00.123456Z gw-1 keygate - auth.failure - CEF:0|") {
		t.Fatalf("syslog header: %q", line)
	}
	head, ext := parseCEF(t, line)
	want := []string{"CEF:0", "keygate", "keygate", "1.2|3", "auth.failure", "auth|failure \\ deny next", "6"}
	if strings.Join(head, "\x00") != strings.Join(want, "\x00") {
		t.Fatalf("header fields %q, want %q", head, want)
	}
	for k, v := range map[string]string{
		"rt": strconv.FormatInt(at.UnixMilli(), 10), "src": "10.0.0.5", "cn1": "7", "cn1Label": "seq",
		"request": "POST /v1/x=1|2\\3]\"\nCEF:0|forged|event", "reason": "invalid_api_key,too_many",
		"cs1": "key_a", "cs1Label": "key_id", "keygateModel": "gpt=4o", "msg": `{"seq":7}`,
	} {
		if ext[k] != v {
			t.Errorf("extension %s = %q, want %q (all: %q)", k, ext[k], v, ext)
		}
	}
}

func TestRFC5424OverTCPOctetCounting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 8)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			m, err := readFrame(r)
			if err != nil {
				close(got)
				return
			}
			got <- m
		}
	}()
	w, err := siem.Dial(t.Context(), siem.Options{URL: "tcp://" + ln.Addr().String(), Hostname: "gw 1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(t.Context(), nasty(), nasty()); err != nil {
		t.Fatal(err)
	}
	if err := w.Send(t.Context(), nasty()); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var msgs []string
	for m := range got {
		msgs = append(msgs, m)
	}
	if len(msgs) != 3 {
		t.Fatalf("collector framed %d messages, want 3: %q", len(msgs), msgs)
	}
	want := `<84>1 2026-03-01T11:00:00.123456Z gw_1 keygate - auth.failure [keygate@32473 seq="7" client="10.0.0.5" resource="POST /v1/x=1|2\\3\]\"` + "\uFFFD" + `CEF:0|forged|event" reason="invalid_api_key" reason="too_many" key_id="key_a" model="gpt=4o"] {"seq":7}`
	for _, m := range msgs {
		if m != want {
			t.Fatalf("message\n%q\nwant\n%q", m, want)
		}
	}
}

// tlsCollector serves TLS with a certificate for 127.0.0.1 signed by a
// CA made for the test, and returns the CA's pool.
func tlsCollector(t *testing.T) (net.Listener, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test syslog CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "collector"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return ln, pool
}

func TestTLSVerifiesTheCollector(t *testing.T) {
	ln, pool := tlsCollector(t)
	got := make(chan string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if m, err := readFrame(bufio.NewReader(c)); err == nil {
					got <- m
				}
			}()
		}
	}()
	// Without the collector's CA the certificate is not trusted: nothing
	// is sent in the clear or to an impostor.
	if _, err := siem.Dial(t.Context(), siem.Options{URL: "tls://" + ln.Addr().String()}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unverified collector was accepted: %v", err)
	}
	w, err := siem.Dial(t.Context(), siem.Options{URL: "tls://" + ln.Addr().String(), RootCAs: pool, Format: siem.FormatCEF, Hostname: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Send(t.Context(), nasty()); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if _, ext := parseCEF(t, m); ext["cs1"] != "key_a" {
			t.Fatalf("over TLS: %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived over TLS")
	}
}

func TestReconnectsAfterTheCollectorRestarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	w, err := siem.Dial(t.Context(), siem.Options{URL: "tcp://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c, _ := ln.Accept()
	c.Close()
	ln.Close()
	// The first sends after the collector went away fail (the kernel may
	// accept one write into a dead socket); the writer then dials again.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	failed := false
	for i := 0; i < 20 && !failed; i++ {
		failed = w.Send(ctx, nasty()) != nil
		time.Sleep(10 * time.Millisecond)
	}
	if !failed {
		t.Fatal("sending to a stopped collector never failed")
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	defer ln2.Close()
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	if err := w.Send(ctx, nasty()); err != nil {
		t.Fatalf("after the collector came back: %v", err)
	}
}

func TestDialRefusesBadOptions(t *testing.T) {
	for _, o := range []siem.Options{
		{URL: "unix:///dev/log"}, {URL: "udp://host"}, {URL: "udp://127.0.0.1:514", Format: "leef"}, {URL: "udp://127.0.0.1:514", Facility: 24},
	} {
		if _, err := siem.Dial(t.Context(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
