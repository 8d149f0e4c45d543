package token_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/token"
)

// FuzzVerify holds token verification to its promise on anything a client
// can send as a bearer token: it never panics, and nothing verifies but the
// exact tokens the authority issued. Seeds include a real token and its
// parts recombined.
func FuzzVerify(f *testing.F) {
	_, n := rotatedNode(f)
	good := n.issue(f, token.Claims{Subject: "key_fuzz", ClientID: "fuzz", Scope: token.Scope{Models: []string{"gpt-4o-mini"}}})
	parts := strings.Split(good, ".")
	for _, s := range []string{good, "", ".", "..", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		"eyJhbGciOiJub25lIn0." + parts[1] + ".", strings.Repeat("A", 5000), good + "x", "x" + good,
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-2] + "AA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := n.auth.Verify(ctx(t), raw, t0)
		if err == nil && raw != good {
			t.Fatalf("a token keygate did not issue verified: %q -> %+v", raw, claims)
		}
		_ = token.LooksLikeJWT(raw)
		_ = token.IsRefresh(raw)
	})
}
