package scrub

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// TestHeaderScrubbing: every header value loses every form of the key,
// URL-bearing ones keep a well-formed URL, values that only decode to the
// key are dropped, and a header named after the key goes.
func TestHeaderScrubbing(t *testing.T) {
	s, basic := basicSet(t)
	up := testUser + ":" + testKey
	h := http.Header{
		"X-Echo-Authorization": {"Bearer " + testKey},
		"X-Echo-Basic":         {basic},
		"X-Debug":              {"first value", "key=" + testKey + "; again " + testKey},
		"Www-Authenticate":     {`Basic realm="api", error="` + b64std(up) + `"`},
		"Location":             {"https://api.example.com/next?api_key=" + url.QueryEscape(testKey) + "&page=2"},
		"Content-Location":     {"https://api.example.com/u/" + url.PathEscape(up) + "/items"},
		"Link":                 {"<https://api.example.com/p?key=" + url.QueryEscape(url.QueryEscape(testKey)) + ">; rel=next", "<https://api.example.com/p?page=3>; rel=last"},
		"Refresh":              {"0; url=/login?auth=" + url.QueryEscape(basic)},
		"Content-Type":         {"application/json"},
	}
	if !s.Header(h) {
		t.Fatal("Header reported no change")
	}
	want := http.Header{
		"X-Echo-Authorization": {secret.Redacted},
		"X-Echo-Basic":         {secret.Redacted},
		"X-Debug":              {"first value", "key=" + secret.Redacted + "; again " + secret.Redacted},
		"Www-Authenticate":     {`Basic realm="api", error="` + secret.Redacted + `"`},
		"Location":             {"https://api.example.com/next?api_key=REDACTED&page=2"},
		"Content-Location":     {"https://api.example.com/u/REDACTED/items"},
		"Link":                 {"<https://api.example.com/p?page=3>; rel=last"}, // the doubly encoded key only decodes to it: dropped
		"Refresh":              {"0; url=/login?auth=REDACTED"},
		"Content-Type":         {"application/json"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got  %q\nwant %q", h, want)
	}
	if _, err := url.Parse(h.Get("Location")); err != nil {
		t.Fatalf("scrubbed Location no longer parses: %v", err)
	}
}

// TestHeaderNamedAfterTheKey: canonicalization changes a name's case, so a
// header whose name holds the key in any case is deleted.
func TestHeaderNamedAfterTheKey(t *testing.T) {
	const key = "FAKEupstreamKEY0123456789abcdef"
	s := New(Credential{Key: secret.New(key)})
	h := http.Header{}
	h.Set("X-"+strings.ToLower(key)+"-Echo", "1")
	h.Set("X-Request-Id", "abc")
	s.Header(h)
	if len(h) != 1 || h.Get("X-Request-Id") != "abc" {
		t.Fatalf("headers left: %q", h)
	}
}

// TestHeaderUntouchedWithoutKey: headers without the key are not changed.
func TestHeaderUntouchedWithoutKey(t *testing.T) {
	s, _ := basicSet(t)
	h := http.Header{"Content-Type": {"text/event-stream"}, "X-Request-Id": {"req_123", "b%2Bc+d"}}
	want := h.Clone()
	if s.Header(h) || !reflect.DeepEqual(h, want) {
		t.Fatalf("got %q", h)
	}
}
