package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// TestTokenProxy: the command's local credential works only on the
// loopback gateway; the real gateway sees access tokens, refreshed before
// they expire, never the local credential or the key.
func TestTokenProxy(t *testing.T) {
	var mu sync.Mutex
	grants := []string{}
	seen := []string{}
	n := 0
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/oauth/token":
			r.ParseForm()
			grants = append(grants, r.PostForm.Get("grant_type"))
			n++
			// 30 s tokens: under a minute, so every use refreshes.
			json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("eyJtoken%d", n), "refresh_token": fmt.Sprintf("kgr_%d", n), "expires_in": 30})
		case "/oauth/revoke":
			r.ParseForm()
			grants = append(grants, "revoke:"+r.PostForm.Get("token"))
		default:
			seen = append(seen, r.Header.Get("Authorization")+" "+r.Header.Get("X-Api-Key")+" "+r.URL.Path)
			w.Write([]byte(`{"ok":true}`))
		}
	}))
	defer gw.Close()
	p, err := startTokenProxy(context.Background(), gw.URL, secret.New("kg_live_run-key-for-test"), "")
	if err != nil {
		t.Fatal(err)
	}
	call := func(cred string) int {
		req, _ := http.NewRequest("POST", p.URL()+"/v1/chat/completions", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := call("something-else"); c != 401 {
		t.Fatalf("a wrong local credential: %d", c)
	}
	for range 2 {
		if c := call(p.local); c != 200 {
			t.Fatalf("the local credential: %d", c)
		}
	}
	p.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || !strings.HasPrefix(seen[0], "Bearer eyJtoken2  /v1/chat/completions") || !strings.HasPrefix(seen[1], "Bearer eyJtoken3 ") {
		t.Fatalf("the gateway saw %q", seen)
	}
	want := []string{"urn:ietf:params:oauth:grant-type:token-exchange", "refresh_token", "refresh_token", "revoke:kgr_3"}
	if strings.Join(grants, ",") != strings.Join(want, ",") {
		t.Fatalf("grants %v, want %v", grants, want)
	}
	for _, s := range seen {
		if strings.Contains(s, "kg_live_") || strings.Contains(s, p.local) {
			t.Fatal("the key or the local credential reached the gateway")
		}
	}
}
