package main

import (
	"hash/crc32"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestFailedAuthenticationCannotLockOthersOut: failures are throttled per
// failing source, and a credential that verifies is never refused because
// of them. Junk JWTs from one address do not lock out access tokens from
// any address; bad keys from one address (an office behind one NAT) do not
// lock out the valid keys from it; guesses at one key prefix from many
// addresses do not lock out that key. The failing sources themselves get
// 429 with Retry-After, and the failures still raise the detectors' alert.
func TestFailedAuthenticationCannotLockOthersOut(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.TrustedProxies = []string{"127.0.0.1/32"} // X-Forwarded-For stands for distinct client addresses
	cfg.Limits.AuthFailures = 4
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "victim")
	other := in.createKey("--name", "neighbour")
	code, tok := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "subject_token": {key}})
	if code != 200 || tok.AccessToken == "" {
		t.Fatalf("token exchange: %d %+v", code, tok)
	}
	chat := in.addrs.Gateway + "/v1/chat/completions"
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	from := func(addr, cred string) (int, string) {
		return postJSON(t, chat, cred, body, "X-Forwarded-For", addr)
	}

	// Fourteen junk tokens from one address: every JWT starts with the
	// same characters, which must not make them one identity.
	parts := strings.Split(tok.AccessToken, ".")
	junk := parts[0] + "." + parts[1] + ".c2lnbmF0dXJlLW5vdC12YWxpZA"
	var statuses []int
	for range 14 {
		st, _ := from("203.0.113.7", junk)
		statuses = append(statuses, st)
	}
	if statuses[0] != 401 || statuses[13] != 429 {
		t.Fatalf("14 junk tokens from one address: %v; want 401s, then 429 for that address", statuses)
	}
	for _, addr := range []string{"198.51.100.9", "203.0.113.7"} {
		if st, b := from(addr, tok.AccessToken); st != 200 {
			t.Fatalf("a valid access token from %s after junk tokens from 203.0.113.7: %d %s", addr, st, b)
		}
	}

	// Eleven bad keys from one address, then the valid keys behind it.
	bad := "kg_live_" + strings.Repeat("A", 43) + "AAAAAA"
	statuses = statuses[:0]
	for range 11 {
		st, _ := from("192.0.2.50", bad)
		statuses = append(statuses, st)
	}
	if statuses[0] != 401 || statuses[10] != 429 {
		t.Fatalf("11 bad keys from one address: %v", statuses)
	}
	for _, k := range []string{key, other} {
		if st, b := from("192.0.2.50", k); st != 200 {
			t.Fatalf("a valid key from an address whose other users failed: %d %s", st, b)
		}
	}
	st, b := from("192.0.2.50", bad)
	if st != 429 || !strings.Contains(b, "too_many_auth_failures") {
		t.Fatalf("the failing source itself: %d %s", st, b)
	}

	// Well-formed guesses at the victim's prefix from many addresses: the
	// prefix is throttled for failures, the victim's key still passes.
	statuses = statuses[:0]
	for i := range 8 {
		st, _ := from("100.64.0."+string(rune('1'+i)), samePrefix(t, key, i))
		statuses = append(statuses, st)
	}
	if statuses[0] != 401 || statuses[7] != 429 {
		t.Fatalf("8 guesses at one prefix from 8 addresses: %v", statuses)
	}
	if st, b := from("100.64.0.99", key); st != 200 {
		t.Fatalf("the victim's own key after guesses at its prefix: %d %s", st, b)
	}

	// The token endpoint answers a throttled source in OAuth's shape.
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "subject_token": {bad}}
	req, _ := http.NewRequest("POST", in.addrs.Gateway+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "192.0.2.50")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("token exchange from a throttled address: %d %v", resp.StatusCode, resp.Header)
	}
	if up.openai.RequestCount() != 5 {
		t.Fatalf("upstream saw %d requests, want the 5 authenticated ones", up.openai.RequestCount())
	}
}

// samePrefix returns a well-formed keygate key that shares key's public
// prefix (kg_live_4fTq) but not its secret: the kind of guess a prefix
// throttle exists for. The checksum is the documented one: base62 CRC-32
// of everything before it.
func samePrefix(t *testing.T, key string, n int) string {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	sep := strings.LastIndexByte(key, '_')
	body := []byte(key[:len(key)-6])
	body[sep+10] = alphabet[(strings.IndexByte(alphabet, body[sep+10])+1+n)%62]
	v := crc32.ChecksumIEEE(body)
	var c [6]byte
	for i := 5; i >= 0; i-- {
		c[i] = alphabet[v%62]
		v /= 62
	}
	return string(body) + string(c[:])
}
