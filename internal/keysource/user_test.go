package keysource

import (
	"testing"

	"github.com/keygate/keygate/internal/store"
)

// TestCompileUser: a key acts for its owner, or outside teams for the user
// who created it; a team's shared key, and one an admin credential
// created, act for no one.
func TestCompileUser(t *testing.T) {
	for _, c := range []struct {
		name string
		k    store.Key
		want string
	}{
		{"owned in a team", store.Key{Team: "payments", Owner: "usr_a", CreatedBy: "usr_b"}, "usr_a"},
		{"a team's shared key", store.Key{Team: "payments", CreatedBy: "usr_b"}, ""},
		{"no team, made by a user", store.Key{CreatedBy: "usr_b"}, "usr_b"},
		{"no team, made by an admin credential", store.Key{CreatedBy: "adm_1"}, ""},
	} {
		if got := Compile(c.k, nil, nil).User; got != c.want {
			t.Errorf("%s: User = %q, want %q", c.name, got, c.want)
		}
	}
}
