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
	"time"

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

// TestTokenProxyCredentials: minted credentials work until they expire;
// Gemini's x-goog-api-key and ?key= are accepted and never forwarded.
func TestTokenProxyCredentials(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			json.NewEncoder(w).Encode(map[string]any{"access_token": "eyJaccess", "refresh_token": "kgr_1", "expires_in": 900})
			return
		}
		mu.Lock()
		seen = append(seen, r.URL.String()+" "+r.Header.Get("X-Goog-Api-Key")+" "+r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer gw.Close()
	p, err := startTokenProxy(context.Background(), gw.URL, secret.New("kg_live_run-key-for-test"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	do := func(path string, hdr ...string) int {
		req, _ := http.NewRequest("POST", p.URL()+path, strings.NewReader("{}"))
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	fresh, expired := p.mint(time.Hour), p.mint(-time.Second)
	for _, c := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/v1/messages", []string{"X-Api-Key", fresh}, 200},
		{"/v1/messages", []string{"X-Api-Key", expired}, 401},
		{"/v1beta/models/gemini-2.5-flash:generateContent", []string{"X-Goog-Api-Key", p.local}, 200},
		{"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=" + p.local, nil, 200},
		{"/v1beta/models/gemini-2.5-flash:generateContent?key=wrong", nil, 401},
	} {
		if got := do(c.path, c.hdr...); got != c.want {
			t.Errorf("%s %v: %d, want %d", c.path, c.hdr, got, c.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("the gateway saw %q", seen)
	}
	for _, s := range seen {
		if strings.Contains(s, "kgl_") || !strings.HasSuffix(s, " Bearer eyJaccess") {
			t.Errorf("the gateway saw %q: want only the access token", s)
		}
	}
	if !strings.Contains(seen[2], "alt=sse") || strings.Contains(seen[2], "key=") {
		t.Errorf("the query %q: want alt kept and key gone", seen[2])
	}
}
