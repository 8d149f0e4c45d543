package mcpauth

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/store"
)

func TestDocumentLifetime(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                       documentTTL,
		"max-age=120":            2 * time.Minute,
		"public, max-age=600":    10 * time.Minute,
		"max-age=0":              minDocumentTTL,
		"max-age=5":              minDocumentTTL,
		"max-age=999999999":      maxDocumentTTL,
		"max-age=99999999999999": maxDocumentTTL,
		"max-age=-1":             minDocumentTTL,
		"max-age=x":              minDocumentTTL,
		"no-store":               minDocumentTTL,
		"no-cache, max-age=600":  minDocumentTTL,
		`max-age="300"`:          5 * time.Minute,
	} {
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		if got := documentLifetime(h); got != want {
			t.Errorf("documentLifetime(%q) = %v, want %v", cc, got, want)
		}
	}
}

// TestClientIDMetadataDocumentCached: a document is fetched once while
// its max-age lasts and again after it; another document's fetch still
// goes through the fetching client (its egress guard); the cache keeps
// at most MaxDocuments.
func TestClientIDMetadataDocumentCached(t *testing.T) {
	var mu sync.Mutex
	fetches := map[string]int{}
	var base string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=120")
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"Doc Agent","redirect_uris":["http://127.0.0.1:4100/cb"]}`, base+r.URL.Path)
	}))
	t.Cleanup(ts.Close)
	base = ts.URL
	fetched := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return fetches[path]
	}
	s := newServer(t, 10)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s.o.People, s.o.Keys, s.o.Documents, s.o.Now = alice{session: "ses_1"}, aliceKeys{}, ts.Client(), func() time.Time { return now }
	sum := sha256.Sum256([]byte(strings.Repeat("v", 43)))
	authorize := func(path string) {
		t.Helper()
		q := url.Values{"response_type": {"code"}, "client_id": {base + path}, "redirect_uri": {"http://127.0.0.1:4100/cb"}, "state": {"s"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {"http://127.0.0.1:8787/mcp"}}
		w := httptest.NewRecorder()
		s.ServeAuthorize(w, httptest.NewRequest("GET", AuthorizePath+"?"+q.Encode(), nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Doc Agent") {
			t.Fatalf("authorize %s: %d %s", path, w.Code, w.Body)
		}
	}
	authorize("/a.json")
	authorize("/a.json")
	if n := fetched("/a.json"); n != 1 {
		t.Fatalf("two authorizations within max-age fetched the document %d times, want 1", n)
	}
	now = now.Add(119 * time.Second)
	authorize("/a.json")
	if n := fetched("/a.json"); n != 1 {
		t.Fatalf("an authorization 119 s later fetched the document again (%d fetches)", n)
	}
	now = now.Add(2 * time.Second)
	authorize("/a.json")
	if n := fetched("/a.json"); n != 2 {
		t.Fatalf("an authorization after max-age fetched the document %d times in all, want 2", n)
	}
	authorize("/a.json")
	if n := fetched("/a.json"); n != 2 {
		t.Fatalf("the refetched document was not kept (%d fetches)", n)
	}

	// Every fetch goes through the fetching client and its egress guard:
	// keygate's own, which refuses this loopback server, serves the
	// document kept, and refuses it once it must be fetched again.
	s.o.Documents = egress.Policy{}.Client(5 * time.Second)
	authorize("/a.json")
	now = now.Add(121 * time.Second)
	w := httptest.NewRecorder()
	q := url.Values{"client_id": {base + "/a.json"}, "redirect_uri": {"http://127.0.0.1:4100/cb"}}
	s.ServeAuthorize(w, httptest.NewRequest("GET", AuthorizePath+"?"+q.Encode(), nil))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "egress") || fetched("/a.json") != 2 {
		t.Fatalf("an expired document behind the egress guard: %d %s (%d fetches)", w.Code, w.Body, fetched("/a.json"))
	}

	// Bounded: at most MaxDocuments are kept, the soonest to expire going first.
	d := &documents{max: 3}
	for i := range 5 {
		d.put(store.OAuthClient{ID: fmt.Sprint(i)}, now, now.Add(time.Duration(i+1)*time.Minute))
	}
	if d.len() != 3 {
		t.Fatalf("the cache holds %d documents, want at most 3", d.len())
	}
	if _, ok := d.get("0", now); ok {
		t.Fatal("the document soonest to expire was kept over newer ones")
	}
	if _, ok := d.get("4", now); !ok {
		t.Fatal("the newest document was not kept")
	}
}
