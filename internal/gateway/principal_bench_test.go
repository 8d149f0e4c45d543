package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/pricing"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// memStore serves one key to a keysource.
type memStore map[[32]byte]store.Key

func (m memStore) GetKeyByHash(_ context.Context, h []byte) (store.Key, error) {
	if k, ok := m[[32]byte(h)]; ok {
		return k, nil
	}
	return store.Key{}, store.ErrNotFound
}

func (m memStore) GetKey(_ context.Context, id string) (store.Key, error) {
	for _, k := range m {
		if k.ID == id {
			return k, nil
		}
	}
	return store.Key{}, store.ErrNotFound
}

// BenchmarkPrincipalPath is the compiled-principal path of a model call in
// process, for a cached key under every kind of limit: authenticate (the
// key's HMAC, the cache), the scope checks, authorize the routed model,
// and admit the worst case against the memory limiter, then settle.
func BenchmarkPrincipalPath(b *testing.B) {
	h, _ := apikey.NewHasher(bytes.Repeat([]byte{7}, 32))
	raw, _ := apikey.Generate("live")
	sum := h.Hash(raw.Reveal())
	exp := time.Now().Add(24 * time.Hour)
	keys := memStore{sum: {ID: "key_bench", Name: "bench", Env: "live", Hash: sum[:], AllowModels: []string{"gpt-4o*"}, AllowProviders: []string{"openai"}, ExpiresAt: &exp,
		Limits: []byte(`{"rps":1000000000,"rpm":100000000,"tpm":100000000,"concurrency":100000,` +
			`"quotas":[{"limit":1000000000000,"unit":"requests","period":"day"}],"budgets":[{"micro_usd":1000000000000,"period":"month"}]}`)}}
	base, _ := url.Parse("http://upstream.invalid/v1")
	table := route.NewTable([]*route.Upstream{{Name: "openai", Dialect: "openai", BaseURL: base, Models: []string{"gpt-*"}, Key: secret.New("bench-upstream-key")}})
	prices, _ := pricing.NewTable(nil)
	mem := limit.NewMemory()
	g := New(Options{
		Keys: keysource.New(h, keys, keysource.WithTTL(time.Hour)), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1 << 20,
		Limits: LimitOptions{Shared: mem, Local: mem, Prices: prices, Location: time.UTC, DefaultMaxTokens: 4096},
	}, table)
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	r.Header.Set("Authorization", "Bearer "+raw.Reveal())
	hdr := http.Header{}
	f := jsonpeek.Fields{Model: "gpt-4o-mini", HasModel: true, MaxTokens: 128}
	c := &call{dialect: g.openai}
	run := func() {
		*c = call{dialect: g.openai}
		key, den := g.authenticate(r, c)
		if den == nil {
			den = g.checkScope(r, c, key)
		}
		up, model, den2 := g.route(c.dialect, f.Model)
		if den == nil {
			den = den2
		}
		if den == nil {
			den = g.authorize(c, key, up, model)
		}
		if den == nil {
			den = g.admit(hdr, r, c, key, model, f, 200)
		}
		if den != nil {
			b.Fatal(den.Message)
		}
		g.settleOnce(c, c.used)
	}
	run()
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}
