package policy_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/policy"
)

func TestParsePathRule(t *testing.T) {
	for _, tc := range []struct {
		spec, want, err string // want is String(); err a fragment of the error
	}{
		{spec: "POST /v1/embeddings", want: "POST /v1/embeddings"},
		{spec: "get /v1/models", want: "GET /v1/models"},
		{spec: "  *   /v1/chat/completions ", want: "* /v1/chat/completions"},
		{spec: "POST /v1/*", want: "POST /v1/*"},
		{spec: "GET /v1/threads/*/runs", want: "GET /v1/threads/*/runs"},
		{spec: "* *", want: "* *"},
		{spec: "", err: `want "METHOD /path"`},
		{spec: "/v1/models", err: `want "METHOD /path"`},
		{spec: "GET /v1/models extra", err: `want "METHOD /path"`},
		{spec: "G@T /v1/models", err: `"G@T" is not an HTTP method`},
		{spec: "GET v1/models", err: `must start with "/"`},
		{spec: "GET /v1/[models", err: "not a valid pattern"},
		{spec: "GET /v1/../admin", err: "clean form"},
		{spec: "GET /v1//models", err: "clean form"},
		{spec: "GET /v1/./*", err: "clean form"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			r, err := policy.ParsePathRule(tc.spec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				if !strings.Contains(err.Error(), tc.spec) {
					t.Errorf("error %q does not name the rule %q", err, tc.spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			again, err := policy.ParsePathRule(r.String())
			if err != nil || again != r {
				t.Errorf("String() does not round-trip: %v, %v", again, err)
			}
		})
	}
}

func TestPathsAllow(t *testing.T) {
	rules := func(specs ...string) []policy.PathRule {
		t.Helper()
		rs, err := policy.ParsePathRules(specs)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	for _, tc := range []struct {
		name         string
		rules        []policy.PathRule
		method, path string
		want         bool
	}{
		{"no rules allow all", nil, "DELETE", "/v1/files/x", true},
		{"no rules allow even unclean paths", nil, "GET", "/v1/../x", true},
		{"exact", rules("POST /v1/embeddings"), "POST", "/v1/embeddings", true},
		{"exact, other method", rules("POST /v1/embeddings"), "GET", "/v1/embeddings", false},
		{"exact, method case matters", rules("POST /v1/embeddings"), "post", "/v1/embeddings", false},
		{"exact, longer path", rules("POST /v1/embeddings"), "POST", "/v1/embeddings/x", false},
		{"exact, trailing slash differs", rules("POST /v1/embeddings"), "POST", "/v1/embeddings/", false},
		{"GET models", rules("GET /v1/models"), "GET", "/v1/models", true},
		{"HEAD is not GET", rules("GET /v1/models"), "HEAD", "/v1/models", false},
		{"any method", rules("* /v1/chat/completions"), "PATCH", "/v1/chat/completions", true},
		{"any method, other path", rules("* /v1/chat/completions"), "POST", "/v1/completions", false},
		{"prefix, deep", rules("POST /v1/*"), "POST", "/v1/chat/completions", true},
		{"prefix, one level", rules("POST /v1/*"), "POST", "/v1/embeddings", true},
		{"prefix, the directory itself", rules("POST /v1/*"), "POST", "/v1/", true},
		{"prefix, not the bare stem", rules("POST /v1/*"), "POST", "/v1", false},
		{"prefix, sibling", rules("POST /v1/*"), "POST", "/v2/embeddings", false},
		{"prefix, other method", rules("POST /v1/*"), "GET", "/v1/models", false},
		{"prefix without slash", rules("GET /v1/model*"), "GET", "/v1/models/gpt-4o", true},
		{"segment glob", rules("GET /v1/threads/*/runs"), "GET", "/v1/threads/th_1/runs", true},
		{"segment glob does not cross slashes", rules("GET /v1/threads/*/runs"), "GET", "/v1/threads/a/b/runs", false},
		{"glob stem then prefix", rules("GET /v1/threads/*/runs/*"), "GET", "/v1/threads/th_1/runs/r_1/steps", true},
		{"glob stem then prefix, miss", rules("GET /v1/threads/*/runs/*"), "GET", "/v1/threads/th_1/messages", false},
		{"escaped star is literal", rules(`GET /v1/\*`), "GET", "/v1/*", true},
		{"escaped star is not a prefix", rules(`GET /v1/\*`), "GET", "/v1/models", false},
		{"everything", rules("* *"), "OPTIONS", "/anything/at/all", true},
		{"second rule matches", rules("GET /v1/models", "POST /v1/embeddings"), "POST", "/v1/embeddings", true},
		{"traversal refused", rules("GET /v1/models/*"), "GET", "/v1/models/../files", false},
		{"dot segment refused", rules("* *"), "GET", "/v1/./models", false},
		{"double slash refused", rules("POST /v1/*"), "POST", "//v1/embeddings", false},
		{"relative path refused", rules("* *"), "GET", "v1/models", false},
		{"empty path refused", rules("* *"), "GET", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy.PathsAllow(tc.rules, tc.method, tc.path); got != tc.want {
				t.Errorf("PathsAllow(%v, %q, %q) = %v, want %v", tc.rules, tc.method, tc.path, got, tc.want)
			}
		})
	}
}

func TestPathRuleZeroMatchesNothing(t *testing.T) {
	var r policy.PathRule
	if r.Allows("GET", "/") || policy.PathsAllow([]policy.PathRule{r}, "GET", "/") {
		t.Error("the zero PathRule allowed a request")
	}
}

func TestParsePathRulesNamesTheBadOne(t *testing.T) {
	_, err := policy.ParsePathRules([]string{"GET /v1/models", "POST v1/embeddings"})
	if err == nil || !strings.Contains(err.Error(), `"POST v1/embeddings"`) {
		t.Fatalf("err = %v, want it to name the bad rule", err)
	}
}

func TestPathRuleText(t *testing.T) {
	var r policy.PathRule
	if err := r.UnmarshalText([]byte("post /v1/*")); err != nil {
		t.Fatal(err)
	}
	b, err := r.MarshalText()
	if err != nil || string(b) != "POST /v1/*" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	if err := r.UnmarshalText([]byte("nonsense")); err == nil {
		t.Fatal("UnmarshalText accepted a bad rule")
	}
}

func TestEnvAllowed(t *testing.T) {
	for _, tc := range []struct {
		key, deployment string
		want            bool
	}{
		{"live", "live", true},
		{"test", "live", false},
		{"live", "test", false},
		{"", "live", false},
		{"Live", "live", false},
		{"test", "", true},
		{"", "", true},
	} {
		if got := policy.EnvAllowed(tc.key, tc.deployment); got != tc.want {
			t.Errorf("EnvAllowed(%q, %q) = %v, want %v", tc.key, tc.deployment, got, tc.want)
		}
	}
}
