package admin

import (
	"net/http"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/leakreport"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/web"
)

// reportLeak answers POST /api/v1/leaks: a person (`keygate key
// report-leak`, `keygate scan --revoke-found`) reports a keygate
// credential found where it should not be. It is revoked at once, with
// an alert; one keygate never issued is a false positive.
func (a *API) reportLeak(w http.ResponseWriter, r *http.Request) {
	var req adminapi.ReportLeakRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	key := secret.New(req.Key)
	req.Key = ""
	if key.IsZero() {
		writeError(w, http.StatusBadRequest, "bad_request", "key is required: the keygate credential that was found (kg_...)")
		return
	}
	st, ok := a.opts.Store.(leakreport.Store)
	if !ok {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate's store cannot look keys up by hash")
		return
	}
	who := describe(principal(r))
	resp := &leakreport.Responder{
		Store: st, Hasher: a.opts.Hasher, Keys: a.opts.Keys, Action: leakreport.ActionRevoke,
		Upstream: a.opts.UpstreamLeak, Log: a.opts.Log, Now: a.opts.Now,
		// The admin API has no alert dispatcher: the alert goes to the log
		// and, as an "alert" event, to the audit trail.
		Alert: func(al detect.Alert) {
			if a.opts.Audit != nil {
				_ = a.opts.Audit.Record(audit.Event{Type: "alert", Actor: who, KeyID: al.KeyID, Resource: al.Rule, Decision: al.Severity,
					Reasons: []string{al.Summary}, Fields: map[string]string{"alert_id": al.ID}})
			}
		},
	}
	if a.opts.Audit != nil {
		resp.Audit = a.opts.Audit.Record
	}
	if adm, ok := a.opts.Store.(leakreport.AdminTokens); ok {
		resp.Admin = adm
	}
	out, err := resp.Handle(r.Context(), leakreport.Report{Token: key, URL: req.Where, Source: "person", Reporter: who})
	if err != nil {
		a.internal(w, "report leak", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, adminapi.ReportLeakResult{TruePositive: out.TruePositive, KeyID: out.KeyID, KeyName: out.KeyName, Prefix: out.Prefix, Action: out.Action})
}
