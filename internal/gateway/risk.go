package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/web"
)

// RiskOptions turns on the zero-trust risk rules: each request is compared
// with what keygate has learned of its key's usual places and hours.
type RiskOptions struct {
	Rules policy.RiskRules
	// GeoIP places client addresses; nil judges hours and networks only.
	GeoIP interface {
		Lookup(addr netip.Addr) (policy.Location, bool)
	}
	// History keeps what is learned per key across restarts and nodes:
	// read at a key's first use on this node, written by FlushHistories.
	// nil keeps it in memory only.
	History interface {
		// LoadKeyHistory returns what was learned of a key, or nil for
		// nothing yet.
		LoadKeyHistory(ctx context.Context, keyID string) ([]byte, error)
		SaveKeyHistories(ctx context.Context, hs []KeyHistory) error
	}
}

// KeyHistory is what the risk rules learned of one key (JSON), as saved.
type KeyHistory struct {
	KeyID string
	Data  []byte
	At    time.Time
}

// histories is what this node has learned of each key's use, one lock per
// key so keys do not wait on each other. When what is learned is saved
// (RiskOptions.History), FlushHistories drops the keys not used since its
// previous run, so memory holds the keys in use, not every key ever used;
// a dropped key's next request reads its history back.
type histories struct {
	mu sync.RWMutex
	m  map[string]*keyHistory
}

type keyHistory struct {
	mu     sync.Mutex
	h      policy.History
	loaded bool // read from the store (or found absent)
	dirty  bool // learned something since the last flush
	used   bool // a request read it since the last flush
	gone   bool // dropped by FlushHistories: no longer the key's entry
}

// lock returns the key's entry, locked and current: an entry dropped
// while the caller waited for it is replaced by a fresh one.
func (hs *histories) lock(id string) *keyHistory {
	for {
		kh := hs.of(id)
		kh.mu.Lock()
		if !kh.gone {
			return kh
		}
		kh.mu.Unlock()
		hs.drop(id, kh)
	}
}

// drop removes kh from the map if it is still id's entry.
func (hs *histories) drop(id string, kh *keyHistory) {
	hs.mu.Lock()
	if hs.m[id] == kh {
		delete(hs.m, id)
	}
	hs.mu.Unlock()
}

func (hs *histories) of(id string) *keyHistory {
	hs.mu.RLock()
	kh := hs.m[id]
	hs.mu.RUnlock()
	if kh != nil {
		return kh
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = map[string]*keyHistory{}
	}
	if kh = hs.m[id]; kh == nil {
		kh = &keyHistory{}
		hs.m[id] = kh
	}
	return kh
}

// FlushHistories writes what was learned since the last flush, for every
// key at once, then forgets the keys no request used since the previous
// flush (saved, they are read again at their next use). keygate calls it
// periodically and at shutdown. Nodes write their own view; the last write
// wins.
func (g *Gateway) FlushHistories(ctx context.Context) {
	ro := g.opts.Risk
	if ro == nil || ro.History == nil {
		return
	}
	g.histories.mu.RLock()
	khs := make(map[string]*keyHistory, len(g.histories.m))
	for id, kh := range g.histories.m {
		khs[id] = kh
	}
	g.histories.mu.RUnlock()
	now := g.opts.Now()
	var batch []KeyHistory
	for id, kh := range khs {
		kh.mu.Lock()
		if !kh.dirty {
			kh.mu.Unlock()
			continue
		}
		data, err := json.Marshal(kh.h)
		kh.dirty = false
		kh.mu.Unlock()
		if err == nil {
			batch = append(batch, KeyHistory{KeyID: id, Data: data, At: now})
		}
	}
	if len(batch) > 0 {
		if err := ro.History.SaveKeyHistories(ctx, batch); err != nil {
			g.opts.Log.Warn("could not save what the risk rules learned of keys; will retry", "keys", len(batch), "err", err)
			for _, h := range batch {
				kh := khs[h.KeyID]
				kh.mu.Lock()
				kh.dirty = true
				kh.mu.Unlock()
			}
		}
	}
	for id, kh := range khs {
		kh.mu.Lock()
		idle := !kh.used && !kh.dirty
		kh.used = false
		kh.gone = kh.gone || idle
		kh.mu.Unlock()
		if idle {
			g.histories.drop(id, kh)
		}
	}
}

// recentKept bounds the past uses kept per key.
const recentKept = policy.DefaultRecent

// assessRisk judges a request against its key's history. It refuses a
// request the rules refuse or want a second factor for; every decision
// with findings is logged with its reasons. A request let through is
// learned from.
func (g *Gateway) assessRisk(r *http.Request, c *call, key *principal.Principal) *Denial {
	ro := g.opts.Risk
	if ro == nil {
		return nil
	}
	addr := web.ClientAddr(r, g.opts.TrustedProxies)
	var loc policy.Location
	if ro.GeoIP != nil {
		loc, _ = ro.GeoIP.Lookup(addr)
	}
	if !loc.Network.IsValid() && addr.IsValid() {
		// Without a database entry, the client's /24 (IPv4) or /48 (IPv6)
		// still tells a new network from a known one.
		bits := 24
		if addr.Is6() {
			bits = 48
		}
		loc.Network, _ = addr.Prefix(bits)
	}
	now := g.opts.Now()
	stepUp := c.tokenScope != nil && slices.Contains(c.tokenAMR, "otp")

	kh := g.histories.lock(key.ID)
	kh.used = true
	if !kh.loaded && ro.History != nil {
		// A key's first use on this node: start from what other nodes, and
		// earlier runs, learned.
		if data, err := ro.History.LoadKeyHistory(r.Context(), key.ID); err == nil {
			var h policy.History
			if data != nil && json.Unmarshal(data, &h) == nil {
				kh.h = h
			}
		} else {
			g.opts.Log.Warn("could not read what the risk rules learned of a key; judging from this node's view", "key_id", key.ID, "err", err)
		}
	}
	kh.loaded = true
	d := policy.Assess(ro.Rules, kh.h, now, loc, stepUp)
	if d.Action == policy.Allow {
		kh.h.Observe(policy.Sighting{At: now, Loc: loc}, ro.Rules.Location, recentKept)
		kh.dirty = true
	}
	kh.mu.Unlock()
	c.risk = d.Action.String()
	for _, f := range d.Findings {
		c.riskRules = append(c.riskRules, f.Rule)
	}
	if len(d.Findings) > 0 {
		reasons := make([]string, 0, len(d.Findings))
		for _, f := range d.Findings {
			reasons = append(reasons, f.Rule+": "+f.Reason)
		}
		g.opts.Log.Warn("risk rules flagged a request", "request_id", web.RequestID(r.Context()), "key_id", key.ID,
			"decision", d.Action.String(), "client", addr.String(), "country", loc.Country, "reasons", strings.Join(reasons, "; "))
	}
	switch d.Action {
	case policy.Deny:
		return deny(http.StatusForbidden, "risk_denied", "keygate refused this request: "+findingsText(d))
	case policy.StepUp:
		return denyf(http.StatusUnauthorized, "step_up_required",
			"this request needs a second factor (%s): exchange your key with a one-time password for an access token "+
				"(keygate token issue --totp CODE, or POST /oauth/token with totp=CODE) and send that token instead", findingsText(d))
	}
	return nil
}

func findingsText(d policy.Decision) string {
	var parts []string
	for _, f := range d.Findings {
		if f.Action == d.Action {
			parts = append(parts, f.Reason)
		}
	}
	return strings.Join(parts, "; ")
}
