package policy

import (
	"path"
	"strings"
	"testing"
)

// FuzzPathRules holds path rules to what a key's holder depends on: a rule
// parses or is refused without a panic; a parsed rule prints back to an
// equal rule; no rule allows a path that is not in clean form; and a rule
// that covers another allows every literal path the other allows.
func FuzzPathRules(f *testing.F) {
	for _, s := range []string{"POST /v1/embeddings", "* /v1/*", "GET /v1/models", "get /v1/[a-z]*", "* *", "POST /proxy/svc/v1/*",
		"GET /a\\*", "X /", "POST /v1/../x", "GET //x", "GET /v1/./x", "GET /[", "TRACE /v1/x"} {
		f.Add(s, "GET", "/v1/models", "POST /v1/*")
	}
	f.Fuzz(func(t *testing.T, spec, method, p, other string) {
		r, err := ParsePathRule(spec)
		if err != nil {
			return
		}
		r2, err := ParsePathRule(r.String())
		if err != nil || r2 != r {
			t.Fatalf("rule %q prints as %q, which parses to %+v, %v", spec, r.String(), r2, err)
		}
		if PathsAllow([]PathRule{r}, method, p) && !isCleanPath(p) {
			t.Fatalf("rule %q allows unclean path %q", spec, p)
		}
		o, err := ParsePathRule(other)
		if err != nil || !r.Covers(o) {
			return
		}
		// Every literal path o allows, r allows too.
		if !o.glob && !o.prefix && o.method != "*" && !r.Allows(o.method, o.stem) {
			t.Fatalf("%q covers %q but refuses %s %s", spec, other, o.method, o.stem)
		}
		if o.prefix && !o.glob && o.method != "*" {
			probe := path.Clean(o.stem + "x")
			if strings.HasPrefix(probe, o.stem) && o.Allows(o.method, probe) && !r.Allows(o.method, probe) {
				t.Fatalf("%q covers %q but refuses %s %s", spec, other, o.method, probe)
			}
		}
	})
}
