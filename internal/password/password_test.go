package password_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/password"
)

// cheap keeps the tests fast; the cost is in the PHC string either way.
var cheap = password.Params{Memory: 64, Time: 1, Threads: 1}

func TestHashVerify(t *testing.T) {
	h, err := password.Hash("correct horse battery staple", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(h, "horse") {
		t.Fatalf("hash %q is not an argon2id PHC string of the password", h)
	}
	if err := password.Verify("correct horse battery staple", h); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	for _, wrong := range []string{"correct horse battery stapl", "", "Correct horse battery staple"} {
		if err := password.Verify(wrong, h); !errors.Is(err, password.ErrMismatch) {
			t.Fatalf("wrong password %q: %v, want ErrMismatch", wrong, err)
		}
	}
	h2, _ := password.Hash("correct horse battery staple", cheap)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if !password.NeedsRehash(h, password.Default) || password.NeedsRehash(h, cheap) {
		t.Fatal("NeedsRehash does not compare the stored parameters")
	}
}

func TestVerifyRefusesBrokenHashes(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		err := password.Verify("x", h)
		if err == nil || errors.Is(err, password.ErrMismatch) {
			t.Fatalf("hash %q: %v, want an unreadable-hash error", h, err)
		}
	}
}

func TestCheck(t *testing.T) {
	if password.Check("short") == nil {
		t.Fatal("a 5-character password was accepted")
	}
	if password.Check(strings.Repeat("x", password.MaxLength+1)) == nil {
		t.Fatal("an over-long password was accepted")
	}
	if err := password.Check("a long enough passphrase"); err != nil {
		t.Fatal(err)
	}
}
