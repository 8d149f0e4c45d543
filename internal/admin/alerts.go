package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// An alert's state lives on the audit trail itself: the detectors record
// an "alert" event, and acknowledging or resolving it records an
// "alert.ack" or "alert.resolve" event naming it. The state is then as
// tamper-evident as the rest of the trail, and every node sees it.
const (
	alertWindow   = 30 * 24 * time.Hour
	maxAlertsRead = 2000
)

// alertEvent is what the alert list reads of an alert's events.
type alertEvent struct {
	Time     time.Time         `json:"time"`
	KeyID    string            `json:"key_id"`
	Client   string            `json:"client"`
	Resource string            `json:"resource"`
	Decision string            `json:"decision"`
	Reasons  []string          `json:"reasons"`
	Fields   map[string]string `json:"fields"`
}

// alerts returns the last 30 days' alerts with their states, newest first;
// names are taken from keys where it holds the alert's key.
func (a *API) alerts(ctx context.Context, now time.Time, keys map[string]store.Key) ([]adminapi.Alert, error) {
	read := func(typ string) ([]alertEvent, error) {
		recs, err := a.opts.Insights.RecentAudit(ctx, store.AuditFilter{Type: typ, Since: now.Add(-alertWindow), Limit: maxAlertsRead})
		if err != nil {
			return nil, err
		}
		out := make([]alertEvent, 0, len(recs))
		for _, rec := range recs {
			var ev alertEvent
			if json.Unmarshal(rec.Data, &ev) == nil && ev.Fields["alert_id"] != "" {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	raised, err := read("alert")
	if err != nil {
		return nil, err
	}
	state := map[string]alertEvent{}
	for _, typ := range []string{"alert.ack", "alert.resolve"} {
		evs, err := read(typ)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			id := ev.Fields["alert_id"]
			if prev, ok := state[id]; !ok || ev.Time.After(prev.Time) || ev.Fields["state"] == "resolved" {
				if ok && prev.Fields["state"] == "resolved" && ev.Fields["state"] != "resolved" {
					continue // resolved stays resolved
				}
				state[id] = ev
			}
		}
	}
	out := make([]adminapi.Alert, 0, len(raised))
	for _, ev := range raised {
		al := adminapi.Alert{ID: ev.Fields["alert_id"], At: ev.Time, Rule: ev.Resource, Severity: ev.Decision,
			KeyID: ev.KeyID, Client: ev.Client, State: "open"}
		if len(ev.Reasons) > 0 {
			al.Summary = ev.Reasons[0]
		}
		if k, ok := keys[ev.KeyID]; ok {
			al.KeyName = k.Name
		}
		if st, ok := state[al.ID]; ok {
			t := st.Time
			al.State, al.By, al.StateAt = st.Fields["state"], st.Fields["actor_name"], &t
		}
		out = append(out, al)
	}
	slices.SortStableFunc(out, func(x, y adminapi.Alert) int { return y.At.Compare(x.At) })
	return out, nil
}

// listAlerts answers GET /alerts?state=open|all (default open).
func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	if a.opts.Insights == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no searchable audit trail, where alerts live")
		return
	}
	which := r.URL.Query().Get("state")
	if which != "" && which != "open" && which != "all" {
		writeError(w, http.StatusBadRequest, "bad_request", "state must be open or all")
		return
	}
	ks, err := a.opts.Store.ListKeys(r.Context())
	if err != nil {
		a.internal(w, "list keys", err)
		return
	}
	keys := make(map[string]store.Key, len(ks))
	for _, k := range ks {
		keys[k.ID] = k
	}
	all, err := a.alerts(r.Context(), a.opts.Now(), keys)
	if err != nil {
		a.internal(w, "read alerts", err)
		return
	}
	out := adminapi.AlertList{Alerts: []adminapi.Alert{}}
	for _, al := range all {
		if which == "all" || al.State != "resolved" {
			out.Alerts = append(out.Alerts, al)
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// alertState records that an alert was acknowledged or resolved:
// POST /alerts/{id}/ack and /alerts/{id}/resolve.
func (a *API) alertState(to string) http.HandlerFunc {
	typ := map[string]string{"acknowledged": "alert.ack", "resolved": "alert.resolve"}[to]
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Insights == nil || a.opts.Audit == nil {
			writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no searchable audit trail, where alerts live")
			return
		}
		id := r.PathValue("id")
		all, err := a.alerts(r.Context(), a.opts.Now(), nil)
		if err != nil {
			a.internal(w, "read alerts", err)
			return
		}
		i := slices.IndexFunc(all, func(al adminapi.Alert) bool { return al.ID == id })
		if i < 0 {
			writeError(w, http.StatusNotFound, "not_found", "no alert "+strconv.Quote(id)+" in the last 30 days; list them with GET /api/v1/alerts?state=all")
			return
		}
		if all[i].State == "resolved" {
			writeError(w, http.StatusConflict, "conflict", "alert "+id+" is already resolved")
			return
		}
		a.auditEvent(r, typ, "alert "+id, "allow", map[string]string{"alert_id": id, "state": to, "rule": all[i].Rule})
		al := all[i]
		now := a.opts.Now().UTC()
		al.State, al.By, al.StateAt = to, principal(r).Name, &now
		web.WriteJSON(w, http.StatusOK, al)
	}
}

// keyEvents answers GET /keys/{ref}/events?limit=N: the key's newest
// audit events (default 50, at most 500).
func (a *API) keyEvents(w http.ResponseWriter, r *http.Request) {
	if a.opts.Insights == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no searchable audit trail")
		return
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be 1 to 500")
			return
		}
		limit = n
	}
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	recs, err := a.opts.Insights.RecentAudit(r.Context(), store.AuditFilter{KeyID: k.ID, Limit: limit})
	if err != nil {
		a.internal(w, "read the key's events", err)
		return
	}
	out := adminapi.KeyEvents{Events: make([]adminapi.AuditEvent, 0, len(recs))}
	for _, rec := range recs {
		var ev adminapi.AuditEvent
		if json.Unmarshal(rec.Data, &ev) == nil {
			out.Events = append(out.Events, ev)
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// requireStepUp makes a key's requests need a second factor for a while:
// POST /keys/{ref}/step-up {"for":"24h"}, as an alert's step-up action does.
func (a *API) requireStepUp(w http.ResponseWriter, r *http.Request) {
	var req adminapi.StepUpRequest
	if r.ContentLength != 0 {
		if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	d := 24 * time.Hour
	if req.For != "" {
		var err error
		if d, err = adminapi.ParseDuration(req.For); err != nil || d <= 0 || d > 30*24*time.Hour {
			writeError(w, http.StatusBadRequest, "bad_request", "for: give a duration from 1s to 30d, such as 24h")
			return
		}
	}
	k, err := a.findKey(r, r.PathValue("ref"))
	if err != nil {
		a.lookupError(w, "key", r.PathValue("ref"), err)
		return
	}
	c, err := a.opts.Keys.RequireStepUp(r.Context(), k.ID, a.opts.Now().UTC().Add(d), a.actor(r))
	if err != nil {
		a.keyStateError(w, r.PathValue("ref"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, keyView(c.Key, a.opts.Now()))
}
