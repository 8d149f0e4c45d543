package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/store/storetest"
)

// TestRevocationReachesEveryNodeWithinASecond: two keygate processes share
// PostgreSQL; a key revoked (through the admin API or by its holder at
// /oauth/revoke) or suspended through one is refused by the other within a
// second, though each caches verified keys for 10 s.
func TestRevocationReachesEveryNodeWithinASecond(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two keygate processes")
	}
	db := storetest.PostgresURL(t)
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	env := map[string]string{
		"KEYGATE_DATABASE": db, "KEYGATE_KEK": randomKeyURL(t),
		"KEYGATE_PROVIDER_REFRESH": "200ms", "KEYGATE_KEY_CACHE_TTL": "10s",
	}
	var nodes []*proc
	for i := range 2 {
		nodes = append(nodes, startProc(t, env, "serve", "--data-dir", filepath.Join(t.TempDir(), fmt.Sprint(i)), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"))
	}
	in := &instance{t: t, admin: nodes[0].admin}
	in.addrs.Admin = nodes[0].adminU
	in.register(up)
	other := gatewayOf(t, nodes[1])
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	// An access token exchanged on node 2 and revoked through node 1.
	tokKey := in.createKey("--name", "token-holder")
	_, tok := exchange(t, other, url.Values{"grant_type": {grantTE}, "subject_token": {tokKey}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}})
	for ready := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, _ := postJSON(t, other+"/v1/chat/completions", tok.AccessToken, chat)
		if code == 200 {
			break
		}
		if time.Now().After(ready) {
			t.Fatalf("the token on node 2: %d", code)
		}
	}
	if code, _ := postForm(t, gatewayOf(t, nodes[0])+"/oauth/revoke", url.Values{"token": {tok.AccessToken}}, ""); code != 200 {
		t.Fatalf("revoke through node 1: %d", code)
	}
	start := time.Now()
	for {
		code, _ := postJSON(t, other+"/v1/chat/completions", tok.AccessToken, chat)
		if code == 401 {
			t.Logf("token revocation through node 1 took effect on node 2 after %v", time.Since(start))
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("node 2 still accepted the revoked token after a second (%d)", code)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, action := range []string{"suspend", "revoke", "oauth-revoke"} {
		key := in.createKey("--name", "victim-"+action)
		deadline := time.Now().Add(15 * time.Second)
		for { // the other node serves the key (and has cached it)
			if code, _ := postJSON(t, other+"/v1/chat/completions", key, chat); code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the second node never served the key")
			}
			time.Sleep(50 * time.Millisecond)
		}
		start := time.Now()
		if action == "oauth-revoke" {
			// The key's holder revokes it through node 1's gateway.
			if code, b := postForm(t, gatewayOf(t, nodes[0])+"/oauth/revoke", url.Values{"token": {key}}, ""); code != 200 {
				t.Fatalf("/oauth/revoke through node 1: %d %s", code, b)
			}
		} else {
			in.mustCLI(nil, "", "key", action, "victim-"+action)
		}
		for {
			code, _ := postJSON(t, other+"/v1/chat/completions", key, chat)
			if code == 401 || code == 403 {
				t.Logf("%s through node 1 took effect on node 2 after %v (status %d)", action, time.Since(start), code)
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s through node 1: node 2 still answered %d after a second", action, code)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
