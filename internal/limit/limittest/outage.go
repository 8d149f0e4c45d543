package limittest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/limit"
)

// Node is the limiter of one keygate node that keeps deciding while the
// state the nodes share cannot be reached (limit.Resilient).
type Node interface {
	limit.Limiter
	// Sync reaches the shared state once: heartbeat, end of an outage,
	// leases given back and taken. It fails while the state is cut off.
	Sync(ctx context.Context) error
	// Leased returns the units of quota c the node holds and has not spent.
	Leased(c limit.Check) int64
}

// Cluster is nodes sharing their state, which the test can cut off from
// any of them.
type Cluster struct {
	Nodes []Node
	// Cut makes the shared state unreachable from node i (true), as a
	// partition or a stopped Redis would, or reachable again (false).
	Cut func(i int, down bool)
}

// cut cuts (true) or heals (false) every node's link to the shared state.
func (c Cluster) cut(down bool) {
	for i := range c.Nodes {
		c.Cut(i, down)
	}
}

// NewClusterFunc returns three nodes sharing fresh state, each reading time
// from now and leasing lease of each quota.
type NewClusterFunc func(t *testing.T, now func() time.Time, lease float64) Cluster

// RunOutage runs the tests of limiters that must survive an outage of
// their shared state: quotas and budgets are spent from leases and never
// beyond their limit, rate limits are shared out between the nodes, and
// nothing admitted or settled during the outage is lost when it ends.
func RunOutage(t *testing.T, newCluster NewClusterFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newCluster NewClusterFunc)
	}{
		{"BudgetNeverOverspent", testOutageBudgetNeverOverspent},
		{"NoLeaseRefused", testOutageNoLeaseRefused},
		{"RateShared", testOutageRateShared},
		{"SettleKept", testOutageSettleKept},
		{"OwnLeaseGivenBack", testOutageOwnLeaseGivenBack},
		{"NoLeasesConfigured", testOutageNoLeasesConfigured},
		{"LeaseFollowsDemand", testOutageLeaseFollowsDemand},
		{"SpentQuotaRefusedAsSpent", testOutageSpentQuotaRefusedAsSpent},
		{"LeaseOfQuotaUsedElsewhere", testOutageLeaseOfQuotaUsedElsewhere},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newCluster) })
	}
}

// sync runs Sync on every node, failing the test on error.
func (c Cluster) sync(t *testing.T) {
	t.Helper()
	for i, n := range c.Nodes {
		if err := n.Sync(ctx(t)); err != nil {
			t.Fatalf("node %d: Sync: %v", i, err)
		}
	}
}

// unavailable fails the test unless err says the shared state is
// unavailable.
func unavailable(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, limit.ErrUnavailable) {
		t.Fatalf("Admit: error %v, want ErrUnavailable", err)
	}
}

// drain admits cost-1 requests of q on l until it stops admitting, and
// returns the decisions admitted. Refusals must be ErrUnavailable.
func drain(t *testing.T, l limit.Limiter, q limit.Check, outage bool) []limit.Decision {
	t.Helper()
	var got []limit.Decision
	for range 1000 {
		d, err := l.Admit(ctx(t), []limit.Check{q})
		if outage && err != nil {
			unavailable(t, err)
			return got
		}
		if err != nil {
			t.Fatalf("Admit: %v", err)
		}
		if !d.Allowed {
			return got
		}
		got = append(got, d)
	}
	t.Fatal("the quota never ran out")
	return nil
}

// testOutageBudgetNeverOverspent: two of three nodes are cut off from the
// shared state while the third keeps spending the same budget through it,
// all concurrently; together they never admit more than the limit, and
// once the outage is over and the leases are given back, exactly the limit.
func testOutageBudgetNeverOverspent(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, 0.1)
	q := quota("key:a:usd", 120, limit.Day, nil, 1)
	admitted := 0
	for _, n := range c.Nodes {
		d := admit(t, n, q)
		allowed(t, d)
		settle(t, n, d, 1)
		admitted++
	}
	c.sync(t)
	leased := int64(0)
	for i, n := range c.Nodes[1:] {
		l := n.Leased(q)
		if l < 1 {
			t.Fatalf("node %d holds no lease of a budget it spends from", i+1)
		}
		leased += l
	}

	c.Cut(1, true)
	c.Cut(2, true)
	var mu sync.Mutex
	held := make([][]limit.Decision, 3)
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Go(func() {
			got := drain(t, n, q, i > 0)
			mu.Lock()
			held[i] = got
			mu.Unlock()
		})
	}
	wg.Wait()
	cutOff := 0
	for i, n := range c.Nodes[1:] {
		cutOff += len(held[i+1])
		if n.Leased(q) != 0 {
			t.Errorf("node %d stopped admitting with %d units of its lease left", i+1, n.Leased(q))
		}
	}
	if int64(cutOff) != leased {
		t.Fatalf("the nodes cut off admitted %d units; their leases held %d", cutOff, leased)
	}
	during := cutOff + len(held[0])
	if admitted+during > 120 {
		t.Fatalf("%d units of a budget of 120 admitted while two nodes were cut off", admitted+during)
	}
	// Settle some of the outage's requests during it, the rest after.
	for i, n := range c.Nodes {
		for _, d := range held[i][:len(held[i])/2] {
			settle(t, n, d, 1)
		}
	}
	c.cut(false)
	for i, n := range c.Nodes {
		for _, d := range held[i][len(held[i])/2:] {
			settle(t, n, d, 1)
		}
	}
	admitted += during
	c.sync(t) // leases spent from are given back, and new ones taken

	// Everything left is admitted once every node's lease is back:
	// nothing the outage spent was lost, nothing was counted twice.
	clock.Advance(10 * time.Minute)
	c.sync(t)
	for _, d := range drain(t, c.Nodes[0], q, false) {
		settle(t, c.Nodes[0], d, 1)
		admitted++
	}
	if admitted != 120 {
		t.Fatalf("the nodes admitted %d units of a budget of 120 across the outage", admitted)
	}
}

// testOutageNoLeaseRefused: a quota no node has leased is refused during
// an outage, without consuming anything; a request under rate limits only
// is admitted.
func testOutageNoLeaseRefused(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, 0.1)
	c.sync(t)
	q := quota("key:b:usd", 100, limit.Month, nil, 5)
	r := rate("key:b:rpm", 60, time.Minute, 1)
	c.cut(true)
	_, err := c.Nodes[0].Admit(ctx(t), []limit.Check{r, q})
	unavailable(t, err)
	d := admit(t, c.Nodes[0], r)
	allowed(t, d)
	c.cut(false)
	settle(t, c.Nodes[0], d, 1)
	c.sync(t)
	allowed(t, admit(t, c.Nodes[1], q), 95)
}

// testOutageRateShared: during an outage each node keeps its share of a
// rate limit, so the nodes together stay within it.
func testOutageRateShared(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, 0.1)
	c.sync(t)
	c.sync(t) // the first node to beat saw only itself
	r := rate("key:c:rpm", 30, time.Minute, 1)
	k := conc("key:c:conc", 6)
	c.cut(true)
	total := 0
	for i, n := range c.Nodes {
		got := 0
		for range 20 {
			d, err := n.Admit(ctx(t), []limit.Check{r})
			if err != nil {
				t.Fatalf("node %d: Admit of a rate limit during an outage: %v", i, err)
			}
			if !d.Allowed {
				break
			}
			got++
		}
		if got != 10 {
			t.Errorf("node %d admitted %d of a 30/min limit shared by 3 nodes, want 10", i, got)
		}
		total += got
		for j := range 3 {
			d, err := n.Admit(ctx(t), []limit.Check{k})
			if err != nil || d.Allowed != (j < 2) {
				t.Fatalf("node %d: concurrency %d of a limit of 6 shared by 3: allowed %v, err %v", i, j+1, d.Allowed, err)
			}
		}
	}
	if total > 30 {
		t.Fatalf("three nodes admitted %d requests of a 30/min limit during an outage", total)
	}
}

// testOutageSettleKept: a request admitted before an outage and settled
// during it is settled when the outage ends, not lost.
func testOutageSettleKept(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, -1)
	q := quota("key:d:usd", 100, limit.Total, nil, 60)
	d := admit(t, c.Nodes[0], q)
	allowed(t, d, 40)
	c.cut(true)
	if err := c.Nodes[0].Settle(ctx(t), d.Reservation, []int64{10}); err != nil {
		t.Fatalf("Settle during an outage: %v, want it kept for later", err)
	}
	if err := c.Nodes[0].Sync(ctx(t)); err == nil {
		t.Fatal("Sync reached a shared state that is cut off")
	}
	c.cut(false)
	c.sync(t)
	allowed(t, admit(t, c.Nodes[1], quota("key:d:usd", 100, limit.Total, nil, 90)), 0)
}

// testOutageOwnLeaseGivenBack: while the shared state answers, a node's own
// lease never refuses its own requests: the last units of a budget go to
// the node that asks for them.
func testOutageOwnLeaseGivenBack(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, 0.5)
	n := c.Nodes[0]
	q := quota("key:e:usd", 40, limit.Day, nil, 1)
	allowed(t, admit(t, n, q), 39)
	if err := n.Sync(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n.Leased(q) == 0 {
		t.Fatal("the node took no lease of a budget in use")
	}
	got := len(drain(t, n, q, false))
	if got != 39 {
		t.Fatalf("a node holding a lease was admitted %d of the 39 units left, want all", got)
	}
}

// testOutageNoLeasesConfigured: with leases turned off, quotas and budgets
// are refused during an outage, as without a lease.
func testOutageNoLeasesConfigured(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, -1)
	q := quota("key:f:usd", 100, limit.Day, nil, 1)
	allowed(t, admit(t, c.Nodes[0], q))
	c.sync(t)
	if l := c.Nodes[0].Leased(q); l != 0 {
		t.Fatalf("a node configured without leases holds %d units", l)
	}
	c.cut(true)
	_, err := c.Nodes[0].Admit(ctx(t), []limit.Check{q})
	unavailable(t, err)
}

// testOutageLeaseFollowsDemand: a node spending a quota fast leases about a
// minute of its own demand, far more than the least share, so an outage
// does not cut it off at once; never more than half of what is left.
func testOutageLeaseFollowsDemand(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, 0.001)
	n := c.Nodes[0]
	q := quota("key:g:tokens", 1_000_000, limit.Month, nil, 100)
	spent := int64(0)
	for range 30 {
		for range 10 {
			d := admit(t, n, q)
			allowed(t, d)
			settle(t, n, d, 100)
			spent += 100
		}
		clock.Advance(time.Second)
		if err := n.Sync(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// 1000 units a second: a minute of it is ~60,000; the least share is 1,000.
	got := n.Leased(q)
	if got < 20_000 || got > (1_000_000-spent)/2 {
		t.Fatalf("a node spending 1000 units/s of a 1,000,000 quota leases %d; want about a minute of its demand, at most half of what is left", got)
	}
	// Spent down to the end, the lease shrinks with what is left.
	big := quota("key:g:tokens", 1_000_000, limit.Month, nil, 900_000-spent)
	d := admit(t, n, big)
	allowed(t, d)
	settle(t, n, d, 900_000-spent)
	clock.Advance(time.Second)
	for range 3 {
		if err := n.Sync(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Leased(q); got > 100_000/2 {
		t.Fatalf("with 100,000 units left the node still leases %d", got)
	}
}

// testOutageSpentQuotaRefusedAsSpent: a quota the shared state last said
// was spent is refused as spent during an outage (a denial naming it, as
// the shared state would give), not as unavailable; one with room left but
// no lease is unavailable.
func testOutageSpentQuotaRefusedAsSpent(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, -1)
	n := c.Nodes[0]
	spent := quota("key:h:usd", 3, limit.Total, nil, 1)
	room := quota("key:i:usd", 100, limit.Day, nil, 1)
	r := rate("key:h:rpm", 600, time.Minute, 1)
	for range 3 {
		allowed(t, admit(t, n, r, spent))
	}
	denied(t, admit(t, n, r, spent), 1, -1, 600-3, 0)
	allowed(t, admit(t, n, room), 99)
	c.cut(true)
	d, err := n.Admit(ctx(t), []limit.Check{r, spent})
	if err != nil {
		t.Fatalf("a spent quota during an outage: error %v, want it refused as spent", err)
	}
	if d.Allowed || d.Denied != 1 || d.RetryAfter != -1 {
		t.Fatalf("a spent lifetime quota during an outage: %+v", d)
	}
	_, err = n.Admit(ctx(t), []limit.Check{room})
	unavailable(t, err)
}

// testOutageLeaseOfQuotaUsedElsewhere: a node leases a quota that only
// another node's requests have used (it just started, or the load balancer
// has not sent it the key yet), so it serves the quota through an outage;
// once nobody has used the quota for a while, every node gives its slice
// back and the whole quota is there again.
func testOutageLeaseOfQuotaUsedElsewhere(t *testing.T, newCluster NewClusterFunc) {
	clock := NewClock(start())
	c := newCluster(t, clock.Now, 0.1)
	q := quota("key:e:usd", 100, limit.Day, time.UTC, 1)
	d := admit(t, c.Nodes[0], q)
	allowed(t, d)
	settle(t, c.Nodes[0], d, 1)
	c.sync(t) // node 0 tells the others; they lease it
	c.sync(t)
	for i, n := range c.Nodes[1:] {
		if n.Leased(q) < 1 {
			t.Fatalf("node %d holds no lease of a quota another node uses", i+1)
		}
	}
	c.Cut(2, true)
	d = admit(t, c.Nodes[2], q)
	allowed(t, d)
	settle(t, c.Nodes[2], d, 1)
	c.Cut(2, false)
	c.sync(t)

	// Nobody uses it for longer than a lease is kept idle: every slice
	// goes back, and all that was not spent can be spent again.
	clock.Advance(10 * time.Minute)
	c.sync(t)
	c.sync(t)
	for i, n := range c.Nodes {
		if l := n.Leased(q); l != 0 {
			t.Fatalf("node %d still holds %d units of a quota nobody used for 10 minutes", i, l)
		}
	}
	got := drain(t, c.Nodes[1], q, false)
	if len(got) != 98 {
		t.Fatalf("%d units admitted after the leases went back; want the 98 left of 100", len(got))
	}
}
