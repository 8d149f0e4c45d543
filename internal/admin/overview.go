package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
	"golang.org/x/sync/errgroup"
)

// InsightStore answers the console's summaries: usage summed over a window,
// the newest audit events, and the keys with what the overview reads of
// them. keygate's store is one.
type InsightStore interface {
	UsageBy(ctx context.Context, by, since string, keyIDs []string) ([]store.UsageTotal, error)
	KeySummaries(ctx context.Context) ([]store.Key, error)
	RecentAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
}

// maxNamedKeys is how many keys with limits nearLimits names in its sums
// (each a lookup in the usage rollups) before it sums every key instead
// (a scan of them); both stay well within the databases' limits on
// statement parameters.
const maxNamedKeys = 5000

// recentCap is how many of the last day's events the overview reads.
const recentCap = 10000

// overview sums what the keys the caller may see did lately: GET /overview.
func (a *API) overview(w http.ResponseWriter, r *http.Request) {
	ins := a.opts.Insights
	if ins == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no usage summaries")
		return
	}
	ctx := r.Context()
	now := a.opts.Now()
	all := a.global(r, rbac.UsageRead)
	var ks []store.Key
	keys := map[string]store.Key{}
	var ids []string // nil: every key
	if !all {
		ids = []string{}
	}
	// listKeys reads the keys, and those of them the caller may see.
	listKeys := func(ctx context.Context) error {
		var err error
		if ks, err = ins.KeySummaries(ctx); err != nil {
			return err
		}
		for _, k := range ks {
			if !all && !a.can(r, rbac.UsageRead, rbac.Resource{Team: k.Team, Owner: k.Owner}) {
				continue
			}
			keys[k.ID] = k
			if !all {
				ids = append(ids, k.ID)
			}
		}
		return nil
	}
	loc := a.opts.UsageLocation
	local := now.In(loc)
	today := local.Format(time.DateOnly)
	month := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc).Format(time.DateOnly)
	since30 := local.AddDate(0, 0, -29).Format(time.DateOnly)

	out := adminapi.Overview{GeneratedAt: now.UTC(), RefusalReasons: []adminapi.Count{}, ByModel: []adminapi.Breakdown{},
		ByTeam: []adminapi.Breakdown{}, TopKeys: []adminapi.KeySpend{}, NearLimit: []adminapi.LimitUse{}, Unused: []adminapi.KeyRef{}, OpenAlerts: []adminapi.Alert{}}

	// The reads below are independent of one another: they run at once,
	// each filling its own part of out, so the page waits for the
	// slowest rather than for the sum of them. A caller who sees every key
	// sums every key, so the keys are read beside the sums too, and only
	// what names or filters keys waits for them (waitKeys); for any other
	// caller, which keys to sum is known first.
	var (
		days, rest []store.UsageTotal
		hourW      adminapi.OverviewWindow
		alerts     []adminapi.Alert
	)
	readAlerts := a.global(r, rbac.AlertsRead) && a.opts.AuditStore != nil
	keysRead := make(chan struct{})
	if !all {
		if err := listKeys(ctx); err != nil {
			a.internal(w, "list keys", err)
			return
		}
		close(keysRead)
	}
	g, gctx := errgroup.WithContext(ctx)
	waitKeys := func() error {
		select {
		case <-keysRead:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	}
	read := func(what string, fn func() error) {
		g.Go(func() error {
			if err := fn(); err != nil {
				return overviewError{what, err}
			}
			return nil
		})
	}
	if all {
		read("list keys", func() error {
			if err := listKeys(gctx); err != nil {
				return err
			}
			close(keysRead)
			return nil
		})
	}
	read("sum usage by day", func() (err error) {
		days, err = ins.UsageBy(gctx, "day", since30, ids)
		if err == nil && month < since30 { // a month longer than the 30 days read
			rest, err = ins.UsageBy(gctx, "day", month, ids)
		}
		return err
	})
	read("read the audit trail", func() (err error) {
		// With every key visible, it reads no key (all), so it need not wait.
		hourW, err = a.recentActivity(gctx, now, keys, all, &out)
		return err
	})
	read("sum usage by key and model", func() error { return a.spendBreakdowns(gctx, since30, ids, keys, waitKeys, &out) })
	read("sum usage against limits", func() error {
		if err := waitKeys(); err != nil {
			return err
		}
		return a.nearLimits(gctx, today, month, ids, keys, &out)
	})
	if readAlerts {
		read("read alerts", func() (err error) {
			if err := waitKeys(); err != nil {
				return err
			}
			alerts, err = a.alerts(gctx, now, keys)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		oe := overviewError{"answer the overview", err}
		errors.As(err, &oe)
		a.internal(w, oe.what, oe.err)
		return
	}

	byDay := map[string]store.UsageTotal{}
	for _, d := range days {
		byDay[d.Group] = d
	}
	var dayW, monthW adminapi.OverviewWindow
	dayW.Name, monthW.Name = "day", "month"
	for i := 29; i >= 0; i-- {
		d := local.AddDate(0, 0, -i)
		u := byDay[d.Format(time.DateOnly)]
		at := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc).UTC()
		out.Days = append(out.Days, adminapi.OverviewPoint{At: at, Requests: u.Requests, Refusals: u.Denials, MicroUSD: u.MicroUSD})
	}
	for _, d := range days {
		if d.Group >= month {
			monthW.Requests += d.Requests
			monthW.Refusals += d.Denials
			monthW.MicroUSD += d.MicroUSD
		}
		if d.Group == today {
			dayW.Requests, dayW.Refusals, dayW.MicroUSD = d.Requests, d.Denials, d.MicroUSD
		}
	}
	if month < since30 {
		monthW = adminapi.OverviewWindow{Name: "month"}
		for _, d := range rest {
			monthW.Requests += d.Requests
			monthW.Refusals += d.Denials
			monthW.MicroUSD += d.MicroUSD
		}
	}

	for _, k := range ks {
		if _, ok := keys[k.ID]; ok && staleKey(k, now, 30*24*time.Hour) {
			out.UnusedCount++
			if len(out.Unused) < 20 {
				out.Unused = append(out.Unused, adminapi.KeyRef{ID: k.ID, Name: k.Name, Team: k.Team})
			}
		}
	}
	if readAlerts {
		for _, al := range alerts {
			switch {
			case al.At.After(now.Add(-time.Hour)):
				hourW.Alerts++
				fallthrough
			case al.At.After(now.Add(-24 * time.Hour)):
				dayW.Alerts++
			}
			if al.At.In(loc).Format(time.DateOnly) >= month {
				monthW.Alerts++
			}
			if al.State != "resolved" {
				out.OpenAlerts = append(out.OpenAlerts, al)
			}
		}
	}
	out.Windows = []adminapi.OverviewWindow{hourW, dayW, monthW}
	web.WriteJSON(w, http.StatusOK, out)
}

// overviewError is a failed read of the overview: what it was, and why.
type overviewError struct {
	what string
	err  error
}

func (e overviewError) Error() string { return e.what + ": " + e.err.Error() }

// eventSummary is what the overview reads of an audit event; its time is
// the stored column's, so the event's own is not decoded again.
type eventSummary struct {
	Decision string   `json:"decision"`
	Reasons  []string `json:"reasons"`
}

// recentActivity fills the last hour and day from the audit trail's
// requests and failed authentications, and returns the hour's window.
func (a *API) recentActivity(ctx context.Context, now time.Time, keys map[string]store.Key, all bool, out *adminapi.Overview) (adminapi.OverviewWindow, error) {
	hour := adminapi.OverviewWindow{Name: "hour"}
	// The last step of each chart is the one now falls in.
	out.Hours = make([]adminapi.OverviewPoint, 24)
	for i := range out.Hours {
		out.Hours[i].At = now.Truncate(time.Hour).Add(time.Duration(i-23) * time.Hour).UTC()
	}
	out.Minutes = make([]adminapi.OverviewPoint, 12)
	for i := range out.Minutes {
		out.Minutes[i].At = now.Truncate(5 * time.Minute).Add(time.Duration(i-11) * 5 * time.Minute).UTC()
	}
	reasons := map[string]int64{}
	read := 0
	for _, typ := range []string{"request", "auth.failure"} {
		if typ == "auth.failure" && !all {
			continue
		}
		recs, err := a.opts.Insights.RecentAudit(ctx, store.AuditFilter{Type: typ, Since: now.Add(-24 * time.Hour), Limit: recentCap})
		if err != nil {
			return hour, err
		}
		read += len(recs)
		if len(recs) == recentCap {
			out.Partial = true
		}
		for _, rec := range recs {
			if !all {
				if _, ok := keys[rec.KeyID]; !ok {
					continue
				}
			}
			var ev eventSummary
			if json.Unmarshal(rec.Data, &ev) != nil {
				continue
			}
			deny := ev.Decision == "deny"
			if deny {
				for _, rs := range ev.Reasons {
					reasons[rs]++
				}
			}
			if i := int(rec.Time.Sub(out.Hours[0].At) / time.Hour); i >= 0 && i < 24 {
				count(&out.Hours[i], deny)
			}
			if i := int(rec.Time.Sub(out.Minutes[0].At) / (5 * time.Minute)); i >= 0 && i < 12 {
				count(&out.Minutes[i], deny)
			}
			if rec.Time.After(now.Add(-time.Hour)) {
				hour.Requests++
				if deny {
					hour.Refusals++
				}
			}
		}
	}
	for name, n := range reasons {
		out.RefusalReasons = append(out.RefusalReasons, adminapi.Count{Name: name, Count: n})
	}
	slices.SortFunc(out.RefusalReasons, func(x, y adminapi.Count) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Name, y.Name))
	})
	return hour, nil
}

func count(p *adminapi.OverviewPoint, deny bool) {
	p.Requests++
	if deny {
		p.Refusals++
	}
}

// spendBreakdowns fills the last 30 days by model, by team and the top
// keys; it reads keys only once waitKeys says they are read.
func (a *API) spendBreakdowns(ctx context.Context, since string, ids []string, keys map[string]store.Key, waitKeys func() error, out *adminapi.Overview) error {
	byModel, err := a.opts.Insights.UsageBy(ctx, "model", since, ids)
	if err != nil {
		return err
	}
	for _, m := range byModel {
		out.ByModel = append(out.ByModel, adminapi.Breakdown{Name: m.Group, Requests: m.Requests, Refusals: m.Denials, MicroUSD: m.MicroUSD})
	}
	byKey, err := a.opts.Insights.UsageBy(ctx, "key", since, ids)
	if err != nil {
		return err
	}
	if err := waitKeys(); err != nil {
		return err
	}
	teams := map[string]*adminapi.Breakdown{}
	for _, u := range byKey {
		k, ok := keys[u.Group]
		if !ok {
			continue
		}
		out.TopKeys = append(out.TopKeys, adminapi.KeySpend{KeyRef: adminapi.KeyRef{ID: k.ID, Name: k.Name, Team: k.Team},
			Requests: u.Requests, Refusals: u.Denials, MicroUSD: u.MicroUSD})
		name := cmp.Or(k.Team, "(no team)")
		t := teams[name]
		if t == nil {
			t = &adminapi.Breakdown{Name: name}
			teams[name] = t
		}
		t.Requests += u.Requests
		t.Refusals += u.Denials
		t.MicroUSD += u.MicroUSD
	}
	for _, t := range teams {
		out.ByTeam = append(out.ByTeam, *t)
	}
	bySpend := func(x, y adminapi.Breakdown) int {
		return cmp.Or(cmp.Compare(y.MicroUSD, x.MicroUSD), cmp.Compare(y.Requests, x.Requests), cmp.Compare(x.Name, y.Name))
	}
	slices.SortFunc(out.ByModel, bySpend)
	slices.SortFunc(out.ByTeam, bySpend)
	slices.SortFunc(out.TopKeys, func(x, y adminapi.KeySpend) int {
		return cmp.Or(cmp.Compare(y.MicroUSD, x.MicroUSD), cmp.Compare(y.Requests, x.Requests), cmp.Compare(x.Name, y.Name))
	})
	out.TopKeys = out.TopKeys[:min(len(out.TopKeys), 10)]
	return nil
}

// nearLimits lists keys at 80% or more of a daily or monthly budget or
// request quota.
func (a *API) nearLimits(ctx context.Context, today, month string, ids []string, keys map[string]store.Key, out *adminapi.Overview) error {
	limited := map[string]adminapi.Limits{}
	var lids []string
	for id, k := range keys {
		l := decodeLimits(k.Limits)
		if len(l.Budgets) > 0 || len(l.Quotas) > 0 {
			limited[id] = l
			lids = append(lids, id)
		}
	}
	if len(lids) == 0 {
		return nil
	}
	if ids == nil && len(lids) > maxNamedKeys {
		lids = nil // sum every key rather than name thousands
	}
	use := map[string]map[string]store.UsageTotal{} // period -> key -> use
	for period, since := range map[string]string{adminapi.PeriodDay: today, adminapi.PeriodMonth: month} {
		rows, err := a.opts.Insights.UsageBy(ctx, "key", since, lids)
		if err != nil {
			return err
		}
		use[period] = map[string]store.UsageTotal{}
		for _, u := range rows {
			use[period][u.Group] = u
		}
	}
	for id, l := range limited {
		k := keys[id]
		ref := adminapi.KeyRef{ID: k.ID, Name: k.Name, Team: k.Team}
		add := func(what string, used, of int64) {
			if of > 0 && used*5 >= of*4 {
				out.NearLimit = append(out.NearLimit, adminapi.LimitUse{KeyRef: ref, Limit: what, Used: used, Of: of, Percent: float64(used) * 100 / float64(of)})
			}
		}
		for _, b := range l.Budgets {
			if u, ok := use[b.Period]; ok {
				add(fmt.Sprintf("budget $%.2f/%s", float64(b.MicroUSD)/1e6, b.Period), u[id].MicroUSD, b.MicroUSD)
			}
		}
		for _, q := range l.Quotas {
			if u, ok := use[q.Period]; ok && q.Unit == adminapi.UnitRequests {
				add("quota "+strconv.FormatInt(q.Limit, 10)+" requests/"+q.Period, u[id].Requests, q.Limit)
			}
		}
	}
	slices.SortFunc(out.NearLimit, func(x, y adminapi.LimitUse) int {
		return cmp.Or(cmp.Compare(y.Percent, x.Percent), cmp.Compare(x.Name, y.Name))
	})
	return nil
}
