package audit

import (
	"bufio"
	"context"
	"crypto/hmac"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// TestSyslogCarriesCheckpoints: over UDP and TCP a checkpoint is one
// audit.checkpoint message whose structured data names it and whose body is
// the line a file copy holds.
func TestSyslogCarriesCheckpoints(t *testing.T) {
	_, priv := testKey(t)
	evs, cps := linkedTrail(t, priv, "node]a", 2, 2)
	check := func(msg string) {
		t.Helper()
		if !strings.HasPrefix(msg, "<85>1 ") || !strings.Contains(msg, " keygate - audit.checkpoint [") { // authpriv.notice
			t.Fatalf("header: %q", msg)
		}
		params, body := parseSD(t, msg)
		if params["seq"][0] != "2" || params["hash"][0] != evs[1].Hash || params["node"][0] != "node]a" || params["key_id"][0] != cps[0].KeyID {
			t.Fatalf("params %v", params)
		}
		c, err := ReadCopy(strings.NewReader(body+"\n"), "syslog")
		if err != nil || len(c.Checkpoints) != 1 || !sameCheckpoint(c.Checkpoints[0], cps[0]) {
			t.Fatalf("body %q: %v", body, err)
		}
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no local UDP: %v", err)
	}
	defer pc.Close()
	s, err := DialSyslog(t.Context(), SyslogOptions{Network: "udp", Addr: pc.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriteCheckpoint(t.Context(), cps[0]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	check(string(buf[:n]))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan string, 4)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			f, err := readSyslogFrame(r)
			if err != nil {
				close(frames)
				return
			}
			frames <- string(f)
		}
	}()
	ts, err := DialSyslog(t.Context(), SyslogOptions{Network: "tcp", Addr: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Write(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if err := ts.WriteCheckpoint(t.Context(), cps[0]); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	var got []string
	for f := range frames {
		got = append(got, f)
	}
	if len(got) != 3 {
		t.Fatalf("%d frames, want 2 events and a checkpoint", len(got))
	}
	check(got[2])
}

// TestWebhookCarriesCheckpointsAndRotatedKeys: a checkpoint is posted as a
// signed one-element array the receiver can keep beside the events; with a
// KeySource, a rotated key signs the next post.
func TestWebhookCarriesCheckpointsAndRotatedKeys(t *testing.T) {
	_, priv := testKey(t)
	evs, cps := linkedTrail(t, priv, "n", 2, 2)
	var mu sync.Mutex
	key := "first-test-key"
	var kept strings.Builder // what a receiver writing each body on a line keeps
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if !hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(SignBody([]byte(key), body))) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		kept.Write(body)
	}))
	defer srv.Close()
	current := secret.New(key)
	s, err := NewWebhookSink(WebhookOptions{URL: srv.URL, KeySource: func(context.Context) (secret.String, error) {
		mu.Lock()
		defer mu.Unlock()
		return current, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	key, current = "rotated-test-key", secret.New("rotated-test-key")
	mu.Unlock()
	if err := s.WriteCheckpoint(t.Context(), cps[0]); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	c, err := ReadCopy(strings.NewReader(kept.String()), "receiver")
	mu.Unlock()
	if err != nil || len(c.Events) != 2 || len(c.Checkpoints) != 1 || !sameCheckpoint(c.Checkpoints[0], cps[0]) {
		t.Fatalf("the receiver's copy: %v", err)
	}

	failing, _ := NewWebhookSink(WebhookOptions{URL: srv.URL, KeySource: func(context.Context) (secret.String, error) {
		return secret.String{}, errors.New("vault down")
	}})
	if err := failing.WriteCheckpoint(t.Context(), cps[0]); err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Fatalf("a post without a key: %v", err)
	}
}
