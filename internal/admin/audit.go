package admin

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// AuditStore reads the audit trail for search and verification.
type AuditStore interface {
	SearchAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	AuditNodes(ctx context.Context) ([]string, error)
	ListAuditCheckpoints(ctx context.Context, node string, after uint64, limit int) ([]store.AuditCheckpoint, error)
}

// auditGate refuses every request that changes something (any method but
// GET and HEAD) with 503 while, with AuditFailClosed, the audit trail cannot
// record: a change that leaves no trace is not made. Refusals still go
// through auditActions, which records them once the trail recovers.
func (a *API) auditGate(next http.Handler) http.Handler {
	if a.opts.Audit == nil || !a.opts.AuditFailClosed {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !a.opts.Audit.Healthy() {
			a.opts.Log.Warn("admin change refused: the audit trail cannot record it (audit.fail_closed)", "method", r.Method, "path", a.redactPath(r.URL.Path))
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "audit_unavailable",
				"keygate cannot record this change on its audit trail right now, and audit.fail_closed refuses changes it cannot record; nothing was changed. Check the audit sinks (keygate's log names the failing one) and retry")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// auditActions records every admin request that changes something, and
// every one refused, as an admin.action event: who (the user or service
// account, and which credential), from where, what.
func (a *API) auditActions(next http.Handler) http.Handler {
	if a.opts.Audit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &web.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if r.Method == http.MethodGet && sw.Status < 400 {
			return
		}
		decision := "allow"
		if sw.Status >= 400 {
			decision = "deny"
		}
		f := map[string]string{"status": strconv.Itoa(sw.Status)}
		if st := state(r); st.perm != "" {
			f["permission"] = string(st.perm)
		}
		a.auditEvent(r, "admin.action", r.Method+" "+a.redactPath(r.URL.Path), decision, f)
	})
}

// auditEvent records one event with who made the request and from where.
func (a *API) auditEvent(r *http.Request, typ, resource, decision string, fields map[string]string) {
	if a.opts.Audit == nil {
		return
	}
	by := a.actor(r)
	f := by.Fields
	for k, v := range fields {
		f[k] = v
	}
	ev := audit.Event{Type: typ, Actor: by.ID, Client: by.Client, Resource: resource, Decision: decision, Fields: f}
	if err := a.opts.Audit.Record(ev); err != nil {
		a.opts.Log.Error("could not record an admin event in the audit trail", "type", typ, "err", err)
	}
}

// actor names who made the request, for the audit trail: the principal,
// its name and kind, the credential and sign-in it used, the request id
// and the client address.
func (a *API) actor(r *http.Request) keylife.Actor {
	p := principal(r)
	f := map[string]string{"request_id": requestID(r)}
	if p.ID != "" {
		f["actor_name"], f["actor_kind"], f["credential"], f["via"] = p.Name, string(p.Kind), p.Credential, p.Via
	}
	return keylife.Actor{ID: p.ID, Client: web.ClientAddr(r, a.opts.TrustedProxies).String(), Fields: f}
}

// auditChange records what a change to people, roles, teams or policies
// was, before and after: an admin.change event.
func (a *API) auditChange(r *http.Request, resource, field, before, after string) {
	a.auditEvent(r, "admin.change", resource, "allow", map[string]string{"field": field, "before": before, "after": after})
}

// auditSecretRead records a secret value read.
func (a *API) auditSecretRead(r *http.Request, name string, version int) {
	a.auditEvent(r, "secret.read", "secret ref:"+a.secretRef(name), "allow", map[string]string{"version": strconv.Itoa(version)})
}

func (a *API) auditEvents(w http.ResponseWriter, r *http.Request) {
	if a.opts.AuditStore == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no searchable audit trail")
		return
	}
	q := r.URL.Query()
	f := store.AuditFilter{KeyID: q.Get("key"), Type: q.Get("type")}
	if s := q.Get("since"); s != "" {
		d, err := adminapi.ParseDuration(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "since: "+err.Error())
			return
		}
		f.Since = a.opts.Now().Add(-d)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be 1 to 10000")
			return
		}
		f.Limit = n
	}
	if f.KeyID != "" {
		if k, err := a.findKey(r, f.KeyID); err == nil {
			f.KeyID = k.ID
		}
	}
	var recs []store.AuditRecord
	var err error
	switch q.Get("order") {
	case "", "oldest":
		recs, err = a.opts.AuditStore.SearchAudit(r.Context(), f)
	case "newest":
		if a.opts.Insights == nil {
			writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate cannot list the newest events first; leave out order")
			return
		}
		recs, err = a.opts.Insights.RecentAudit(r.Context(), f)
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "order must be oldest or newest")
		return
	}
	if err != nil {
		a.internal(w, "search the audit trail", err)
		return
	}
	out := adminapi.AuditEvents{Events: make([]json.RawMessage, 0, len(recs))}
	for _, rec := range recs {
		out.Events = append(out.Events, rec.Data)
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// auditVerify checks every node's chain against its signed checkpoints,
// with keygate's own key. `keygate audit verify` does the same on the
// auditor's side, with a pinned key and an external copy when given.
func (a *API) auditVerify(w http.ResponseWriter, r *http.Request) {
	if a.opts.AuditStore == nil || a.opts.AuditKey == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no verifiable audit trail")
		return
	}
	reports, err := audit.VerifyAll(r.Context(), storeSource{a.opts.AuditStore}, a.opts.AuditKey, nil, "")
	if err != nil {
		a.internal(w, "read the audit trail", err)
		return
	}
	out := verificationOf(reports)
	out.KeyID = audit.KeyIDOf(a.opts.AuditKey)
	a.opts.Log.Info("audit trail verified", "actor", principal(r).ID, "ok", out.OK, "nodes", len(out.Nodes))
	web.WriteJSON(w, http.StatusOK, out)
}

// verificationOf turns audit.VerifyAll's reports into the admin API's
// answer; `keygate audit verify` prints the same.
func verificationOf(reports []audit.Report) adminapi.AuditVerification {
	out := adminapi.AuditVerification{OK: true, Nodes: make([]adminapi.AuditNodeResult, 0, len(reports))}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for _, rep := range reports {
		res := adminapi.AuditNodeResult{
			Node: rep.Node, Events: rep.Events, Checkpoints: rep.Checkpoints,
			LastSeq: rep.LastSeq, LastTime: stamp(rep.LastTime),
			CheckpointSeq: rep.CheckpointSeq, CheckpointTime: stamp(rep.CheckpointTime), Uncovered: rep.Uncovered,
			CopyEvents: rep.CopyEvents, CopyCheckpoints: rep.CopyCheckpoints, CopyLastSeq: rep.CopyLastSeq,
		}
		if rep.Err != nil {
			res.Error, res.Seq, res.Kind = rep.Err.Error(), rep.Err.Seq, rep.Err.What
			out.OK = false
		}
		out.Nodes = append(out.Nodes, res)
	}
	return out
}

// storeSource reads the stored chains for audit.VerifyAll.
type storeSource struct{ st AuditStore }

func (s storeSource) Nodes(ctx context.Context) ([]string, error) { return s.st.AuditNodes(ctx) }

func (s storeSource) Events(ctx context.Context, node string, after uint64) ([]audit.Row, error) {
	recs, err := s.st.SearchAudit(ctx, store.AuditFilter{Node: node, AfterSeq: after})
	rows := make([]audit.Row, len(recs))
	for i, r := range recs {
		rows[i] = audit.Row{Seq: r.Seq, Data: r.Data}
	}
	return rows, err
}

func (s storeSource) Checkpoints(ctx context.Context, node string, after uint64) ([]audit.Row, error) {
	cps, err := s.st.ListAuditCheckpoints(ctx, node, after, 0)
	rows := make([]audit.Row, len(cps))
	for i, c := range cps {
		rows[i] = audit.Row{Seq: c.Seq, Data: c.Data}
	}
	return rows, err
}

// auditPublicKey serves the checkpoint signing key's public half, to pin.
func (a *API) auditPublicKey(w http.ResponseWriter, r *http.Request) {
	if a.opts.AuditKey == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate signs no audit checkpoints")
		return
	}
	web.WriteJSON(w, http.StatusOK, adminapi.AuditPublicKey{KeyID: audit.KeyIDOf(a.opts.AuditKey), PublicKey: hex.EncodeToString(a.opts.AuditKey)})
}

// auditNodes lists the nodes with a stored chain.
func (a *API) auditNodes(w http.ResponseWriter, r *http.Request) {
	if a.opts.AuditStore == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no audit trail")
		return
	}
	nodes, err := a.opts.AuditStore.AuditNodes(r.Context())
	if err != nil {
		a.internal(w, "read the audit trail", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, adminapi.AuditNodes{Nodes: append([]string{}, nodes...)})
}

// auditRows serves one page of a node's stored events (GET /audit/trail)
// or checkpoints (GET /audit/checkpoints) as stored, for an auditor's own
// verification.
func (a *API) auditRows(checkpoints bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.AuditStore == nil {
			writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no audit trail")
			return
		}
		q := r.URL.Query()
		node := q.Get("node")
		if node == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "node is required: one of those GET "+adminapi.Prefix+"/audit/nodes lists")
			return
		}
		var after uint64
		if s := q.Get("after"); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil || n > math.MaxInt64 {
				writeError(w, http.StatusBadRequest, "bad_request", "after must be a sequence number (a whole number from 0)")
				return
			}
			after = n
		}
		limit := 2000
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 10000 {
				writeError(w, http.StatusBadRequest, "bad_request", "limit must be 1 to 10000")
				return
			}
			limit = n
		}
		out := adminapi.AuditRows{Rows: []adminapi.AuditRow{}}
		if checkpoints {
			cps, err := a.opts.AuditStore.ListAuditCheckpoints(r.Context(), node, after, limit)
			if err != nil {
				a.internal(w, "read the audit checkpoints", err)
				return
			}
			for _, c := range cps {
				out.Rows = append(out.Rows, adminapi.AuditRow{Seq: c.Seq, Data: string(c.Data)})
			}
		} else {
			recs, err := a.opts.AuditStore.SearchAudit(r.Context(), store.AuditFilter{Node: node, AfterSeq: after, Limit: limit})
			if err != nil {
				a.internal(w, "read the audit trail", err)
				return
			}
			for _, rec := range recs {
				out.Rows = append(out.Rows, adminapi.AuditRow{Seq: rec.Seq, Data: string(rec.Data)})
			}
		}
		web.WriteJSON(w, http.StatusOK, out)
	}
}

// auditAuthFailure records a request refused for its admin credential:
// why, and the credential's public prefix when it was well formed.
func (a *API) auditAuthFailure(r *http.Request, reason, prefix string) {
	f := map[string]string{"reason": reason}
	if prefix != "" {
		f["prefix"] = prefix
	}
	a.auditEvent(r, "admin.auth.failure", r.Method+" "+a.redactPath(r.URL.Path), "deny", f)
}

// auditRef computes the reference under which a secret's name appears on
// the audit trail and in logs, so an admin can search for it without the
// name ever being written: POST /api/v1/audit/ref {"value": "payments/stripe"}.
func (a *API) auditRef(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Value string `json:"value"`
	}
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil || req.Value == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"value\": \"the secret name\"}")
		return
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"ref": "ref:" + a.secretRef(req.Value)})
}
