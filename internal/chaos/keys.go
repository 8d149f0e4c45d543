package chaos

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// keyClass says what limits a key has, and so which refusals are right for it.
type keyClass int

const (
	plainKey  keyClass = iota // no limits: only a 2xx is right
	ratedKey                  // a per-minute rate: 429 rate_limit_exceeded is right
	quotaKey                  // a lifetime request quota: 429 insufficient_quota is right once spent
	budgetKey                 // a lifetime spend budget: 429 budget_exceeded is right once spent
	churnKey                  // created, rotated and revoked during the run: 401 is right once retired
)

func (c keyClass) String() string {
	return [...]string{"plain", "rate-limited", "quota", "budget", "churn"}[c]
}

// apiKey is one keygate key the load uses.
type apiKey struct {
	id     string
	name   string
	secret string
	class  keyClass
	limit  int64 // quota in requests, or budget in micro-dollars
	small  bool  // a quota or budget spent before the load starts

	mu sync.Mutex
	// retiring is when the suite asked keygate to revoke the key, or when a
	// rotation's grace ends: from then a 401 is right.
	retiring time.Time
	// retired is when that took effect through the node that made the
	// change; a 2xx for a request sent more than a second later is wrong.
	retired time.Time

	admitted atomic.Int64 // 2xx answers seen by clients
	spent    atomic.Int64 // micro-dollars in those answers' usage
}

// reserveMicro bounds what one chat call of the load reserves of a
// budget: its prompt's tokens and max_tokens (64) of output, at the fake
// deployments' prices.
const reserveMicro = 200

// spentOut reports whether the key's quota or budget, as its clients saw
// it spent, cannot admit another call: any refusal is then right for it.
func (k *apiKey) spentOut() bool {
	switch k.class {
	case quotaKey:
		return k.admitted.Load() >= k.limit
	case budgetKey:
		return k.limit-k.spent.Load() < reserveMicro
	}
	return false
}

// state reads the key's retirement times.
func (k *apiKey) state() (retiring, retired time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.retiring, k.retired
}

func (k *apiKey) retire(asked, done time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.retiring.IsZero() || asked.Before(k.retiring) {
		k.retiring, k.retired = asked, done
	}
}

// keyring holds every key the load picks from, by class.
type keyring struct {
	mu      sync.Mutex
	byClass map[keyClass][]*apiKey
	all     []*apiKey
}

func newKeyring() *keyring { return &keyring{byClass: map[keyClass][]*apiKey{}} }

func (r *keyring) add(k *apiKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byClass[k.class] = append(r.byClass[k.class], k)
	r.all = append(r.all, k)
}

// pick returns a random key of class c, nil when there is none. Churn
// keys retired more than 20 seconds ago are left out: the load keeps
// checking fresh revocations, not old ones.
func (r *keyring) pick(c keyClass, rng *rand.Rand) *apiKey {
	r.mu.Lock()
	ks := r.byClass[c]
	r.mu.Unlock()
	if len(ks) == 0 {
		return nil
	}
	for range 4 {
		k := ks[rng.IntN(len(ks))]
		if c != churnKey {
			return k
		}
		if at, _ := k.state(); at.IsZero() || time.Since(at) < 20*time.Second {
			return k
		}
	}
	return nil
}

// snapshot returns every key.
func (r *keyring) snapshot() []*apiKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*apiKey(nil), r.all...)
}

// live returns the churn keys not yet retired.
func (r *keyring) live(c keyClass) []*apiKey {
	r.mu.Lock()
	ks := append([]*apiKey(nil), r.byClass[c]...)
	r.mu.Unlock()
	var out []*apiKey
	for _, k := range ks {
		if at, _ := k.state(); at.IsZero() {
			out = append(out, k)
		}
	}
	return out
}
