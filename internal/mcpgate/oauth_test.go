package mcpgate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/mcpoauth"
)

// memGrants is an in-memory Grants, as two nodes sharing a vault see it.
type memGrants struct {
	mu sync.Mutex
	m  map[string]mcpoauth.Grant
}

func (g *memGrants) Grant(_ context.Context, server, user string) (*mcpoauth.Grant, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.m[server+"/"+user]
	if !ok {
		return nil, mcpoauth.ErrNoGrant
	}
	return &gr, nil
}

func (g *memGrants) PutGrant(_ context.Context, server, user string, gr *mcpoauth.Grant) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.m[server+"/"+user] = *gr
	return nil
}

func randText(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// tokenEndpoint is an authorization server's token endpoint that honours
// each refresh token once, slowly, and counts the refreshes.
func tokenEndpoint(t *testing.T, valid map[string]bool, mu *sync.Mutex, refreshes *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := r.PostFormValue("refresh_token")
		mu.Lock()
		ok := r.PostFormValue("grant_type") == "refresh_token" && valid[rt]
		delete(valid, rt)
		next := "rt-" + randText(t)
		if ok {
			valid[next] = true
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		refreshes.Add(1)
		time.Sleep(50 * time.Millisecond)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + randText(t), "token_type": "Bearer", "expires_in": 3600, "refresh_token": next})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestUserTokenRefresh: a token near expiry is refreshed once however many
// calls want it at the same moment; the new tokens are kept; a refresh
// another node made first is picked up from the store instead of failing;
// a refused refresh asks the user to authorize again.
func TestUserTokenRefresh(t *testing.T) {
	var mu sync.Mutex
	var refreshes atomic.Int32
	first := "rt-" + randText(t)
	valid := map[string]bool{first: true}
	as := tokenEndpoint(t, valid, &mu, &refreshes)
	grants := &memGrants{m: map[string]mcpoauth.Grant{}}
	old := mcpoauth.Grant{AccessToken: "at-old", RefreshToken: first, Expiry: time.Now().Add(30 * time.Second),
		ClientID: "c", ClientSecret: "s", TokenURL: as.URL, Server: "mcp_1"}
	_ = grants.PutGrant(context.Background(), "mcp_1", "usr_a", &old)
	node := func() *userToken {
		g := New(Options{Grants: grants})
		cfg := &ServerConfig{ID: "mcp_1", Name: "notes", URL: as.URL + "/mcp", AllowPrivate: true}
		return &userToken{g: g, cfg: cfg, user: "usr_a"}
	}
	a := node()
	var wg sync.WaitGroup
	toks := make([]string, 20)
	errs := make([]error, 20)
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = a.token(context.Background()) })
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] == "at-old" || toks[i] != toks[0] {
			t.Fatalf("call %d: %q %v (first call: %q)", i, toks[i], errs[i], toks[0])
		}
	}
	if n := refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes for 20 concurrent calls, want 1", n)
	}
	kept, _ := grants.Grant(context.Background(), "mcp_1", "usr_a")
	if kept.AccessToken != toks[0] || kept.RefreshToken == first {
		t.Fatal("the refreshed tokens were not kept")
	}

	// Another node still holds the first grant in memory; its refresh is
	// refused (the refresh token was rotated), so it reads the store and
	// uses what the first node kept.
	b := node()
	b.grant, b.readAt = &old, time.Now()
	if tok, err := b.token(context.Background()); err != nil || tok != toks[0] {
		t.Fatalf("the second node: %q %v, want the first node's %q", tok, err, toks[0])
	}

	// A refresh the server refuses, with nothing newer stored, ends the
	// authorization: the user is asked to authorize again.
	dead := old
	dead.RefreshToken = "rt-revoked"
	_ = grants.PutGrant(context.Background(), "mcp_1", "usr_a", &dead)
	c := node()
	_, err := c.token(context.Background())
	var are *AuthRequiredError
	if !errors.As(err, &are) || !are.Expired {
		t.Fatalf("a refused refresh: %v", err)
	}
}
