package scrub

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// bearerRequest is an outgoing request carrying key as a Bearer token.
func bearerRequest(key string) *http.Request {
	req, _ := http.NewRequest("POST", "https://api.example.com/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// TestCacheReturnsTheSameSet: the same credentials on the wire give the
// same Set, built once; another key or another header gives another.
func TestCacheReturnsTheSameSet(t *testing.T) {
	c := NewCache(8)
	key := secret.New(testKey)
	a := c.ForRequest(bearerRequest(testKey), key)
	if b := c.ForRequest(bearerRequest(testKey), key); b != a {
		t.Fatal("the same credentials built a second Set")
	}
	if !a.Contains([]byte("Bearer " + testKey)) {
		t.Fatal("the cached Set misses the header value")
	}
	other := "FAKE-other-upstream-key-42424242"
	if b := c.ForRequest(bearerRequest(other), secret.New(other)); b == a || !b.Contains([]byte(other)) || b.Contains([]byte(testKey)) {
		t.Fatal("another key got the first key's Set")
	}
	basic, _ := http.NewRequest("GET", "https://api.example.com/", nil)
	basic.SetBasicAuth(testUser, testKey)
	if b := c.ForRequest(basic, key); b == a || !b.Contains([]byte(basic.Header.Get("Authorization"))) {
		t.Fatal("the same key sent as Basic got the Bearer Set")
	}
	if c.Len() != 3 {
		t.Fatalf("%d Sets held, want 3", c.Len())
	}
	if !c.ForRequest(bearerRequest(testKey)).Empty() {
		t.Fatal("no key should give an empty Set")
	}
}

// TestCacheIsBounded: the cache never holds more Sets than its size, and
// stays correct when it evicts.
func TestCacheIsBounded(t *testing.T) {
	c := NewCache(4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := fmt.Sprintf("FAKE-rotating-key-%02d-%04d", g, i%10)
				s := c.ForRequest(bearerRequest(key), secret.New(key))
				if !s.Contains([]byte("Bearer " + key)) {
					t.Errorf("the Set of %s misses it", key)
					return
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 4 {
		t.Fatalf("%d Sets held, want at most 4", c.Len())
	}
}
