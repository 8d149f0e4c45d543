package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestOutboundLeakCheckThroughTheBinary: with keygate's defaults, a prompt
// carrying a secret stored in the vault through the CLI, or a provider key
// keygate holds, is refused before it reaches the provider, in both
// dialects; a secret stored after start is watched within a second (the
// change follower rebuilds the check).
func TestOutboundLeakCheckThroughTheBinary(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "agent")
	dbPassword := canary("db-password")
	in.mustCLI(map[string]string{"V": dbPassword}, "", "secret", "put", "app/db-password", "--from-env", "V")
	gw := in.addrs.Gateway
	oa := func(content string) string {
		return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + content + `"}]}`
	}
	an := func(content string) string {
		return `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"` + content + `"}]}`
	}
	waitWithin(t, 2*time.Second, "the new secret watched", func() bool {
		code, _ := postJSON(t, gw+"/v1/chat/completions", key, oa("the password is "+dbPassword))
		return code == 400
	})
	before := up.openai.RequestCount() + up.anthropic.RequestCount()
	for _, tc := range []struct{ path, body string }{
		{"/v1/messages", an("the password is " + dbPassword)},
		{"/v1/chat/completions", oa("here is the upstream key " + up.anthropicKey)},
		{"/v1/messages", an("b64 " + base64.StdEncoding.EncodeToString([]byte(dbPassword)))},
	} {
		code, body := postJSON(t, gw+tc.path, key, tc.body)
		if code != 400 || !strings.Contains(body, "vault") || strings.Contains(body, dbPassword) {
			t.Fatalf("%s: %d %s", tc.path, code, body)
		}
	}
	if n := up.openai.RequestCount() + up.anthropic.RequestCount(); n != before {
		t.Fatalf("%d requests carrying credentials reached the providers", n-before)
	}
	if code, body := postJSON(t, gw+"/v1/chat/completions", key, oa("hello")); code != 200 {
		t.Fatalf("a clean prompt: %d %s", code, body)
	}
}

// TestGitHubLeakReportRevokesTheKey: with leaks.github enabled, a report
// signed by the reporter's published key revokes the reported keygate key
// on the spot and is answered true_positive; a report with a bad signature
// changes nothing.
func TestGitHubLeakReportRevokesTheKey(t *testing.T) {
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&signer.PublicKey)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"public_keys": []map[string]any{{"key_identifier": "kid-1", "key": pubPEM, "is_current": true}}})
	}))
	t.Cleanup(keys.Close)

	cfg := testConfig(t, t.TempDir())
	cfg.Leaks.GitHub.Enabled, cfg.Leaks.GitHub.KeysURL = true, keys.URL
	cfg.Egress.Allow = []string{"127.0.0.1"}
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "leaked")
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	if code, _ := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, chat); code != 200 {
		t.Fatalf("the key before the report: %d", code)
	}
	report, _ := json.Marshal([]map[string]string{{"token": key, "type": "keygate_api_key", "url": "https://github.com/example/repo/blob/main/.env", "source": "content"}})
	post := func(sig string) (int, string) {
		req, _ := http.NewRequest("POST", in.addrs.Gateway+"/leaks/github", strings.NewReader(string(report)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Github-Public-Key-Identifier", "kid-1")
		req.Header.Set("Github-Public-Key-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	digest := sha256.Sum256(report)
	good, err := ecdsa.SignASN1(rand.Reader, signer, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	if code, _ := post(base64.StdEncoding.EncodeToString(bad)); code != 401 {
		t.Fatalf("a badly signed report: %d", code)
	}
	if code, _ := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, chat); code != 200 {
		t.Fatalf("the key after a badly signed report: %d", code)
	}
	code, body := post(base64.StdEncoding.EncodeToString(good))
	if code != 200 || !strings.Contains(body, "true_positive") || strings.Contains(body, key) {
		t.Fatalf("a signed report: %d %s", code, body)
	}
	if code, _ := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, chat); code != 401 {
		t.Fatalf("the reported key still answered %d", code)
	}
}
