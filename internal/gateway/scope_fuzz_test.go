package gateway

import (
	"testing"
	"time"

	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/store"
)

// FuzzParseScope: a requested token scope (the scope form field, which
// anyone holding a key sends) parses or is refused without a panic; what
// parses prints back to the same scope; and a scope inside a key's
// allowances never names a model or service the key does not allow.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"model:gpt-4o-mini", "provider:openai model:gpt-4o*", "service:github path:POST:/v1/embeddings rpm:10",
		"model:[", "path:GET", "tpm:-1", "concurrency:99999999999999999999", "model:* service:x", ""} {
		f.Add(s)
	}
	key := keysource.Compile(store.Key{Env: "live", AllowModels: []string{"gpt-4o-mini", "o3*"}, AllowServices: []string{"github"}, AllowPaths: []string{"* /v1/*"}}, nil, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := parseScope(s)
		if err != nil {
			return
		}
		again, err := parseScope(formatScope(sc))
		if err != nil || formatScope(again) != formatScope(sc) {
			t.Fatalf("scope %q prints as %q, which reads back as %q (%v)", s, formatScope(sc), formatScope(again), err)
		}
		if scopeWithin(key, sc) != nil {
			return
		}
		for _, svc := range sc.Services {
			if svc != "github" {
				t.Fatalf("scope %q accepted service %q the key does not allow", s, svc)
			}
		}
	})
}
