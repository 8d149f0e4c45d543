package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// AuditStore reads the audit trail for search and verification.
type AuditStore interface {
	SearchAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	AuditNodes(ctx context.Context) ([]string, error)
	ListAuditCheckpoints(ctx context.Context, node string) ([][]byte, error)
}

// auditActions records every admin request that changes something, and
// every one refused, as an admin.action event: who, from where, what.
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
		ev := audit.Event{
			Type: "admin.action", Actor: caller(r).ID, Client: web.ClientAddr(r, nil).String(),
			Resource: r.Method + " " + a.redactPath(r.URL.Path), Decision: decision,
			Fields: map[string]string{"status": strconv.Itoa(sw.Status), "request_id": web.RequestID(r.Context())},
		}
		if err := a.opts.Audit.Record(ev); err != nil {
			a.opts.Log.Error("could not record an admin action in the audit trail", "err", err)
		}
	})
}

// auditSecretRead records a secret value read.
func (a *API) auditSecretRead(r *http.Request, name string, version int) {
	if a.opts.Audit == nil {
		return
	}
	_ = a.opts.Audit.Record(audit.Event{
		Type: "secret.read", Actor: caller(r).ID, Client: web.ClientAddr(r, nil).String(),
		Resource: "secret ref:" + a.secretRef(name), Decision: "allow",
		Fields: map[string]string{"version": strconv.Itoa(version)},
	})
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
	recs, err := a.opts.AuditStore.SearchAudit(r.Context(), f)
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

// auditVerify checks every node's chain against its signed checkpoints.
func (a *API) auditVerify(w http.ResponseWriter, r *http.Request) {
	if a.opts.AuditStore == nil || a.opts.AuditKey == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no verifiable audit trail")
		return
	}
	ctx := r.Context()
	nodes, err := a.opts.AuditStore.AuditNodes(ctx)
	if err != nil {
		a.internal(w, "read the audit trail", err)
		return
	}
	out := adminapi.AuditVerification{OK: true, Nodes: []adminapi.AuditNodeResult{}}
	for _, node := range nodes {
		res := adminapi.AuditNodeResult{Node: node}
		var events []audit.Event
		var after uint64
		for {
			recs, err := a.opts.AuditStore.SearchAudit(ctx, store.AuditFilter{Node: node, AfterSeq: after})
			if err != nil {
				a.internal(w, "read the audit trail", err)
				return
			}
			for _, rec := range recs {
				var ev audit.Event
				if err := json.Unmarshal(rec.Data, &ev); err != nil {
					res.Error, res.Seq = "an event is not readable JSON", rec.Seq
				}
				events = append(events, ev)
				after = rec.Seq
			}
			if len(recs) < 10000 {
				break
			}
		}
		raw, err := a.opts.AuditStore.ListAuditCheckpoints(ctx, node)
		if err != nil {
			a.internal(w, "read the audit checkpoints", err)
			return
		}
		var cps []audit.Checkpoint
		for _, b := range raw {
			var cp audit.Checkpoint
			if json.Unmarshal(b, &cp) == nil {
				cps = append(cps, cp)
			}
		}
		res.Events, res.Checkpoints = len(events), len(cps)
		if res.Error == "" {
			if err := audit.Verify(events, cps, a.opts.AuditKey); err != nil {
				res.Error = err.Error()
				if te, ok := err.(*audit.TamperError); ok {
					res.Seq = te.Seq
				}
			}
		}
		if res.Error != "" {
			out.OK = false
		}
		out.Nodes = append(out.Nodes, res)
	}
	a.opts.Log.Info("audit trail verified", "actor", caller(r).ID, "ok", out.OK, "nodes", len(out.Nodes))
	web.WriteJSON(w, http.StatusOK, out)
}

// auditAuthFailure records a request refused for its admin credential.
func (a *API) auditAuthFailure(r *http.Request) {
	if a.opts.Audit == nil {
		return
	}
	_ = a.opts.Audit.Record(audit.Event{
		Type: "admin.auth.failure", Client: web.ClientAddr(r, nil).String(),
		Resource: r.Method + " " + a.redactPath(r.URL.Path), Decision: "deny",
		Fields: map[string]string{"request_id": web.RequestID(r.Context())},
	})
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
