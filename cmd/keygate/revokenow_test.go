package main

import (
	"net/url"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestEveryRevocationIsImmediateOnItsNode: whatever path revokes a
// credential (POST /oauth/revoke of a key, of a refresh token or of an
// access token; keygate key revoke), the very next request to the node that
// took it is refused, although the node had the credential cached. Each
// path is tried ten times: a race with the revocation poll would let some
// through.
func TestEveryRevocationIsImmediateOnItsNode(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	in.register(newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{}))
	gw := in.addrs.Gateway
	chat := func(cred string) int {
		code, _ := postJSON(t, gw+"/v1/chat/completions", cred, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
		return code
	}
	xchg := func(key string) tokenAnswer {
		code, a := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}})
		if code != 200 {
			t.Fatalf("exchange: %d %+v", code, a)
		}
		return a
	}
	revoke := func(cred string) {
		if code, b := postForm(t, gw+"/oauth/revoke", url.Values{"token": {cred}}, ""); code != 200 {
			t.Fatalf("revoke: %d %s", code, b)
		}
	}
	for i := range 10 {
		// A key revoked by its holder, and a token exchanged for it.
		key := in.createKey("--name", "holder-"+string(rune('a'+i)))
		tok := xchg(key)
		if chat(key) != 200 || chat(tok.AccessToken) != 200 {
			t.Fatal("the key and its token do not work before the revocation")
		}
		revoke(key)
		if code := chat(key); code != 401 {
			t.Fatalf("trial %d: the request right after /oauth/revoke of its key answered %d", i, code)
		}
		if code := chat(tok.AccessToken); code != 401 {
			t.Fatalf("trial %d: a token of a key revoked through /oauth/revoke answered %d", i, code)
		}

		// A refresh token revoked: its family's access tokens stop.
		key2 := in.createKey("--name", "family-"+string(rune('a'+i)))
		tok2 := xchg(key2)
		if chat(tok2.AccessToken) != 200 {
			t.Fatal("the token does not work before the revocation")
		}
		revoke(tok2.RefreshToken)
		if code := chat(tok2.AccessToken); code != 401 {
			t.Fatalf("trial %d: an access token of a revoked refresh family answered %d", i, code)
		}
		if code := chat(key2); code != 200 {
			t.Fatalf("trial %d: revoking a token family must not revoke its key: %d", i, code)
		}

		// An access token revoked on its own.
		tok3 := xchg(key2)
		if chat(tok3.AccessToken) != 200 {
			t.Fatal("the token does not work before the revocation")
		}
		revoke(tok3.AccessToken)
		if code := chat(tok3.AccessToken); code != 401 {
			t.Fatalf("trial %d: a revoked access token answered %d", i, code)
		}

		// The admin CLI.
		in.mustCLI(nil, "", "key", "revoke", "family-"+string(rune('a'+i)))
		if code := chat(key2); code != 401 {
			t.Fatalf("trial %d: keygate key revoke: the next request answered %d", i, code)
		}
	}
}
