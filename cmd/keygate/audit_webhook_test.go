package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhookReceiver checks X-Keygate-Signature as the README tells a receiver
// to, and keeps each accepted body on a line of its file.
type webhookReceiver struct {
	mu       sync.Mutex
	keys     [][]byte
	file     string
	accepted int
	refused  int
}

func (rc *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got, ok := strings.CutPrefix(r.Header.Get("X-Keygate-Signature"), "sha256=")
	sig, err := hex.DecodeString(got)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	valid := false
	for _, k := range rc.keys {
		m := hmac.New(sha256.New, k)
		m.Write(body)
		valid = valid || (ok && err == nil && hmac.Equal(sig, m.Sum(nil)))
	}
	if !valid {
		rc.refused++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	f, err := os.OpenFile(rc.file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	f.Write(body) // keygate ends every body with a newline
	rc.accepted++
}

func (rc *webhookReceiver) trust(hexKeys ...string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.keys = nil
	for _, h := range hexKeys {
		k, _ := hex.DecodeString(strings.TrimSpace(h))
		rc.keys = append(rc.keys, k)
	}
}

func (rc *webhookReceiver) counts() (int, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.accepted, rc.refused
}

// TestAuditWebhookKeyAndCopy: an operator reads the audit webhook's signing
// key with `keygate audit webhook-key show`, the receiver checks every body
// with it, a rotated key signs the next post at once, and what the
// receiver kept (events and checkpoints) is a copy `audit verify --against`
// holds the database to. The key never reaches keygate's output.
func TestAuditWebhookKeyAndCopy(t *testing.T) {
	dir := t.TempDir()
	rc := &webhookReceiver{file: filepath.Join(dir, "received.jsonl")}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	cfg := testConfig(t, dir)
	cfg.Audit.Webhook = srv.URL
	cfg.Egress.Allow = []string{"127.0.0.1"} // the receiver runs on loopback
	cfg.Audit.CheckpointInterval = 100 * time.Millisecond
	cfg.Limits.AuthFailures = 0
	in := start(t, cfg, "")
	first := strings.TrimSpace(in.mustCLI(nil, "", "audit", "webhook-key", "show"))
	rc.trust(first)
	refuse := func(n int) {
		for range n {
			postJSON(t, in.addrs.Gateway+"/v1/chat/completions", "kg_live_not-a-key", `{"model":"gpt-4o-mini"}`)
		}
	}
	refuse(5)
	waitAccepted := func(more int, what string) {
		t.Helper()
		base, _ := rc.counts()
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if a, _ := rc.counts(); a >= base+more {
				return
			}
			if time.Now().After(end) {
				t.Fatal(what)
			}
		}
	}
	waitAccepted(1, "no signed batch reached the receiver")

	second := strings.TrimSpace(in.mustCLI(nil, "", "audit", "webhook-key", "rotate"))
	if second == first || len(second) != 64 {
		t.Fatalf("rotation printed %q", second)
	}
	rc.trust(second) // the receiver drops the old key at once
	refuse(5)
	waitAccepted(1, "no batch signed with the rotated key reached the receiver")
	time.Sleep(300 * time.Millisecond) // a time-based checkpoint
	in.stop()
	if _, refused := rc.counts(); refused != 0 {
		// Batches signed before the receiver learnt a key are refused and sent again;
		// none may be refused once it holds the current key.
		t.Logf("%d posts were refused and sent again", refused)
	}
	for _, k := range []string{first, second} {
		if strings.Contains(in.stdout.String()+in.stderr.String(), k) {
			t.Fatal("a webhook signing key reached keygate's output")
		}
	}

	again := start(t, cfg, in.admin)
	v := again.verify("--against", rc.file)
	again.stop()
	if !v.OK || len(v.Nodes) != 1 || v.Nodes[0].CopyEvents != v.Nodes[0].Events || v.Nodes[0].CopyCheckpoint == 0 {
		t.Fatalf("verify against the receiver's copy: %+v", v)
	}
}
