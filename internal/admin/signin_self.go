package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/password"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// setUserPassword sets another user's password: PUT /users/{name}/password.
// The user's sessions end, as after a reset.
func (a *API) setUserPassword(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	var req adminapi.PasswordRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"password\": \"...\"}: "+err.Error())
		return
	}
	u, ok := a.findUser(w, r)
	if !ok {
		return
	}
	if u.Kind != store.UserPerson {
		writeError(w, http.StatusBadRequest, "bad_request", "service accounts sign in with tokens, not passwords (keygate service-account token)")
		return
	}
	if err := a.checkActOn(r, u); err != nil {
		a.targetError(w, err)
		return
	}
	if !a.storePassword(w, r, u, req.Password) {
		return
	}
	if _, err := a.opts.SignIn.Sessions.RevokeUser(r.Context(), u.ID); err != nil {
		a.internal(w, "end the user's sessions", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setOwnPassword changes the caller's own password: PUT /me/password,
// with the current one when there is one.
func (a *API) setOwnPassword(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	var req adminapi.PasswordRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"current\": \"...\", \"password\": \"...\"}: "+err.Error())
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	old, err := a.opts.SignIn.Store.GetUserPassword(r.Context(), u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		a.internal(w, "look up the password", err)
		return
	default:
		if password.Verify(req.Current, old) != nil {
			a.signInFailed(w, r, "password_change", u.Name, u.ID, "bad_password", http.StatusForbidden, "forbidden", "the current password is wrong")
			return
		}
	}
	if !a.storePassword(w, r, u, req.Password) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// storePassword hashes and stores a new password, answering a refusal
// itself.
func (a *API) storePassword(w http.ResponseWriter, r *http.Request, u store.User, pw string) bool {
	if err := password.Check(pw); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return false
	}
	p := a.opts.SignIn.Password
	if p == (password.Params{}) {
		p = password.Default
	}
	h, err := password.Hash(pw, p)
	if err != nil {
		a.internal(w, "hash the password", err)
		return false
	}
	if err := a.opts.SignIn.Store.SetUserPassword(r.Context(), u.ID, h, a.opts.Now().UTC()); err != nil {
		a.internal(w, "store the password", err)
		return false
	}
	a.auditChange(r, "user "+u.Name, "password", "", "set")
	return true
}

// caller returns the user the request is signed in as; a credential of
// no user, or a service account, is refused.
func (a *API) caller(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	p := principal(r)
	if p.UserID == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "this credential belongs to no user; sign in as a user (keygate login) for this")
		return store.User{}, false
	}
	u, err := a.opts.People.GetUser(r.Context(), p.UserID)
	if err != nil {
		a.internal(w, "look up the user", err)
		return store.User{}, false
	}
	if u.Kind != store.UserPerson {
		writeError(w, http.StatusBadRequest, "bad_request", "service accounts have no password or second factor")
		return store.User{}, false
	}
	return u, true
}

// enrolTOTP gives the caller a new TOTP secret, unconfirmed until a first
// code: POST /me/totp. Replacing a confirmed one needs a current code, so
// whoever holds a session alone cannot swap the second factor.
func (a *API) enrolTOTP(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	var req adminapi.TOTPRequest
	if err := decodeOptional(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {} or {\"otp\": \"123456\"}: "+err.Error())
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	enrolled, err := a.totpEnrolled(r.Context(), u.ID)
	if err != nil {
		a.internal(w, "look up the second factor", err)
		return
	}
	if enrolled {
		if strings.TrimSpace(req.OTP) == "" {
			writeError(w, http.StatusBadRequest, "otp_required", "a one-time password is enrolled already: send a current code as otp to replace it")
			return
		}
		if !a.checkUserOTP(w, r, u, req.OTP) {
			return
		}
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "keygate", AccountName: u.Name})
	if err != nil {
		a.internal(w, "make a one-time-password secret", err)
		return
	}
	if _, err := a.opts.Vault.Put(r.Context(), userTOTPSecret(u.ID), secret.New(key.Secret())); err != nil {
		a.internal(w, "store the one-time-password secret", err)
		return
	}
	if err := a.opts.SignIn.Store.PutUserTOTP(r.Context(), u.ID, a.opts.Now().UTC()); err != nil {
		a.internal(w, "record the enrolment", err)
		return
	}
	a.auditChange(r, "user "+u.Name, "totp", "", "enrolment started")
	web.WriteJSON(w, http.StatusCreated, adminapi.UserTOTPEnrollment{Secret: key.Secret(), URL: key.URL()})
}

// confirmTOTP confirms the caller's TOTP enrolment with a first code:
// POST /me/totp/confirm. A session that owed a second factor is complete.
func (a *API) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	var req adminapi.TOTPRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil || strings.TrimSpace(req.OTP) == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"otp\": \"123456\"}: the current code from the authenticator app")
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	if _, err := a.opts.SignIn.Store.GetUserTOTP(r.Context(), u.ID); errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusBadRequest, "bad_request", "no one-time password is being enrolled: POST /api/v1/me/totp first")
		return
	}
	if !a.checkUserOTP(w, r, u, req.OTP) {
		return
	}
	if err := a.opts.SignIn.Store.ConfirmUserTOTP(r.Context(), u.ID, a.opts.Now().UTC()); err != nil {
		a.internal(w, "confirm the enrolment", err)
		return
	}
	if st := state(r); st.session != nil && st.session.MFAPending {
		if err := a.opts.SignIn.Sessions.CompleteMFA(r.Context(), st.session.ID, "totp"); err != nil {
			a.internal(w, "update the session", err)
			return
		}
	}
	a.auditChange(r, "user "+u.Name, "totp", "", "confirmed")
	w.WriteHeader(http.StatusNoContent)
}
