package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/password"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// badSignIn is the one answer to a wrong user name or password: it says
// neither which was wrong nor whether the user exists.
const badSignIn = "wrong user name or password"

// isPublic reports whether r is for a public (sign-in) route.
func (a *API) isPublic(r *http.Request) bool {
	_, pattern := a.public.Handler(r)
	return pattern != ""
}

// signInMethods says how people can sign in: GET /auth/methods.
func (a *API) signInMethods(w http.ResponseWriter, r *http.Request) {
	out := adminapi.SignInMethods{}
	if si := a.opts.SignIn; si != nil && si.Sessions != nil && si.Store != nil {
		out.Password, out.Token, out.WebAuthn = true, true, !si.WebAuthn.Disabled
		if si.SSO != nil {
			out.OIDC = &adminapi.OIDCMethod{Name: si.SSO.Name(), StartURL: adminapiPrefix + "/auth/oidc/start"}
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// login signs a local user in with a password and, when enrolled or
// required, a TOTP code: POST /auth/login.
func (a *API) login(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	var req adminapi.LoginRequest
	if isForm(r) {
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "could not read the sign-in form")
			return
		}
		req.User, req.Password, req.OTP = r.PostForm.Get("user"), r.PostForm.Get("password"), r.PostForm.Get("otp")
	} else if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"user\": \"NAME\", \"password\": \"...\", \"otp\": \"123456\"}: "+err.Error())
		return
	}
	req.User = strings.TrimSpace(req.User)
	if req.User == "" || req.Password == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send the user name and the password")
		return
	}
	if !a.signInAllowed(w, r, session.MethodPassword, req.User) {
		return
	}
	ctx := r.Context()
	si := a.opts.SignIn
	u, err := a.opts.People.GetUserByName(ctx, req.User)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.internal(w, "look up the user", err)
		return
	}
	reason := ""
	var hash string
	switch {
	case err != nil:
		reason = "unknown_user"
	case u.Kind != store.UserPerson:
		reason = "not_a_person"
	case u.DisabledAt != nil:
		reason = "user_disabled"
	default:
		hash, err = si.Store.GetUserPassword(ctx, u.ID)
		if errors.Is(err, store.ErrNotFound) {
			reason = "no_password"
		} else if err != nil {
			a.internal(w, "look up the password", err)
			return
		}
	}
	if reason != "" {
		// As long as a real check, so the answer's time does not tell
		// whether the user exists.
		password.Dummy(req.Password)
		a.signInFailed(w, r, session.MethodPassword, req.User, u.ID, reason, http.StatusUnauthorized, "unauthorized", badSignIn)
		return
	}
	if err := password.Verify(req.Password, hash); err != nil {
		if !errors.Is(err, password.ErrMismatch) {
			a.opts.Log.Error("a stored password hash cannot be read", "user_id", u.ID, "err", err)
		}
		a.signInFailed(w, r, session.MethodPassword, req.User, u.ID, "bad_password", http.StatusUnauthorized, "unauthorized", badSignIn)
		return
	}
	g := session.Grant{UserID: u.ID, Method: session.MethodPassword, Audience: session.Audience(r, si.TLS), Client: a.clientOf(r)}
	enrolled, err := a.totpEnrolled(ctx, u.ID)
	if err != nil {
		a.internal(w, "look up the second factor", err)
		return
	}
	pks, err := si.Store.ListWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		a.internal(w, "look up the passkeys", err)
		return
	}
	passkeys := len(pks)
	if si.WebAuthn.Disabled {
		passkeys = 0
	}
	switch required, err := a.mfaRequired(ctx, u); {
	case err != nil:
		a.internal(w, "look up the user's teams", err)
		return
	case enrolled:
		if strings.TrimSpace(req.OTP) == "" {
			a.auditSignIn(r, session.MethodPassword, req.User, u.ID, "", "deny", "otp_missing")
			writeError(w, http.StatusUnauthorized, "otp_required", "this user signs in with a one-time password too: send the current code from the authenticator app as otp")
			return
		}
		if !a.checkUserOTP(w, r, u, req.OTP) {
			return
		}
		g.MFA = "totp"
	case passkeys > 0:
		// The second factor is a passkey: the ceremony carries the
		// password, or stands alone when the authenticator verifies the
		// user.
		a.auditSignIn(r, session.MethodPassword, req.User, u.ID, "", "deny", "passkey_missing")
		writeError(w, http.StatusUnauthorized, "passkey_required", "this user signs in with a passkey: POST /api/v1/auth/passkey/begin, then /auth/passkey/finish (with the password when the authenticator does not verify you)")
		return
	case required:
		// The role needs a second factor that is not enrolled yet: the
		// session may enrol one and nothing else.
		g.MFAPending = true
	}
	a.startSession(w, r, g, req.User, wantsCookie(r, req.Cookie))
}

// checkUserOTP checks a user's TOTP code, once across every node; it
// answers the refusal itself and returns false.
func (a *API) checkUserOTP(w http.ResponseWriter, r *http.Request, u store.User, code string) bool {
	err := a.opts.SignIn.OTP.Verify(r.Context(), otp.Attempt{Subject: "user/" + u.ID, Client: a.clientOf(r), Code: strings.TrimSpace(code),
		Secret: func(ctx context.Context) (secret.String, error) {
			s, _, err := a.opts.Vault.Get(ctx, userTOTPSecret(u.ID))
			if errors.Is(err, store.ErrNotFound) {
				return secret.String{}, otp.ErrNotEnrolled
			}
			return s, err
		}})
	var locked *otp.LockedError
	switch {
	case err == nil:
		return true
	case errors.As(err, &locked):
		a.auditSignIn(r, session.MethodPassword, u.Name, u.ID, "totp", "deny", "otp_locked")
		w.Header().Set("Retry-After", strconv.FormatInt(int64(locked.RetryAfter.Seconds())+1, 10))
		writeError(w, http.StatusTooManyRequests, "too_many_auth_failures", "too many wrong one-time passwords; try again after "+locked.Until.UTC().Format("15:04:05 MST"))
	case errors.Is(err, otp.ErrReused):
		a.signInFailed(w, r, session.MethodPassword, u.Name, u.ID, "otp_reused", http.StatusUnauthorized, "unauthorized", "this one-time password was used already; wait for the next one")
	case errors.Is(err, otp.ErrWrongCode), errors.Is(err, otp.ErrNotEnrolled):
		a.signInFailed(w, r, session.MethodPassword, u.Name, u.ID, "bad_otp", http.StatusUnauthorized, "unauthorized", "the one-time password is wrong or expired")
	default:
		a.internal(w, "check the one-time password", err)
	}
	return false
}

// tokenLogin exchanges an admin token for a session: POST
// /auth/token-login, like signing in to the Vault UI with a token.
func (a *API) tokenLogin(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	var req adminapi.TokenLoginRequest
	if isForm(r) {
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "could not read the sign-in form")
			return
		}
		req.Token = r.PostForm.Get("token")
	} else if err := decodeOptional(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"token\": \"kg_admin_...\"} or the token as Authorization: Bearer: "+err.Error())
		return
	}
	raw := strings.TrimSpace(req.Token)
	if raw == "" {
		raw, _ = bearer(r.Header.Get("Authorization"))
	}
	if raw == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send the admin token as {\"token\": \"kg_admin_...\"} or Authorization: Bearer")
		return
	}
	prefix := failingPrefix(raw)
	if !a.signInAllowed(w, r, session.MethodToken, prefix) {
		return
	}
	p, tok, err := a.adminTokenPrincipal(r, raw)
	if err != nil {
		var bad *authError
		if !errors.As(err, &bad) {
			a.internal(w, "check the admin token", err)
			return
		}
		a.signInFailed(w, r, session.MethodToken, prefix, "", bad.reason, http.StatusUnauthorized, "unauthorized", bad.msg)
		return
	}
	g := session.Grant{UserID: tok.UserID, TokenID: tok.ID, Method: session.MethodToken, Audience: session.Audience(r, a.opts.SignIn.TLS),
		Client: a.clientOf(r), NotAfter: tok.ExpiresAt}
	if tok.UserID != "" {
		g.CapRole = tok.Role
	}
	a.recordUse(r, tok)
	a.startSession(w, r, g, p.Name, req.Cookie == nil || *req.Cookie)
}

// startSession issues the session a sign-in earned, records it, and
// hands it over: as the cookie, or in the body (the CLI).
func (a *API) startSession(w http.ResponseWriter, r *http.Request, g session.Grant, name string, cookie bool) {
	tok, s, err := a.opts.SignIn.Sessions.Issue(r.Context(), g)
	if err != nil {
		a.internal(w, "start a session", err)
		return
	}
	note := ""
	if g.MFAPending {
		note = "mfa_enrolment_required"
	}
	a.auditSignIn(r, g.Method, name, g.UserID, g.MFA, "allow", note)
	a.opts.Log.Info("signed in", "method", g.Method, "user_id", g.UserID, "session", s.ID, "mfa", g.MFA)
	info, err := a.describeSession(r.Context(), s)
	if err != nil {
		a.internal(w, "describe the session", err)
		return
	}
	out := adminapi.LoginResponse{Session: info}
	if cookie {
		a.setSessionCookie(w, tok.Reveal(), s)
		if isForm(r) {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
	} else {
		out.Token = tok.Reveal()
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// logout ends the caller's session: POST /auth/logout.
func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	st := state(r)
	if st.session == nil {
		writeError(w, http.StatusBadRequest, "bad_request", "this request is not signed in with a session; an admin token is revoked with keygate admin-token revoke")
		return
	}
	if err := a.opts.SignIn.Sessions.Revoke(r.Context(), st.session.ID); err != nil {
		a.internal(w, "end the session", err)
		return
	}
	a.clearSessionCookie(w)
	a.auditEvent(r, "admin.signout", "session "+st.session.ID, "allow", map[string]string{"method": st.session.Method})
	w.WriteHeader(http.StatusNoContent)
}

// sessionInfo describes the caller's session: GET /auth/session.
func (a *API) sessionInfo(w http.ResponseWriter, r *http.Request) {
	st := state(r)
	if st.session == nil {
		writeError(w, http.StatusNotFound, "not_found", "this request is not signed in with a session (it used an admin token); keygate whoami describes it")
		return
	}
	out := a.sessionView(st.principal, *st.session)
	web.WriteJSON(w, http.StatusOK, out)
}

// describeSession shows a new session as its principal will see it.
func (a *API) describeSession(ctx context.Context, s store.Session) (adminapi.SessionInfo, error) {
	var p rbac.Principal
	var err error
	if s.UserID != "" {
		p, err = a.UserPrincipal(ctx, s.UserID, viaSession(s), s.ID, s.CapRole, &s.ExpiresAt)
	} else {
		var tok store.AdminToken
		if tok, err = a.opts.Credentials.GetAdminToken(ctx, s.TokenID); err == nil {
			p, err = a.tokenPrincipal(ctx, tok)
		}
	}
	if err != nil {
		return adminapi.SessionInfo{}, err
	}
	return a.sessionView(p, s), nil
}

func (a *API) sessionView(p rbac.Principal, s store.Session) adminapi.SessionInfo {
	out := adminapi.SessionInfo{ID: s.ID, Name: p.Name, UserID: p.UserID, Kind: string(p.Kind), Role: p.Role, Teams: []adminapi.Membership{},
		Method: s.Method, MFA: s.MFA, MFAEnrolmentRequired: s.MFAPending, CredentialRole: s.CapRole,
		CreatedAt: s.CreatedAt, IdleExpiresAt: s.IdleUntil, ExpiresAt: s.ExpiresAt}
	for _, m := range p.Teams {
		out.Teams = append(out.Teams, adminapi.Membership{Team: m.Team, Role: m.Role})
	}
	return out
}

// totpEnrolled reports whether a user has a confirmed TOTP second factor.
func (a *API) totpEnrolled(ctx context.Context, userID string) (bool, error) {
	t, err := a.opts.SignIn.Store.GetUserTOTP(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return t.ConfirmedAt != nil, nil
}

// userTOTPSecret names the vault record of a user's TOTP secret.
func userTOTPSecret(userID string) string { return "totp/user/" + userID }

// auditSignIn records a sign-in, good or bad, on the audit trail: the
// method, the user as named, the second factor used, from where.
func (a *API) auditSignIn(r *http.Request, method, name, userID, mfa, decision, reason string) {
	if a.opts.Audit == nil {
		return
	}
	f := map[string]string{"method": method, "user": name, "request_id": requestID(r)}
	if mfa != "" {
		f["mfa"] = mfa
	}
	if reason != "" {
		f["reason"] = reason
	}
	res := "user " + name
	if method == session.MethodToken {
		res = "admin credential " + name
	}
	ev := audit.Event{Type: "admin.signin", Actor: userID, Client: a.clientOf(r), Resource: res, Decision: decision, Fields: f}
	if err := a.opts.Audit.Record(ev); err != nil {
		a.opts.Log.Error("could not record a sign-in in the audit trail", "err", err)
	}
}

// adminapiPrefix is the admin API's path prefix.
const adminapiPrefix = adminapi.Prefix
