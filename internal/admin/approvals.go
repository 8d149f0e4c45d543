package admin

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Two-person approval. A request whose permission the configuration lists
// under approvals.required_for is not run: it is recorded pending and
// answered 202 with an approval id. Another person who holds the same
// permission approves (or denies) it; the requester then sends the same
// request again with the Keygate-Approval header, and it runs once.
//
// Why the requester runs it, rather than keygate on approval: the answer
// (a secret's value, a backup) belongs to the requester, not the approver,
// and the request body may hold a provider's key, which keygate would
// otherwise have to keep in clear until the decision. Only a keyed hash of
// the request is stored; the second sending must match it exactly.

// ApprovalPolicy says which permissions need a second person's approval.
type ApprovalPolicy struct {
	RequiredFor []rbac.Permission
	// TTL is how long a request waits for a decision, and an approved
	// one for its use; default 1h.
	TTL time.Duration
}

// needsApproval reports whether perm needs a second person.
func (a *API) needsApproval(perm rbac.Permission) bool {
	return perm != "" && slices.Contains(a.opts.Approval.RequiredFor, perm)
}

// approvalGate records a request pending, or runs it once if it carries
// an approval given for exactly it.
func (a *API) approvalGate(w http.ResponseWriter, r *http.Request, rt endpoint, next http.HandlerFunc) {
	if a.opts.Approvals == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no approvals, and "+string(rt.perm)+" needs one")
		return
	}
	body, err := peekBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	sum := a.opts.Hasher.Hash("approval-request:" + r.Method + " " + r.URL.RequestURI() + "\n" + string(body))
	p := principal(r)
	now := a.opts.Now().UTC()
	id := r.Header.Get(adminapi.ApprovalHeader)
	if id == "" {
		ap := store.Approval{ID: newID("apr_"), Permission: string(rt.perm), Method: r.Method, Path: a.redactPath(r.URL.Path),
			RequestHash: sum[:], Requester: p.ID, RequesterName: p.Name, Credential: p.Credential,
			Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(a.opts.Approval.TTL)}
		if err := a.opts.Approvals.CreateApproval(r.Context(), ap); err != nil {
			a.internal(w, "record the request for approval", err)
			return
		}
		a.auditEvent(r, "approval.requested", "approval "+ap.ID, "pending", map[string]string{"permission": ap.Permission, "request": ap.Method + " " + ap.Path})
		a.opts.Log.Info("request waits for approval", "actor", p.ID, "approval", ap.ID, "permission", ap.Permission)
		web.WriteJSON(w, http.StatusAccepted, adminapi.ApprovalPending{Approval: approvalView(ap, now),
			Message: fmt.Sprintf("%s needs a second person's approval: ask someone else who holds it to run `keygate approve %s`, then send the same request again with the header %s: %s (the keygate CLI: --approval %s); the request lapses at %s",
				rt.perm, ap.ID, adminapi.ApprovalHeader, ap.ID, ap.ID, ap.ExpiresAt.Format(time.RFC3339))})
		return
	}
	ap, err := a.opts.Approvals.GetApproval(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ap.Requester != p.ID) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no approval named %q for you", id))
		return
	}
	if err != nil {
		a.internal(w, "read the approval", err)
		return
	}
	if ap.Permission != string(rt.perm) || subtle.ConstantTimeCompare(ap.RequestHash, sum[:]) != 1 {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("approval %s was given for another request (%s %s); send exactly the request that was approved", id, ap.Method, ap.Path))
		return
	}
	if _, err := a.opts.Approvals.UseApproval(r.Context(), id, p.ID, now); err != nil {
		if errors.Is(err, store.ErrApprovalClosed) {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("approval %s is %s; an approval lets its request run once, before it lapses", id, approvalStatus(ap, now)))
			return
		}
		a.internal(w, "use the approval", err)
		return
	}
	a.auditEvent(r, "approval.used", "approval "+id, "allow", map[string]string{"permission": ap.Permission, "approved_by": ap.DecidedBy})
	next(w, r)
}

// decideApproval approves or denies another person's request.
func (a *API) decideApproval(approve bool) http.HandlerFunc {
	status, verb := store.ApprovalDenied, "deny"
	if approve {
		status, verb = store.ApprovalApproved, "approve"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		p := principal(r)
		if p.Kind != rbac.KindUser {
			writeError(w, http.StatusForbidden, "forbidden", "approvals are decided by a person: "+describe(p)+" is not a user; use your own user's credential")
			return
		}
		ap, err := a.opts.Approvals.GetApproval(r.Context(), id)
		if err != nil {
			a.lookupError(w, "approval", id, err)
			return
		}
		if ap.Requester == p.ID {
			writeError(w, http.StatusForbidden, "forbidden", "you cannot "+verb+" your own request; another person must")
			return
		}
		if !a.opts.Roles.AllowedGlobally(p, rbac.Permission(ap.Permission)) {
			writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("to %s a request for %s you must hold %s yourself", verb, ap.Permission, ap.Permission))
			return
		}
		now := a.opts.Now().UTC()
		ap, err = a.opts.Approvals.DecideApproval(r.Context(), id, status, p.ID, p.Name, now)
		if errors.Is(err, store.ErrApprovalClosed) {
			cur, _ := a.opts.Approvals.GetApproval(r.Context(), id)
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("approval %s is %s; only a pending request can be decided", id, approvalStatus(cur, now)))
			return
		}
		if err != nil {
			a.lookupError(w, "approval", id, err)
			return
		}
		a.auditEvent(r, "approval."+status, "approval "+id, status, map[string]string{"permission": ap.Permission, "requester": ap.Requester, "request": ap.Method + " " + ap.Path})
		a.opts.Log.Info("approval decided", "actor", p.ID, "approval", id, "status", status, "requester", ap.Requester)
		web.WriteJSON(w, http.StatusOK, approvalView(ap, now))
	}
}

// listApprovals lists the last week's requests the caller may see: its
// own, or every one for those who hold approvals.read.
func (a *API) listApprovals(w http.ResponseWriter, r *http.Request) {
	now := a.opts.Now()
	aps, err := a.opts.Approvals.ListApprovals(r.Context(), now.Add(-7*24*time.Hour))
	if err != nil {
		a.internal(w, "list approvals", err)
		return
	}
	out := adminapi.ApprovalList{Approvals: []adminapi.Approval{}}
	for _, ap := range aps {
		if a.can(r, rbac.ApprovalsRead, rbac.Resource{Owner: ap.Requester}) {
			out.Approvals = append(out.Approvals, approvalView(ap, now))
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getApproval(w http.ResponseWriter, r *http.Request) {
	ap, err := a.opts.Approvals.GetApproval(r.Context(), r.PathValue("id"))
	if err != nil {
		a.lookupError(w, "approval", r.PathValue("id"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, approvalView(ap, a.opts.Now()))
}

// approvalStatus is pending, approved, denied, used or expired.
func approvalStatus(ap store.Approval, now time.Time) string {
	switch {
	case ap.UsedAt != nil:
		return "used"
	case ap.Status != store.ApprovalDenied && !now.Before(ap.ExpiresAt):
		return "expired"
	}
	return ap.Status
}

func approvalView(ap store.Approval, now time.Time) adminapi.Approval {
	return adminapi.Approval{ID: ap.ID, Permission: ap.Permission, Method: ap.Method, Path: ap.Path, Requester: ap.RequesterName,
		Status: approvalStatus(ap, now), CreatedAt: ap.CreatedAt, ExpiresAt: ap.ExpiresAt, DecidedBy: ap.DecidedName, DecidedAt: ap.DecidedAt, UsedAt: ap.UsedAt}
}
