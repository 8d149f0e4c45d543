package passthrough

import (
	"errors"
	"net/http"
	"path"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// FuzzRewritePath checks that Rewrite never panics and that any path it
// accepts stays under the base path, as sent and after every layer of
// percent-decoding an upstream might apply, with backslashes read as
// slashes.
func FuzzRewritePath(f *testing.F) {
	for _, seed := range []string{
		"", "/", "/v1/charges", "/..", "/../admin", "/%2e%2e/x", "/%2E%2e", "/.%2e/", "/a%2fb",
		"/a\\b", "/%5c", "/%252e%252e/", "/%25252e", "/a//b", "//x", "/a%00", "/a\x00", "/%",
		"/%zz", "/a?b", "/a#b", "/..;/x", "/a/./b", "/a%20b", "/%E2%9C%93", "/100%25", "/%2525",
		"x", "/a/b/", "/...", "/.well-known",
	} {
		f.Add(seed)
	}
	s := mustService(f, "svc", "https://api.example.com/v2", Auth{Kind: AuthBearer}, false)
	key := secret.New(testKey)
	f.Fuzz(func(t *testing.T, rest string) {
		out := &http.Request{Header: http.Header{}}
		err := s.Rewrite(out, rest, "", key)
		if checkErr := CheckPath(rest); (err == nil) != (checkErr == nil) {
			t.Fatalf("Rewrite and CheckPath disagree on %q: %v vs %v", rest, err, checkErr)
		}
		if err != nil {
			var pe *PathError
			if !errors.As(err, &pe) {
				t.Fatalf("Rewrite(%q) = %v (%T), want *PathError", rest, err, err)
			}
			return
		}
		if out.URL.Host != "api.example.com" || out.URL.Scheme != "https" || out.Host != "api.example.com" {
			t.Fatalf("Rewrite(%q) changed the destination: %s", rest, out.URL)
		}
		escaped := out.URL.EscapedPath()
		if !underBase(escaped) {
			t.Fatalf("Rewrite(%q) sent %q, outside /v2", rest, escaped)
		}
		layer := escaped
		for range maxDecodeDepth + 1 {
			asSlashes := strings.ReplaceAll(layer, "\\", "/")
			if !underBase(path.Clean(asSlashes)) || hasDotSegment(asSlashes) {
				t.Fatalf("Rewrite(%q) sent %q, which decodes to %q, outside /v2", rest, escaped, layer)
			}
			next := lenientUnescape(layer)
			if next == layer {
				break
			}
			layer = next
		}
		if got := out.URL.Path; !underBase(path.Clean(got)) {
			t.Fatalf("Rewrite(%q) set Path %q, outside /v2", rest, got)
		}
	})
}

func underBase(p string) bool { return p == "/v2" || strings.HasPrefix(p, "/v2/") }

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		name, _, _ := strings.Cut(seg, ";")
		if name == "." || name == ".." {
			return true
		}
	}
	return false
}
