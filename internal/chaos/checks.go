package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

// Check is one thing the run must hold to, and whether it did.
type Check struct {
	// Name says what was checked.
	Name string
	// OK is whether it held.
	OK bool
	// Detail gives the numbers, or what went wrong.
	Detail string
}

// auditLossWindow is how long before a kill -9 an answered call's audit
// event may be lost: docs/audit.md bounds the loss to the last flush
// interval (100 ms) and the batch being written, measured at about 300 ms
// on a loaded machine; a second leaves room for a slow database write.
const auditLossWindow = time.Second

// usageFlushBound is how long a node holds usage rows in memory before
// writing them (every second, as docs/limits.md states, and a write may
// take a moment on a loaded machine).
const usageFlushBound = 2 * time.Second

func (s *suite) checks(ctx context.Context, rs []result, overall Row) []Check {
	var out []Check
	o := s.c.o
	out = append(out, Check{
		Name:   fmt.Sprintf("availability at least %.3f%%", o.MinAvailability*100),
		OK:     overall.Requests > 0 && overall.Availability >= o.MinAvailability,
		Detail: fmt.Sprintf("%.3f%% of %d calls answered correctly (%d refused by design, %d failed)", overall.Availability*100, overall.Requests, overall.Refused, overall.Failed),
	})
	out = append(out, s.checkFaultsRan())
	ac, err := s.c.adminClient(0)
	if err != nil {
		return append(out, Check{Name: "admin API", Detail: err.Error()})
	}
	out = append(out, s.checkAudit(ctx, ac, rs))
	out = append(out, s.checkVerify(ctx)...)
	if n := s.c.nodes[2]; n.disk != nil {
		out = append(out, s.checkAuditFile(ctx, ac, n))
	}
	usage, err := s.recordedUsage(ctx, ac)
	if err != nil {
		out = append(out, Check{Name: "spend recorded equals spend billed", Detail: "could not read usage: " + err.Error()})
	} else {
		out = append(out, s.checkSpend(rs, usage), s.checkLimits(usage))
	}
	out = append(out, s.checkProbes()...)
	out = append(out, s.checkAdmin())
	if len(s.soak) > 0 {
		lines, ok := soakVerdict(s.soak)
		out = append(out, Check{Name: "soak: memory, goroutines, open files and latency flat", OK: ok, Detail: strings.Join(lines, "\n")})
	}
	return out
}

// checkFaultsRan fails when a fault could not be injected or healed.
func (s *suite) checkFaultsRan() Check {
	var errs []string
	for _, p := range s.phases {
		for _, e := range p.errs {
			errs = append(errs, p.name+": "+e)
		}
	}
	return Check{Name: "every fault injected and healed", OK: len(errs) == 0, Detail: orNone(errs)}
}

// checkAudit matches every admitted call to its audit event by request id.
func (s *suite) checkAudit(ctx context.Context, ac *adminclient.Client, rs []result) Check {
	c := Check{Name: "every admitted call has its audit event"}
	ids, err := auditedRequestIDs(ctx, ac)
	if err != nil {
		c.Detail = "could not read the audit trail: " + err.Error()
		return c
	}
	var admitted, noID, excused int
	var missing []string
	var oldestExcused time.Duration
	for _, r := range rs {
		if !r.admitted() {
			continue
		}
		admitted++
		if r.requestID == "" {
			noID++
			continue
		}
		if ids[r.requestID] {
			continue
		}
		if k, ok := s.killedAfter(r); ok {
			excused++
			oldestExcused = max(oldestExcused, k.at.Sub(r.end))
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (%s, answered %s)", r.requestID, r.kind, r.end.Format("15:04:05.000")))
	}
	c.OK = len(missing) == 0 && noID == 0
	c.Detail = fmt.Sprintf("%d admitted calls, %d audit events read; %d lost to kill -9 within the documented bound (oldest answered %v before the kill); %d missing; %d answers without X-Request-Id",
		admitted, len(ids), excused, oldestExcused.Round(time.Millisecond), len(missing), noID)
	if len(missing) > 0 {
		c.Detail += "; first missing: " + strings.Join(missing[:min(5, len(missing))], ", ")
	}
	return c
}

// killedAfter finds a kill -9 of the process that answered r, within
// auditLossWindow after the answer, or while r was still in flight (a
// stream the kill cut off: its client sees the end only after the kill).
func (s *suite) killedAfter(r result) (killEvent, bool) {
	p := requestIDPrefix(r.requestID)
	for _, k := range s.kills {
		if k.prefix != p {
			continue
		}
		if !r.end.After(k.at) && k.at.Sub(r.end) <= auditLossWindow {
			return k, true
		}
		if r.start.Before(k.at) && r.end.After(k.at) {
			return k, true
		}
	}
	return killEvent{}, false
}

// auditedRequestIDs reads every node's stored audit trail through the
// admin API and returns the request ids its events carry.
func auditedRequestIDs(ctx context.Context, ac *adminclient.Client) (map[string]bool, error) {
	ids := map[string]bool{}
	err := eachAuditRow(ctx, ac, func(_ string, row adminapi.AuditRow) {
		var ev struct {
			Fields map[string]any `json:"fields"`
		}
		if json.Unmarshal([]byte(row.Data), &ev) == nil {
			if id, ok := ev.Fields["request_id"].(string); ok {
				ids[id] = true
			}
		}
	})
	return ids, err
}

// eachAuditRow calls fn with every stored audit event of every node, node
// by node in order, read through the admin API a page at a time.
func eachAuditRow(ctx context.Context, ac *adminclient.Client, fn func(node string, row adminapi.AuditRow)) error {
	nodes, err := ac.AuditNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		var after uint64
		for {
			rows, err := ac.AuditRows(ctx, false, n, after, 1000)
			if err != nil {
				return fmt.Errorf("node %s after seq %d: %w", n, after, err)
			}
			for _, row := range rows {
				fn(n, row)
				after = row.Seq
			}
			if len(rows) < 1000 {
				break
			}
		}
	}
	return nil
}

// checkVerify runs `keygate audit verify` against every node's admin API.
func (s *suite) checkVerify(ctx context.Context) []Check {
	var out []Check
	for _, n := range s.c.nodes {
		c := Check{Name: "keygate audit verify through " + n.name}
		if !n.running() {
			c.Detail = "the node is not running"
			out = append(out, c)
			continue
		}
		cmd := exec.CommandContext(ctx, s.c.o.Binary, "audit", "verify")
		cmd.Env = append(os.Environ(), "KEYGATE_ADMIN_URL=http://"+n.admin, "KEYGATE_ADMIN_TOKEN="+s.c.cred.Reveal(), "HOME="+s.c.dir)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		c.OK = err == nil
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		var keep []string
		for _, l := range lines {
			if strings.Contains(l, "intact") || strings.Contains(l, "tamper") || strings.Contains(l, "rror") || !c.OK {
				keep = append(keep, strings.TrimSpace(l))
			}
		}
		c.Detail = strings.Join(keep, "; ")
		if err != nil {
			c.Detail = err.Error() + ": " + c.Detail
		}
		out = append(out, c)
	}
	return out
}

// keyUsage is what keygate recorded for one key.
type keyUsage struct {
	requests, micro int64
}

// recordedUsage reads every key's usage through the admin API.
func (s *suite) recordedUsage(ctx context.Context, ac *adminclient.Client) (map[string]keyUsage, error) {
	out := map[string]keyUsage{}
	for _, k := range s.c.keys.snapshot() {
		u, err := ac.KeyUsage(ctx, k.id, 2)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.name, err)
		}
		var ku keyUsage
		for _, row := range u.Rows {
			ku.requests += row.Requests
			ku.micro += row.MicroUSD
		}
		out[k.id] = ku
	}
	return out, nil
}

// checkSpend compares spend recorded by keygate with spend the fake
// providers billed. The only loss allowed is what a kill -9 may take as
// documented: the calls in flight when a node was killed (the provider may
// have billed them, the process could not record them) and the usage rows
// of calls that node answered within usageFlushBound before the kill.
func (s *suite) checkSpend(rs []result, usage map[string]keyUsage) Check {
	var recorded, billed, seen, maxCall int64
	for _, u := range usage {
		recorded += u.micro
	}
	for _, u := range s.c.ups {
		billed += u.billedMicro.Load()
	}
	for _, r := range rs {
		seen += r.micro
		maxCall = max(maxCall, r.micro)
	}
	var allowance, unflushed int64
	for _, k := range s.kills {
		allowance += k.inFlight * maxCall
		for _, r := range rs {
			if r.admitted() && requestIDPrefix(r.requestID) == k.prefix && !r.end.After(k.at) && k.at.Sub(r.end) <= usageFlushBound {
				unflushed += r.micro
			}
		}
	}
	diff := billed - recorded
	c := Check{Name: "spend recorded equals spend billed"}
	c.OK = diff >= 0 && diff <= allowance+unflushed
	c.Detail = fmt.Sprintf("billed by the fake providers %d µUSD, recorded by keygate %d µUSD, seen in answers %d µUSD; difference %d µUSD (allowed: calls in flight at a kill -9, at most %d µUSD, and calls a killed node answered in the %v before its kill -9, whose usage rows it may have held unwritten: %d µUSD)",
		billed, recorded, seen, diff, allowance, usageFlushBound, unflushed)
	if diff != 0 {
		c.Detail += "; " + s.billingBreakdown(rs) + "; " + keyBreakdown(rs, usage)
	}
	return c
}

// billingBreakdown says where billed and answered spend part, call by
// call: calls billed more than once, and billed calls whose client saw no
// successful answer, by what the client saw and the phase it fell in.
func (s *suite) billingBreakdown(rs []result) string {
	bySeq := make(map[int64]*result, len(rs))
	for i := range rs {
		bySeq[rs[i].seq] = &rs[i]
	}
	var twice, twiceMicro, differ, differMicro int64
	unanswered := map[string]int64{}
	unansweredCalls := map[string]int{}
	for _, u := range s.c.ups {
		for n, costs := range u.bills() {
			var sum int64
			for _, c := range costs {
				sum += c
			}
			if len(costs) > 1 {
				twice++
				twiceMicro += sum - costs[0]
			}
			r := bySeq[n]
			switch {
			case r == nil:
				unanswered["no result recorded"] += sum
				unansweredCalls["no result recorded"]++
			case !r.admitted():
				why := fmt.Sprintf("%s: %s", s.phaseAt(r.start), r.why)
				unanswered[why] += sum
				unansweredCalls[why]++
			case r.micro != sum:
				differ++
				differMicro += sum - r.micro
			}
		}
	}
	parts := []string{fmt.Sprintf("calls billed more than once %d (%d µUSD extra); answered calls whose answer shows another cost %d (%d µUSD)", twice, twiceMicro, differ, differMicro)}
	whys := make([]string, 0, len(unanswered))
	for why := range unanswered {
		whys = append(whys, why)
	}
	sort.Slice(whys, func(i, j int) bool { return unanswered[whys[i]] > unanswered[whys[j]] })
	for i, why := range whys {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("and %d other reasons", len(whys)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("billed but not answered, %s: %d calls, %d µUSD", why, unansweredCalls[why], unanswered[why]))
	}
	return strings.Join(parts, "; ")
}

// keyBreakdown names the keys whose recorded spend is below what their
// callers saw answered: usage keygate lost, by key class, with the phases
// those keys' calls were answered in.
func keyBreakdown(rs []result, usage map[string]keyUsage) string {
	seen := map[*apiKey]int64{}
	calls := map[*apiKey]int64{}
	for _, r := range rs {
		if r.key != nil && r.admitted() {
			seen[r.key] += r.micro
			calls[r.key]++
		}
	}
	var parts []string
	var total int64
	for k, v := range seen {
		u := usage[k.id]
		if u.micro < v {
			total += v - u.micro
			parts = append(parts, fmt.Sprintf("%s %s: %d calls answered for %d µUSD, %d requests recorded for %d µUSD", k.class, k.id, calls[k], v, u.requests, u.micro))
		}
	}
	sort.Strings(parts)
	if len(parts) > 10 {
		parts = append(parts[:10], fmt.Sprintf("and %d more keys", len(parts)-10))
	}
	return fmt.Sprintf("keys recorded below what their answers showed: %d µUSD in all", total) + strings.Join(append([]string{""}, parts...), "; ")
}

// checkLimits checks no quota or budget was exceeded, as clients saw it
// and as keygate recorded it.
func (s *suite) checkLimits(usage map[string]keyUsage) Check {
	var over []string
	var reached, limited int
	for _, k := range s.c.keys.snapshot() {
		var seen, rec int64
		switch k.class {
		case quotaKey:
			seen, rec = k.admitted.Load(), usage[k.id].requests
		case budgetKey:
			seen, rec = k.spent.Load(), usage[k.id].micro
		default:
			continue
		}
		limited++
		if seen > k.limit || rec > k.limit {
			over = append(over, fmt.Sprintf("%s: limit %d, clients saw %d, keygate recorded %d", k.name, k.limit, seen, rec))
		}
		// A budget is reached once less than one call's worst case is left.
		if seen >= k.limit*9/10 {
			reached++
		}
	}
	return Check{
		Name:   "no quota or budget exceeded",
		OK:     len(over) == 0,
		Detail: fmt.Sprintf("%d limited keys, %d ran to their limit; %s", limited, reached, orNone(over)),
	}
}

// checkProbes checks revocations and new keys reached every node within a second.
func (s *suite) checkProbes() []Check {
	by := map[string][]probe{}
	for _, p := range s.probes {
		by[p.what] = append(by[p.what], p)
	}
	var out []Check
	for _, what := range []string{"revoked key refused", "new key served", "rotated key's successor served"} {
		ps := by[what]
		var bad []string
		var worst time.Duration
		for _, p := range ps {
			worst = max(worst, p.took)
			if !p.ok {
				bad = append(bad, fmt.Sprintf("%s during %q after %v", p.node, p.phase, p.took.Round(time.Millisecond)))
			}
		}
		out = append(out, Check{
			Name:   what + " on every node within 1 s",
			OK:     len(bad) == 0 && len(ps) > 0,
			Detail: fmt.Sprintf("%d node probes, slowest %v; %s", len(ps), worst.Round(time.Millisecond), orNone(bad)),
		})
	}
	return out
}

// checkAdmin fails on an admin change refused outside the PostgreSQL
// outage (during which no change can be stored).
func (s *suite) checkAdmin() Check {
	var bad []string
	var duringPG, total int
	for _, op := range s.adminOps {
		total++
		if op.err == nil {
			continue
		}
		if op.phase == "PostgreSQL restart" {
			duringPG++
			continue
		}
		bad = append(bad, fmt.Sprintf("%s during %q: %v", op.what, op.phase, op.err))
	}
	sort.Strings(bad)
	return Check{
		Name:   "admin changes succeed (except while PostgreSQL is down)",
		OK:     len(bad) == 0,
		Detail: fmt.Sprintf("%d changes, %d refused during the PostgreSQL outage; %s", total, duringPG, orNone(bad)),
	}
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none failed"
	}
	return strings.Join(ss, "; ")
}
