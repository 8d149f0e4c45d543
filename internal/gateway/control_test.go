package gateway_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// TestTableSwap: a new table routes the very next request; a failed reload
// keeps the table in place.
func TestTableSwap(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	first := newFake(t, "openai", fakeprovider.Options{})
	second := newFake(t, "openai", fakeprovider.Options{})
	third := newFake(t, "openai", fakeprovider.Options{})

	// Reload reads providers from the store and their keys from the vault,
	// as keygate does; failing makes the load fail like a database outage.
	ctx := context.Background()
	kekBytes := make([]byte, vault.MasterKeySize)
	if _, err := rand.Read(kekBytes); err != nil {
		t.Fatal(err)
	}
	kek, err := vault.NewLocalKEK(kekBytes)
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(kek, ks.st)
	var failing atomic.Bool
	load := func(ctx context.Context) (*route.Table, error) {
		if failing.Load() {
			return nil, errors.New("database is unavailable")
		}
		return route.Load(ctx, ks.st, v)
	}
	g := newGateway(t, ks.verifier(), load, first.upstream("openai", "openai"))
	chat := func() answer {
		return send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
	}
	counts := func() [3]int64 {
		return [3]int64{first.RequestCount(), second.RequestCount(), third.RequestCount()}
	}

	if a := chat(); a.status != http.StatusOK || counts() != [3]int64{1, 0, 0} {
		t.Fatalf("initial table: %d, counts %v", a.status, counts())
	}
	g.SetTable(route.NewTable([]*route.Upstream{second.upstream("openai", "openai")}))
	if a := chat(); a.status != http.StatusOK || counts() != [3]int64{1, 1, 0} {
		t.Fatalf("after SetTable: %d, counts %v", a.status, counts())
	}

	// The store now holds the third provider; a failing load leaves the
	// second in place.
	if _, err := v.Put(ctx, "provider/prv_third", secret.New(third.key)); err != nil {
		t.Fatal(err)
	}
	if err := ks.st.CreateProvider(ctx, store.Provider{ID: "prv_third", Name: "openai", Dialect: "openai",
		BaseURL: third.url + "/v1", SecretID: "provider/prv_third", CreatedAt: gatewayNow}); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if err := g.Reload(ctx); err == nil || !strings.Contains(err.Error(), "database is unavailable") {
		t.Fatalf("Reload with a failing load: %v", err)
	}
	if a := chat(); a.status != http.StatusOK || counts() != [3]int64{1, 2, 0} {
		t.Fatalf("after a failed reload: %d, counts %v", a.status, counts())
	}
	failing.Store(false)
	if err := g.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if a := chat(); a.status != http.StatusOK || counts() != [3]int64{1, 2, 1} {
		t.Fatalf("after a good reload: %d, counts %v", a.status, counts())
	}
	seen := third.Requests()
	if len(seen) != 1 || seen[0].Header.Get("Authorization") != "Bearer "+third.key {
		t.Fatalf("the reloaded provider did not get its own key from the vault")
	}

	// An empty table answers model_not_found without a request upstream.
	g.SetTable(route.NewTable(nil))
	a := chat()
	if _, code := openAIError(t, a, http.StatusNotFound); code != "model_not_found" {
		t.Fatalf("empty table: code %q", code)
	}
	if counts() != [3]int64{1, 2, 1} {
		t.Fatalf("a request went upstream with an empty table: %v", counts())
	}
}

// panicVerifier fails the way a bug would.
type panicVerifier struct{}

const panicText = "verifier exploded holding sk-test-panic-payload"

func (panicVerifier) Verify(context.Context, string, time.Time) (*principal.Principal, error) {
	panic(panicText)
}

func (panicVerifier) ByID(context.Context, string, time.Time) (*principal.Principal, error) {
	panic(panicText)
}

func (panicVerifier) Invalidate(string) {}

// errVerifier fails the way a database outage would.
type errVerifier struct{ calls atomic.Int64 }

func (v *errVerifier) Invalidate(string) {}

func (v *errVerifier) ByID(context.Context, string, time.Time) (*principal.Principal, error) {
	v.calls.Add(1)
	return nil, errors.New("connection refused by the key store")
}

func (v *errVerifier) Verify(context.Context, string, time.Time) (*principal.Principal, error) {
	v.calls.Add(1)
	return nil, errors.New("apikey: look up key: connection refused to db.internal:5432")
}

// TestInternalFailures: a panic is a 500 in the caller's dialect with a
// request id and nothing of the panic in the answer; a verifier that cannot
// answer fails closed with a 503. Neither sends anything upstream.
func TestInternalFailures(t *testing.T) {
	oa := newFake(t, "openai", fakeprovider.Options{})
	an := newFake(t, "anthropic", fakeprovider.Options{})
	ups := []*route.Upstream{oa.upstream("openai", "openai"), an.upstream("anthropic", "anthropic")}
	const someKey = "kg_live_0000000000000000000000000000000000000000000000000"

	type call struct {
		name, method, path, body string
		hdr                      []string
		anthropic                bool
	}
	calls := []call{
		{"chat", "POST", "/v1/chat/completions", chatBody, []string{"Authorization", "Bearer " + someKey}, false},
		{"messages", "POST", "/v1/messages", messagesBody, []string{"X-Api-Key", someKey, "Anthropic-Version", "2023-06-01"}, true},
		{"openai models", "GET", "/v1/models", "", []string{"Authorization", "Bearer " + someKey}, false},
		{"anthropic models", "GET", "/v1/models", "", []string{"X-Api-Key", someKey, "Anthropic-Version", "2023-06-01"}, true},
	}

	t.Run("panic", func(t *testing.T) {
		g := newGateway(t, panicVerifier{}, nil, ups...)
		for _, c := range calls {
			a := send(t, c.method, g.url+c.path, c.body, c.hdr...)
			if c.anthropic {
				if _, typ := anthropicError(t, a, http.StatusInternalServerError); typ != "api_error" {
					t.Errorf("%s: type %q", c.name, typ)
				}
			} else if _, code := openAIError(t, a, http.StatusInternalServerError); code != "internal_error" {
				t.Errorf("%s: code %q", c.name, code)
			}
			id := a.header.Get("X-Request-Id")
			if id == "" {
				t.Errorf("%s: no X-Request-Id", c.name)
			}
			if strings.Contains(string(a.body), "exploded") || strings.Contains(string(a.body), "sk-test-panic") || strings.Contains(string(a.body), "goroutine") {
				t.Errorf("%s: the answer carries the panic: %s", c.name, a.body)
			}
			if !strings.Contains(g.log.String(), id) {
				t.Errorf("%s: the log has no line for request %s", c.name, id)
			}
		}
		if strings.Contains(g.log.String(), "sk-test-panic") {
			t.Errorf("the log carries the panic value:\n%s", g.log)
		}
		// The gateway keeps serving.
		if a := send(t, "GET", g.url+"/healthz", ""); a.status != http.StatusOK {
			t.Fatalf("healthz after panics: %d", a.status)
		}
	})
	t.Run("verifier error", func(t *testing.T) {
		v := &errVerifier{}
		g := newGateway(t, v, nil, ups...)
		for _, c := range calls {
			a := send(t, c.method, g.url+c.path, c.body, c.hdr...)
			if c.anthropic {
				anthropicError(t, a, http.StatusServiceUnavailable)
			} else if _, code := openAIError(t, a, http.StatusServiceUnavailable); code != "auth_unavailable" {
				t.Errorf("%s: code %q", c.name, code)
			}
			if a.header.Get("X-Should-Retry") == "false" {
				t.Errorf("%s: a 503 must stay retryable", c.name)
			}
			if strings.Contains(string(a.body), "db.internal") || strings.Contains(string(a.body), "connection refused") {
				t.Errorf("%s: the answer carries the internal cause: %s", c.name, a.body)
			}
		}
		if v.calls.Load() != int64(len(calls)) {
			t.Fatalf("verifier consulted %d times for %d calls", v.calls.Load(), len(calls))
		}
	})
	if n := oa.RequestCount() + an.RequestCount(); n != 0 {
		t.Fatalf("failed authentication reached upstream %d times", n)
	}
}

// TestExpiredKey: expiry is judged by the gateway's clock; an expired key is
// a 401 in the caller's dialect with nothing sent upstream.
func TestExpiredKey(t *testing.T) {
	ks := newKeys(t)
	// Both expiries are years after the wall clock; only the gateway's
	// clock makes the first one past.
	past, future := gatewayNow.Add(-time.Second), gatewayNow.Add(time.Hour)
	expired := ks.issue("expired", func(k *store.Key) { k.ExpiresAt = &past })
	atNow := ks.issue("expires-now", func(k *store.Key) { at := gatewayNow; k.ExpiresAt = &at })
	valid := ks.issue("valid", func(k *store.Key) { k.ExpiresAt = &future })
	oa := newFake(t, "openai", fakeprovider.Options{})
	an := newFake(t, "anthropic", fakeprovider.Options{})
	var mu sync.Mutex
	var used []string
	record := func(o *gateway.Options) {
		o.KeyUsed = func(id string, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			used = append(used, id+"@"+at.Format(time.RFC3339))
		}
	}
	g := newGatewayWith(t, ks.verifier(), nil, record, oa.upstream("openai", "openai"), an.upstream("anthropic", "anthropic"))

	for _, k := range []string{expired, atNow} {
		a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+k)
		if msg, code := openAIError(t, a, http.StatusUnauthorized); code != "expired_api_key" || !strings.Contains(msg, "expired") {
			t.Fatalf("expired key on chat: %q %q", code, msg)
		}
		a = send(t, "POST", g.url+"/v1/messages", messagesBody, "X-Api-Key", k, "Anthropic-Version", "2023-06-01")
		if msg, typ := anthropicError(t, a, http.StatusUnauthorized); typ != "authentication_error" || !strings.Contains(msg, "expired") {
			t.Fatalf("expired key on messages: %q %q", typ, msg)
		}
	}
	if n := oa.RequestCount() + an.RequestCount(); n != 0 {
		t.Fatalf("expired keys reached upstream %d times", n)
	}
	if !strings.Contains(g.log.String(), "denied=expired_api_key") {
		t.Errorf("the access log does not record the denial:\n%s", g.log)
	}
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+valid); a.status != http.StatusOK {
		t.Fatalf("unexpired key: %d %s", a.status, a.body)
	}
	if oa.RequestCount() != 1 {
		t.Fatalf("the unexpired key's call did not reach upstream")
	}
	// Only the accepted call counts as a use, at the gateway's time.
	mu.Lock()
	defer mu.Unlock()
	if want := "key_valid@" + gatewayNow.Format(time.RFC3339); len(used) != 1 || used[0] != want {
		t.Fatalf("recorded uses %q, want [%s]", used, want)
	}
}
