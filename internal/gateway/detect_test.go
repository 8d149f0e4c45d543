package gateway_test

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/store"
)

// observed keeps what the gateway hands the detectors.
type observed struct {
	mu  sync.Mutex
	obs []detect.Observation
}

func (o *observed) Observe(ob detect.Observation) {
	o.mu.Lock()
	o.obs = append(o.obs, ob)
	o.mu.Unlock()
}

// TestDetectSeesRateLimit: the detectors learn a key's tightest request-rate
// limit, which they judge a key with little history by.
func TestDetectSeesRateLimit(t *testing.T) {
	k := newKeys(t)
	up := newFake(t, "openai", fakeprovider.Options{})
	seen := &observed{}
	mem := limit.NewMemory()
	g := newGatewayWith(t, k.verifier(), nil, func(o *gateway.Options) {
		o.Detect = seen
		o.Limits = gateway.LimitOptions{Shared: mem, Local: mem, Location: time.UTC, DefaultMaxTokens: 100}
	}, up.upstream("openai", "openai", "gpt-*"))
	key := k.issue("limited", func(r *store.Key) { r.Limits = limitsJSON(t, adminapi.Limits{RPS: 50, RPM: 600}) })
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key); a.status != 200 {
		t.Fatalf("chat: %d %s", a.status, a.body)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.obs) != 1 || seen.obs[0].LimitRPS != 10 {
		t.Fatalf("observations %+v, want one with the tightest limit, 600 a minute = 10 req/s", seen.obs)
	}
}
