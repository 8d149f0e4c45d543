package scrub

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

func b64std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// echoForms are the ways an upstream can echo testKey sent as Basic with
// testUser, each with a name.
func echoForms(h string) []struct{ name, form string } {
	up := testUser + ":" + testKey
	return []struct{ name, form string }{
		{"raw key", testKey},
		{"Bearer header value", "Bearer " + testKey},
		{"Basic header value", h},
		{"user:key", up},
		{"basic base64 std padded", base64.StdEncoding.EncodeToString([]byte(up))},
		{"basic base64 std unpadded", base64.RawStdEncoding.EncodeToString([]byte(up))},
		{"basic base64 url padded", base64.URLEncoding.EncodeToString([]byte(up))},
		{"basic base64 url unpadded", base64.RawURLEncoding.EncodeToString([]byte(up))},
		{"key base64 std padded", base64.StdEncoding.EncodeToString([]byte(testKey))},
		{"key base64 url unpadded", base64.RawURLEncoding.EncodeToString([]byte(testKey))},
		{"key query-escaped", url.QueryEscape(testKey)},
		{"key path-escaped", url.PathEscape(testKey)},
		{"user:key query-escaped", url.QueryEscape(up)},
		{"user:key path-escaped", url.PathEscape(up)},
		{"Basic value query-escaped", url.QueryEscape(h)},
		{"Basic value path-escaped", url.PathEscape(h)},
		{"basic base64 query-escaped", url.QueryEscape(b64std(up))},
		{"key base64 query-escaped", url.QueryEscape(b64std(testKey))},
		{"key in JSON with escaped slash", strings.ReplaceAll(testKey, "/", `\/`)},
	}
}

// TestEveryWireFormIsScrubbed: each form of the credential an upstream may
// echo is replaced whole by a mask of its length, in the middle of a body
// and at its ends.
func TestEveryWireFormIsScrubbed(t *testing.T) {
	s, h := basicSet(t)
	for _, tc := range echoForms(h) {
		t.Run(tc.name, func(t *testing.T) {
			for _, in := range []string{
				`{"error":"bad credential ` + tc.form + `","code":401}`,
				tc.form,
				tc.form + " " + tc.form,
			} {
				want := strings.ReplaceAll(in, tc.form, string(s.mask(len(tc.form))))
				b := []byte(in)
				if n := s.Bytes(b); n == 0 || string(b) != want {
					t.Fatalf("Bytes(%q) = %q (%d replaced), want %q", in, b, n, want)
				}
				if got := readAllWith(t, s, [][]byte{[]byte(in)}, 4096); string(got) != want {
					t.Fatalf("Reader(%q) = %q, want %q", in, got, want)
				}
			}
		})
	}
}

// TestKeyInsideLongerBase64: the key is found inside a longer base64 text
// whatever bytes precede it, in both alphabets, and decoding what is left
// never yields it.
func TestKeyInsideLongerBase64(t *testing.T) {
	s := New(Credential{Key: secret.New(testKey)})
	for pre := range 6 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			plain := strings.Repeat("x", pre) + `{"authorization":"` + testKey + `"}`
			in := []byte(enc.EncodeToString([]byte(plain)))
			s.Bytes(in)
			if bytes.Equal(in, []byte(enc.EncodeToString([]byte(plain)))) {
				t.Fatalf("prefix %d: base64 text left untouched", pre)
			}
			// Put back the bytes the mask replaced as 'A's, decode, and
			// look for the key.
			fixed := bytes.Map(func(r rune) rune {
				if strings.ContainsRune("[REDACT]*", r) {
					return 'A'
				}
				return r
			}, in)
			dec, _ := enc.DecodeString(string(fixed))
			if bytes.Contains(dec, []byte(testKey)) {
				t.Fatalf("prefix %d: the key decodes from the scrubbed text", pre)
			}
		}
	}
}

// TestShortNeedlesAreIgnored: a credential shorter than MinNeedle is not
// looked for on its own, but its longer header form is.
func TestShortNeedlesAreIgnored(t *testing.T) {
	s := New(Credential{Key: secret.New("abc"), Header: secret.New("Token abc")})
	for _, n := range s.needles {
		if len(n) < MinNeedle {
			t.Fatalf("needle %q is shorter than %d", n, MinNeedle)
		}
	}
	b := []byte("abc abcabc; Token abc")
	s.Bytes(b)
	if want := "abc abcabc; [REDACT]*"; string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
	if !New().Empty() || !New(Credential{}).Empty() {
		t.Fatal("a Set of no credential should be empty")
	}
}

// TestForRequest: the Set built from the outgoing request holds the whole
// header values that carried the key, Basic included.
func TestForRequest(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://api.example.com/v1?api_key="+url.QueryEscape(testKey), nil)
	req.SetBasicAuth(testUser, testKey)
	req.Header.Set("X-Api-Key", "Token "+testKey)
	req.Header.Set("X-Other", "unrelated value")
	s := ForRequest(req, secret.New(testKey), secret.String{})
	for _, want := range []string{testKey, req.Header.Get("Authorization"), testUser + ":" + testKey, "Token " + testKey} {
		if !s.Contains([]byte(want)) {
			t.Errorf("the Set does not look for %q", want)
		}
	}
	if s.Contains([]byte("unrelated value")) {
		t.Error("the Set looks for an unrelated header")
	}
	if !ForRequest(req).Empty() {
		t.Error("ForRequest with no key should be empty")
	}
}

// TestMaskKeepsLength: every needle's mask has its length and starts like
// secret.Redacted.
func TestMaskKeepsLength(t *testing.T) {
	s, _ := basicSet(t)
	for n := MinNeedle; n <= s.maxLen; n++ {
		m := s.mask(n)
		if len(m) != n {
			t.Fatalf("mask(%d) has %d bytes", n, len(m))
		}
		if n >= len(secret.Redacted) && !bytes.HasPrefix(m, []byte(secret.Redacted)) {
			t.Fatalf("mask(%d) = %q", n, m)
		}
	}
}
