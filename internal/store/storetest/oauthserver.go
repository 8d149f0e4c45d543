package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testOAuthServer: a registered client is read back on another node and
// its ID is unique; an authorization code is spent exactly once across
// nodes and concurrent callers, and a replay returns the code as first
// spent, naming the family to revoke.
func testOAuthServer(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	a, b := Open(t, url), Open(t, url)
	cl := store.OAuthClient{ID: "mcp_1", Name: "Claude Code", RedirectURIs: []string{"http://127.0.0.1:33418/callback", "https://app.example/cb"},
		ClientURI: "https://claude.ai", CreatedBy: "192.0.2.7", CreatedAt: at(0)}
	must(t, a.CreateOAuthClient(ctx(t), cl))
	if err := b.CreateOAuthClient(ctx(t), cl); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second client with the same ID: %v, want ErrConflict", err)
	}
	got, err := b.GetOAuthClient(ctx(t), "mcp_1")
	must(t, err)
	if got.Name != cl.Name || len(got.RedirectURIs) != 2 || got.RedirectURIs[1] != "https://app.example/cb" || got.ClientURI != cl.ClientURI ||
		got.CreatedBy != cl.CreatedBy || !got.CreatedAt.Equal(stored(cl.CreatedAt)) {
		t.Fatalf("client read back as %+v", got)
	}
	if _, err := a.GetOAuthClient(ctx(t), "mcp_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown client: %v, want ErrNotFound", err)
	}

	code := store.OAuthCode{Hash: []byte("code-hash-1"), ClientID: "mcp_1", RedirectURI: "http://127.0.0.1:33418/callback", Challenge: "chal",
		Resource: "http://127.0.0.1:8787/mcp", UserID: "usr_1", KeyID: "key_1", Scope: []byte(`{"tools":["github/*"]}`), AMR: []string{"pwd", "otp"},
		CreatedAt: at(0), ExpiresAt: at(time.Minute)}
	must(t, a.PutOAuthCode(ctx(t), code))
	if err := b.PutOAuthCode(ctx(t), code); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second code with the same hash: %v, want ErrConflict", err)
	}
	if _, err := a.UseOAuthCode(ctx(t), []byte("unknown"), "fam_x", at(time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown code: %v, want ErrNotFound", err)
	}
	// Eight spends at once on two nodes: one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, reused := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			c, err := s.UseOAuthCode(ctx(t), code.Hash, "fam_"+string(rune('a'+i)), at(time.Second))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				if c.KeyID != "key_1" || c.Resource != code.Resource || c.Challenge != "chal" || string(c.Scope) != string(code.Scope) ||
					len(c.AMR) != 2 || c.UsedAt == nil || !c.ExpiresAt.Equal(stored(code.ExpiresAt)) {
					t.Errorf("spent code read back as %+v", c)
				}
			case errors.Is(err, store.ErrCodeReused):
				reused++
			default:
				t.Errorf("spend: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || reused != 7 {
		t.Fatalf("%d spends won and %d were told of reuse, want 1 and 7", wins, reused)
	}
	c, err := b.UseOAuthCode(ctx(t), code.Hash, "fam_late", at(2*time.Second))
	if !errors.Is(err, store.ErrCodeReused) || c.FamilyID == "" || c.FamilyID == "fam_late" || c.UserID != "usr_1" {
		t.Fatalf("a replay: %v %+v, want ErrCodeReused naming the first spend's family", err, c)
	}
	// Codes long expired are forgotten when a new one is made.
	must(t, a.PutOAuthCode(ctx(t), store.OAuthCode{Hash: []byte("code-hash-2"), ClientID: "mcp_1", RedirectURI: "x", Challenge: "c", Resource: "r",
		UserID: "usr_1", KeyID: "key_1", Scope: []byte(`{}`), CreatedAt: at(48 * time.Hour), ExpiresAt: at(48*time.Hour + time.Minute)}))
	if _, err := b.UseOAuthCode(ctx(t), code.Hash, "fam_z", at(49*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a code expired a day ago: %v, want ErrNotFound", err)
	}
}
