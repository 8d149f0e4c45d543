package gateway_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/store"
)

// bigChat is a chat request padded to about n bytes.
func bigChat(model string, n int) string {
	pad := strings.Repeat("x", max(n-120, 0))
	return `{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":"` + pad + `"}]}`
}

// countingBody counts how much of a request body the server read.
type countingBody struct {
	r    io.Reader
	read *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

// TestRequestBodiesAreBoundedInMemory: the gateway holds at most
// client.max_inflight_body_bytes of request bodies at once: a chat body
// three times while it is read and routed (it may be translated), once
// after, and three times for as long as it is translated. A call that
// cannot get its share within a couple of seconds is refused 503 with
// Retry-After, and the others are served.
func TestRequestBodiesAreBoundedInMemory(t *testing.T) {
	k := newKeys(t)
	openai := newFake(t, "openai", fakeprovider.Options{Latency: 3 * time.Second})
	anthropic := newFake(t, "anthropic", fakeprovider.Options{Latency: 3 * time.Second})
	g := newGatewayWith(t, k.verifier(), nil, func(o *gateway.Options) {
		o.MaxBodyBytes = 4 << 20
		o.MaxInflightBodyBytes = 10 << 20
	}, openai.upstream("openai", "openai", "gpt-*"), anthropic.upstream("anthropic", "anthropic", "claude-*"))
	key := k.issue("big", nil)
	body := bigChat("gpt-4o-mini", 2<<20)
	var mu sync.Mutex
	statuses := map[int]int{}
	var retryAfter atomic.Bool
	var wg sync.WaitGroup
	for range 5 { // 5 x 2 MiB against 10 MiB: three fit (2+2+2, and 4 more while the third is read)
		wg.Go(func() {
			a := send(t, "POST", g.url+"/v1/chat/completions", body, "Authorization", "Bearer "+key)
			mu.Lock()
			statuses[a.status]++
			mu.Unlock()
			if a.status == 503 && a.header.Get("Retry-After") != "" && strings.Contains(string(a.body), "server_busy") {
				retryAfter.Store(true)
			}
		})
	}
	wg.Wait()
	if statuses[200] != 3 || statuses[503] != 2 || !retryAfter.Load() {
		t.Fatalf("5 bodies of 2 MiB against a 10 MiB budget: %v; want 3 served and 2 refused 503 with Retry-After", statuses)
	}
	// A translated body counts three times throughout: two of them cannot
	// run at once in 10 MiB, one can.
	statuses = map[int]int{}
	translated := bigChat("claude-haiku-4-5", 2<<20)
	for range 2 {
		wg.Go(func() {
			a := send(t, "POST", g.url+"/v1/chat/completions", translated, "Authorization", "Bearer "+key)
			mu.Lock()
			statuses[a.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[200] != 1 || statuses[503] != 1 {
		t.Fatalf("2 translated bodies of 2 MiB against a 10 MiB budget: %v; want 1 served, 1 refused", statuses)
	}
	// Once everything has finished the whole budget is free again.
	got := map[int]int{}
	for range 3 {
		wg.Go(func() {
			a := send(t, "POST", g.url+"/v1/chat/completions", body, "Authorization", "Bearer "+key)
			mu.Lock()
			got[a.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[200] != 3 {
		t.Fatalf("after the others finished, 3 bodies of 2 MiB: %v", got)
	}
}

// TestLargeBodiesAreAdmittedBeforeTheyAreRead: a key limited to two
// requests in flight has at most two large bodies read at once; the rest
// are refused 429 before keygate reads them.
func TestLargeBodiesAreAdmittedBeforeTheyAreRead(t *testing.T) {
	k := newKeys(t)
	up := newFake(t, "openai", fakeprovider.Options{Latency: 2 * time.Second})
	mem := limit.NewMemory()
	g := newGatewayWith(t, k.verifier(), nil, func(o *gateway.Options) {
		o.MaxBodyBytes = 8 << 20
		o.Limits = gateway.LimitOptions{Shared: mem, Local: mem, DefaultMaxTokens: 16}
	}, up.upstream("openai", "openai", "gpt-*"))
	key := k.issue("conc2", func(rec *store.Key) { rec.Limits = limitsJSON(t, adminapi.Limits{Concurrency: 2}) })
	const size = 6 << 20
	body := bigChat("gpt-4o-mini", size)
	type result struct {
		status int
		read   int64
	}
	results := make([]result, 8)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			var read atomic.Int64
			req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", &countingBody{r: strings.NewReader(body), read: &read})
			req.ContentLength = int64(len(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may close a refused request's connection
				// before the client finished sending; that is a refusal.
				results[i] = result{status: -1, read: read.Load()}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results[i] = result{status: resp.StatusCode, read: read.Load()}
		})
	}
	wg.Wait()
	served := 0
	for i, r := range results {
		switch r.status {
		case 200:
			served++
		case 429, -1:
			if r.read >= size {
				t.Fatalf("request %d was refused only after keygate read its whole %d-byte body", i, size)
			}
		default:
			t.Fatalf("request %d: status %d", i, r.status)
		}
	}
	if served != 2 || up.RequestCount() != 2 {
		t.Fatalf("%d served, %d upstream; want 2 of 8 under a concurrency limit of 2 (%v)", served, up.RequestCount(), results)
	}
	// The slots were given back: two more pass.
	for i := range 2 {
		if a := send(t, "POST", g.url+"/v1/chat/completions", body, "Authorization", "Bearer "+key); a.status != 200 {
			t.Fatalf("after the first ones finished, request %s: %d", strconv.Itoa(i), a.status)
		}
	}
}
