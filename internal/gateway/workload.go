package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/web"
)

// Workloads sign in without a keygate key: a CI job, a pod or a cloud VM
// presents the OIDC identity token its platform gives it as the
// subject_token of an RFC 8693 exchange at /oauth/token, and a trust
// policy in keygate's configuration decides whether it gets a token and
// which one: the token stands for the key the policy names, with the
// policy's scope, checked within that key exactly as a requested scope
// is. The refresh family ends when the identity token does, so a
// workload proves itself again with a fresh one. Every exchange, granted
// or refused, is on the audit trail with the workload's subject.

// Subject token types (RFC 8693 §3) a workload identity token is sent as.
const (
	subjectTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	subjectTypeJWT     = "urn:ietf:params:oauth:token-type:jwt"
)

// WorkloadTrust verifies workload identity tokens against the trust
// policies; internal/workload implements it (wired by internal/server).
type WorkloadTrust interface {
	// VerifyWorkload checks raw (signature, issuer, audience, expiry, a
	// replayed jti) and finds the trust policy it satisfies. It returns a
	// *WorkloadRefusal for a token it refuses; any other error means it
	// could not decide (an issuer unreachable), and the caller may retry.
	VerifyWorkload(ctx context.Context, raw string, now time.Time) (WorkloadIdentity, error)
}

// WorkloadIdentity is a verified workload and what its trust policy
// grants it.
type WorkloadIdentity struct {
	Issuer  string // the identity token's iss
	Subject string // its sub: the workload
	Policy  string // the trust policy it satisfied
	KeyID   string // the keygate key the token stands for
	// Scope is the policy's scope with the token's claims filled in, in
	// the grammar of /oauth/token's scope parameter.
	Scope string
	// Expiry is when the identity token expires: no refresh token of the
	// exchange outlives it.
	Expiry time.Time
}

// WorkloadRefusal is VerifyWorkload's answer for a token it refuses.
type WorkloadRefusal struct {
	// Code names what failed, for the audit trail: malformed,
	// unknown_issuer, wrong_audience, expired, not_yet_valid,
	// bad_signature, replayed or no_policy.
	Code string
	// Reason says what failed, for the caller; it never quotes the token.
	Reason string
	// Issuer and Subject are what the token claims, unverified, for the
	// audit trail; empty when unreadable.
	Issuer, Subject string
}

// Error returns the reason.
func (e *WorkloadRefusal) Error() string { return e.Reason }

// ValidateScope checks that s is written in /oauth/token's scope grammar,
// so trust policies are checked when keygate starts.
func ValidateScope(s string) error {
	_, err := parseScope(s)
	return err
}

// workloadExchange runs the exchange of a workload identity token: verify
// it, take its policy's key and scope, start a refresh family that ends
// with the identity token. It answers the request itself when it refuses.
func (g *Gateway) workloadExchange(w http.ResponseWriter, r *http.Request, now time.Time) (*principal.Principal, token.Family, string, bool) {
	to := g.opts.Tokens
	ctx, form := r.Context(), r.PostForm
	raw := form.Get("subject_token")
	refuse := func(status int, code, desc string, id WorkloadIdentity, reason string) (*principal.Principal, token.Family, string, bool) {
		g.auditWorkload(r, id, "deny", reason, "")
		oauthError(w, status, code, desc)
		return nil, token.Family{}, "", false
	}
	if to.Workloads == nil {
		return refuse(http.StatusBadRequest, "invalid_request", "this keygate trusts no workload identity issuer; present a keygate key (subject_token_type "+subjectTypeAPIKey+")", WorkloadIdentity{}, "no_trust_policies")
	}
	switch {
	case form.Get("scope") != "":
		return refuse(http.StatusBadRequest, "invalid_scope", "a workload's scope is set by its trust policy; leave scope out", WorkloadIdentity{}, "scope_requested")
	case form.Get("totp") != "":
		return refuse(http.StatusBadRequest, "invalid_request", "one-time passwords go with keygate keys, not workload identity tokens", WorkloadIdentity{}, "totp_given")
	}
	id, err := to.Workloads.VerifyWorkload(ctx, raw, now)
	if rf := (*WorkloadRefusal)(nil); errors.As(err, &rf) {
		id.Issuer, id.Subject = rf.Issuer, rf.Subject
		if t := g.authFailure(r, raw); t != nil {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(t.RetryAfter/time.Second), 10))
			return refuse(http.StatusTooManyRequests, "too_many_auth_failures", t.Message, id, "throttled")
		}
		// RFC 8693 §2.2.2: an invalid or unacceptable subject token is
		// invalid_request.
		return refuse(http.StatusBadRequest, "invalid_request", "the workload identity token was refused: "+rf.Reason, id, rf.Code)
	}
	if err != nil {
		g.opts.Log.Warn("a workload identity token could not be verified", "err", err)
		w.Header().Set("Retry-After", "5")
		return refuse(http.StatusServiceUnavailable, "temporarily_unavailable", "keygate could not verify the workload identity token right now (its issuer's keys could not be read); try again shortly", WorkloadIdentity{}, "issuer_unavailable")
	}
	k, err := g.opts.Keys.ByID(ctx, id.KeyID, now)
	if err == nil {
		err = keyUsable(k, now)
	}
	if err != nil {
		g.opts.Log.Warn("a trust policy names a key that cannot be used", "policy", id.Policy, "key_id", id.KeyID, "err", err)
		return refuse(http.StatusBadRequest, "invalid_grant", "the key trust policy "+strconv.Quote(id.Policy)+" names is revoked, expired, suspended or unknown; ask keygate's operator to fix workloads.trust", id, "key_unusable")
	}
	scope, err := parseScope(id.Scope)
	if err == nil {
		err = scopeWithin(k, scope)
	}
	if err != nil {
		return refuse(http.StatusBadRequest, "invalid_scope", "trust policy "+strconv.Quote(id.Policy)+" grants more than its key allows ("+err.Error()+"); ask keygate's operator to fix workloads.trust", id, "scope_beyond_key")
	}
	if k.ClientCert != "" {
		if c := clientCert(r); c == nil || !certMatches(c, k.ClientCert) {
			return refuse(http.StatusUnauthorized, "invalid_client", "the key of trust policy "+strconv.Quote(id.Policy)+" may be used only over mutual TLS with its client certificate", id, "client_certificate_required")
		}
	}
	var cnf string
	if c := clientCert(r); c != nil {
		cnf = thumbprint(c)
	}
	famEnd := now.Add(token.DefaultFamilyLifetime)
	if id.Expiry.Before(famEnd) {
		famEnd = id.Expiry
	}
	if !famEnd.After(now) {
		return refuse(http.StatusBadRequest, "invalid_request", "the workload identity token was refused: it has expired", id, "expired")
	}
	sj, _ := json.Marshal(scope)
	f, rt, err := to.Families.Start(ctx, token.Family{KeyID: k.ID, Scope: sj, Cnf: cnf, CreatedAt: now, ExpiresAt: famEnd})
	if err != nil {
		g.opts.Log.Error("workload token exchange failed", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "keygate could not issue a token; try again")
		return nil, token.Family{}, "", false
	}
	g.auditWorkload(r, id, "allow", "", f.ID)
	return k, f, rt.Reveal(), true
}

// auditWorkload records a workload's exchange, granted or refused, with
// its issuer and subject (as claimed, when refused).
func (g *Gateway) auditWorkload(r *http.Request, id WorkloadIdentity, decision, reason, family string) {
	if g.opts.Audit == nil {
		return
	}
	fields := map[string]string{"request_id": web.RequestID(r.Context()), "issuer": id.Issuer, "subject": id.Subject}
	if id.Policy != "" {
		fields["policy"] = id.Policy
	}
	if family != "" {
		fields["family"] = family
	}
	ev := audit.Event{Type: "token.workload", KeyID: id.KeyID, Client: web.ClientAddr(r, g.opts.TrustedProxies).String(),
		Resource: r.Method + " " + r.URL.Path, Decision: decision, Fields: fields}
	if reason != "" {
		ev.Reasons = []string{reason}
	}
	if err := g.opts.Audit.Record(ev); err != nil {
		g.opts.Log.Error("could not record a workload token exchange in the audit trail", "err", err)
	}
}
