package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/store"
)

type openAIList struct {
	Object string `json:"object"`
	Data   []struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	} `json:"data"`
}

func (l openAIList) ids() string {
	var ids []string
	for _, m := range l.Data {
		ids = append(ids, m.ID)
	}
	return strings.Join(ids, ",")
}

func listOpenAI(t *testing.T, g *gw, key string) openAIList {
	t.Helper()
	a := send(t, "GET", g.url+"/v1/models", "", "Authorization", "Bearer "+key)
	var l openAIList
	if a.status != http.StatusOK || json.Unmarshal(a.body, &l) != nil || l.Object != "list" {
		t.Fatalf("OpenAI models list: %d %s", a.status, a.body)
	}
	for _, m := range l.Data {
		if m.Object != "model" || m.OwnedBy == "" {
			t.Fatalf("entry not in the OpenAI shape: %+v", m)
		}
	}
	return l
}

// twoOpenAIProviders: alpha and beta both serve gpt-4o-mini and both claim
// gpt-*, so a bare gpt-4o-mini goes to alpha (first by name); only beta
// serves llama3, which no pattern claims and no default catches.
func twoOpenAIProviders(t *testing.T, alphaOpts, betaOpts fakeprovider.Options) (alpha, beta, anth *fake, ups []*route.Upstream) {
	betaOpts.Models = []string{"gpt-4o-mini", "llama3"}
	alpha = newFake(t, "openai", alphaOpts)
	beta = newFake(t, "openai", betaOpts)
	anth = newFake(t, "anthropic", fakeprovider.Options{})
	ups = []*route.Upstream{
		alpha.upstream("alpha", "openai", "gpt-*"),
		beta.upstream("beta", "openai", "gpt-*"),
		anth.upstream("anthropic", "anthropic"),
	}
	return alpha, beta, anth, ups
}

// TestModelsListRoutesBack: the listing holds only what the key may use, and
// each id, sent back as is, reaches the provider that listed it.
func TestModelsListRoutesBack(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("scoped", func(k *store.Key) { k.AllowModels = []string{"gpt-4o*", "llama*"} })
	alpha, beta, anth, ups := twoOpenAIProviders(t, fakeprovider.Options{}, fakeprovider.Options{})
	g := newGateway(t, ks.verifier(), nil, ups...)

	l := listOpenAI(t, g, key)
	if got, want := l.ids(), "beta/gpt-4o-mini,beta/llama3,gpt-4o,gpt-4o-mini"; got != want {
		t.Fatalf("ids %q, want %q", got, want)
	}
	if anth.RequestCount() != 0 {
		t.Fatal("an OpenAI-style listing asked the Anthropic provider")
	}
	// Every listed id is accepted and reaches the provider that listed it,
	// with the prefix removed.
	for _, m := range l.Data {
		alpha.Reset()
		beta.Reset()
		body := `{"model":"` + m.ID + `","messages":[{"role":"user","content":"hi"}]}`
		if a := send(t, "POST", g.url+"/v1/chat/completions", body, "Authorization", "Bearer "+key); a.status != http.StatusOK {
			t.Fatalf("listed id %q: %d %s", m.ID, a.status, a.body)
		}
		want, bare := alpha, m.ID
		if rest, ok := strings.CutPrefix(m.ID, "beta/"); ok {
			want, bare = beta, rest
		}
		seen := want.Requests()
		if len(seen) != 1 || !strings.Contains(string(seen[0].Body), `"model":"`+bare+`"`) {
			t.Fatalf("listed id %q did not reach its provider as %q: %d requests", m.ID, bare, len(seen))
		}
	}

	// A key limited to beta lists beta's models only; bare gpt-4o-mini
	// still routes to alpha, so beta's copy stays prefixed.
	betaOnly := ks.issue("beta-only", func(k *store.Key) { k.AllowProviders = []string{"beta"} })
	if got := listOpenAI(t, g, betaOnly).ids(); got != "beta/gpt-4o-mini,beta/llama3" {
		t.Fatalf("beta-only key lists %q", got)
	}
	// A prefixed model allowance admits the model through that provider only.
	prefixed := ks.issue("prefixed", func(k *store.Key) { k.AllowModels = []string{"beta/gpt-*"} })
	if got := listOpenAI(t, g, prefixed).ids(); got != "beta/gpt-4o-mini" {
		t.Fatalf("key allowed beta/gpt-* lists %q", got)
	}
}

// TestModelsListAnthropicShape: a listing request that carries
// anthropic-version gets the Anthropic providers' models in Anthropic's shape.
func TestModelsListAnthropicShape(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", func(k *store.Key) { k.AllowModels = []string{"claude-*-4-5", "gpt-*"} })
	_, _, _, ups := twoOpenAIProviders(t, fakeprovider.Options{}, fakeprovider.Options{})
	g := newGateway(t, ks.verifier(), nil, ups...)

	a := send(t, "GET", g.url+"/v1/models", "", "X-Api-Key", key, "Anthropic-Version", "2023-06-01")
	var l struct {
		Data []struct {
			Type        string `json:"type"`
			ID          string `json:"id"`
			DisplayName string `json:"display_name"`
			CreatedAt   string `json:"created_at"`
		} `json:"data"`
		HasMore bool    `json:"has_more"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &l) != nil {
		t.Fatalf("Anthropic models list: %d %s", a.status, a.body)
	}
	var ids []string
	for _, m := range l.Data {
		ids = append(ids, m.ID)
		if m.Type != "model" || m.DisplayName == "" {
			t.Errorf("entry not in the Anthropic shape: %+v", m)
		}
		if _, err := time.Parse(time.RFC3339, m.CreatedAt); err != nil {
			t.Errorf("created_at %q: %v", m.CreatedAt, err)
		}
	}
	if got := strings.Join(ids, ","); got != "claude-haiku-4-5,claude-sonnet-4-5" {
		t.Fatalf("ids %q: only the permitted Anthropic models, bare", got)
	}
	if l.HasMore || l.FirstID == nil || *l.FirstID != ids[0] || l.LastID == nil || *l.LastID != ids[len(ids)-1] {
		t.Fatalf("paging fields: has_more %v first %v last %v", l.HasMore, l.FirstID, l.LastID)
	}
	if strings.Contains(string(a.body), `"object"`) || strings.Contains(string(a.body), "gpt-") {
		t.Fatalf("OpenAI shape or models in an Anthropic listing: %s", a.body)
	}
}

// TestModelsListUpstreamFailures: one failing provider leaves the others
// listed; when every provider fails the answer is a 502 in the dialect.
func TestModelsListUpstreamFailures(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	t.Run("one fails", func(t *testing.T) {
		_, _, _, ups := twoOpenAIProviders(t, fakeprovider.Options{FailStatus: http.StatusInternalServerError}, fakeprovider.Options{})
		g := newGateway(t, ks.verifier(), nil, ups...)
		if got := listOpenAI(t, g, key).ids(); got != "beta/gpt-4o-mini,beta/llama3" {
			t.Fatalf("with alpha failing: %q", got)
		}
		if !strings.Contains(g.log.String(), "provider=alpha") {
			t.Errorf("the failing provider is not logged:\n%s", g.log)
		}
	})
	t.Run("all fail", func(t *testing.T) {
		down := fakeprovider.Options{FailStatus: http.StatusServiceUnavailable}
		alpha, beta, _, ups := twoOpenAIProviders(t, down, down)
		anthDown := newFake(t, "anthropic", down)
		ups[2] = anthDown.upstream("anthropic", "anthropic")
		g := newGateway(t, ks.verifier(), nil, ups...)

		oa := send(t, "GET", g.url+"/v1/models", "", "Authorization", "Bearer "+key)
		if _, code := openAIError(t, oa, http.StatusBadGateway); code != "upstream_unreachable" {
			t.Fatalf("code %q", code)
		}
		an := send(t, "GET", g.url+"/v1/models", "", "X-Api-Key", key, "Anthropic-Version", "2023-06-01")
		anthropicError(t, an, http.StatusBadGateway)
		for _, b := range [][]byte{oa.body, an.body} {
			for _, k := range []string{alpha.key, beta.key, anthDown.key, "127.0.0.1"} {
				if strings.Contains(string(b), k) {
					t.Fatalf("502 body leaks %q: %s", k, b)
				}
			}
		}
	})
	t.Run("no provider of the dialect", func(t *testing.T) {
		anth := newFake(t, "anthropic", fakeprovider.Options{})
		g := newGateway(t, ks.verifier(), nil, anth.upstream("anthropic", "anthropic"))
		if got := listOpenAI(t, g, key); len(got.Data) != 0 {
			t.Fatalf("an OpenAI listing with only an Anthropic provider: %q", got.ids())
		}
	})
}

// TestModelsListNeedsAKey: listing is authenticated like every API call and
// answered in the dialect the request speaks.
func TestModelsListNeedsAKey(t *testing.T) {
	ks := newKeys(t)
	revoked := ks.issue("gone", func(k *store.Key) { at := gatewayNow.Add(-time.Minute); k.RevokedAt = &at })
	alpha, _, anth, ups := twoOpenAIProviders(t, fakeprovider.Options{}, fakeprovider.Options{})
	g := newGateway(t, ks.verifier(), nil, ups...)

	openAIError(t, send(t, "GET", g.url+"/v1/models", ""), http.StatusUnauthorized)
	if _, code := openAIError(t, send(t, "GET", g.url+"/v1/models", "", "Authorization", "Bearer "+revoked), http.StatusUnauthorized); code != "revoked_api_key" {
		t.Fatalf("revoked key: code %q", code)
	}
	if _, typ := anthropicError(t, send(t, "GET", g.url+"/v1/models", "", "Anthropic-Version", "2023-06-01"), http.StatusUnauthorized); typ != "authentication_error" {
		t.Fatalf("type %q", typ)
	}
	openAIError(t, send(t, "POST", g.url+"/v1/models", "{}", "Authorization", "Bearer "+revoked), http.StatusMethodNotAllowed)
	if n := alpha.RequestCount() + anth.RequestCount(); n != 0 {
		t.Fatalf("refused listings reached upstream %d times", n)
	}
}

// TestModelsListKeepsAFailingProvidersLastList: a provider that answered
// its model list once and then fails still has its models listed, from its
// last answer, once the cache's minute has passed.
func TestModelsListKeepsAFailingProvidersLastList(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	var failing atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1,"owned_by":"openai"}]}`)
	}))
	t.Cleanup(up.Close)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	g := newGatewayWith(t, ks.verifier(), nil, func(o *gateway.Options) {
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	}, upstreamAt("alpha", "openai", up.URL+"/v1", "test-upstream-key", "gpt-*"))
	if got := listOpenAI(t, g, key).ids(); got != "gpt-4o-mini" {
		t.Fatalf("first listing: %q", got)
	}
	failing.Store(true)
	now.Add(int64(2 * time.Minute))
	if got := listOpenAI(t, g, key).ids(); got != "gpt-4o-mini" {
		t.Fatalf("with the provider failing after a minute: %q, want its last list", got)
	}
}
