package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/password"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Passkeys (WebAuthn) for local users. A signed-in user registers one
// (POST /me/passkeys/begin, then /finish) and signs in with it (POST
// /auth/passkey/begin with the user name, then /finish). Each ceremony's
// challenge is kept in the shared store as a sign-in flow, under a
// SHA-256 of the challenge, and taken once by whichever node the finish
// reaches: a replayed answer finds nothing. A ceremony is bound to the
// relying party id and origins it began with and to the admin URL it
// began at.
//
// A passkey whose authenticator verified the user (PIN, biometric: the
// UV flag) is a full sign-in with two factors (something held, something
// known or been). Without UV the passkey is only the second factor, and
// the finish must carry the user's password too.

// WebAuthnConfig binds passkeys to the admin plane.
type WebAuthnConfig struct {
	// Disabled turns passkeys off: the ceremonies answer 501.
	Disabled bool
	// RPID is the relying party id passkeys are bound to (the admin
	// plane's host name); "" takes the host name of the admin URL each
	// request reached.
	RPID string
	// RPName is what the authenticator shows (default keygate).
	RPName string
	// Origins are the admin plane's origins as browsers see them; empty
	// takes the admin URL (scheme://host) each request reached.
	Origins []string
}

const (
	flowPasskeyRegister = "webauthn_register"
	flowPasskeyLogin    = "webauthn_login"
	// passkeyFlowTTL is how long a begun ceremony can be finished.
	passkeyFlowTTL = 5 * time.Minute
	// maxPasskeyName bounds the name a user gives a passkey.
	maxPasskeyName = 64
	// badPasskey is the one answer to a passkey sign-in refused for who
	// the user is: it does not tell whether the user exists.
	badPasskey = "the passkey sign-in was refused: wrong user or passkey"
)

// passkeyFlow is a begun ceremony, as kept in the store until finished.
type passkeyFlow struct {
	UserID   string               `json:"user_id"`
	Name     string               `json:"name"` // the user's name (sign-in) or the new passkey's (registration)
	Audience string               `json:"audience"`
	RPID     string               `json:"rp_id"`
	Origins  []string             `json:"origins"`
	Session  webauthn.SessionData `json:"session"`
}

// passkeyUser is a keygate user as the WebAuthn library sees it. Its
// handle is the user id, which never changes and names nobody.
type passkeyUser struct {
	u     store.User
	creds []webauthn.Credential
}

func (p passkeyUser) WebAuthnID() []byte                         { return []byte(p.u.ID) }
func (p passkeyUser) WebAuthnName() string                       { return p.u.Name }
func (p passkeyUser) WebAuthnDisplayName() string                { return p.u.Name }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

// passkeysReady reports whether passkeys are on, answering 501 when not.
func (a *API) passkeysReady(w http.ResponseWriter) bool {
	if !a.signInReady(w) {
		return false
	}
	if a.opts.SignIn.WebAuthn.Disabled {
		writeError(w, http.StatusNotImplemented, "not_implemented", "passkeys are turned off on this keygate; sign in with a password")
		return false
	}
	return true
}

// relyingParty is the WebAuthn relying party for a request: the
// configured id and origins, or the admin URL the request reached.
func (a *API) relyingParty(r *http.Request) (rpID string, origins []string, audience string) {
	c := a.opts.SignIn.WebAuthn
	audience = session.Audience(r, a.opts.SignIn.TLS)
	rpID, origins = c.RPID, c.Origins
	if rpID == "" {
		if u, err := url.Parse(audience); err == nil {
			rpID = u.Hostname()
		}
	}
	if len(origins) == 0 {
		origins = []string{audience}
	}
	return rpID, origins, audience
}

func (a *API) webAuthn(rpID string, origins []string) (*webauthn.WebAuthn, error) {
	name := a.opts.SignIn.WebAuthn.RPName
	if name == "" {
		name = "keygate"
	}
	return webauthn.New(&webauthn.Config{RPID: rpID, RPDisplayName: name, RPOrigins: origins,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyFlowTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyFlowTTL},
		}})
}

// passkeys returns a user's passkeys, as the library uses them and as
// stored (keyed by credential id) for the compare-and-swap after a use.
func (a *API) passkeys(ctx context.Context, u store.User) (passkeyUser, map[string][]byte, error) {
	rows, err := a.opts.SignIn.Store.ListWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return passkeyUser{}, nil, err
	}
	pu := passkeyUser{u: u}
	raw := map[string][]byte{}
	for _, row := range rows {
		var c webauthn.Credential
		if err := json.Unmarshal(row.Credential, &c); err != nil {
			a.opts.Log.Error("a stored passkey cannot be read; it is skipped", "user_id", u.ID, "passkey", row.ID, "err", err)
			continue
		}
		pu.creds = append(pu.creds, c)
		raw[row.ID] = row.Credential
	}
	return pu, raw, nil
}

func credentialID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

func (a *API) putPasskeyFlow(ctx context.Context, kind string, f passkeyFlow) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return a.opts.SignIn.Store.PutSignInFlow(ctx, flowID(f.Session.Challenge), kind, data, a.opts.Now().UTC().Add(passkeyFlowTTL))
}

// takePasskeyFlow takes a ceremony by the challenge its answer signed,
// once across every node; ok is false when it is unknown, used or over.
func (a *API) takePasskeyFlow(ctx context.Context, kind, challenge string) (passkeyFlow, bool, error) {
	data, err := a.opts.SignIn.Store.TakeSignInFlow(ctx, flowID(challenge), kind, a.opts.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return passkeyFlow{}, false, nil
	}
	if err != nil {
		return passkeyFlow{}, false, err
	}
	var f passkeyFlow
	if err := json.Unmarshal(data, &f); err != nil {
		return passkeyFlow{}, false, fmt.Errorf("read a passkey ceremony: %w", err)
	}
	return f, true, nil
}

// protocolDetail is what a WebAuthn refusal says, safe to show: the
// library's short description, never key material.
func protocolDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return "the authenticator's answer could not be verified"
}

// auditPasskey records a passkey registration or removal, good or bad.
func (a *API) auditPasskey(r *http.Request, u store.User, action, decision, passkey, reason string) {
	f := map[string]string{"method": session.MethodWebAuthn, "action": action, "user": u.Name}
	if passkey != "" {
		f["passkey"] = passkey
	}
	if reason != "" {
		f["reason"] = reason
	}
	a.auditEvent(r, "admin.passkey", "user "+u.Name, decision, f)
}

// mayAddPasskey refuses a registration that would weaken sign-in,
// answering itself: passkeys are for local users (with a keygate
// password; a single-sign-on user signs in at the provider, whose own
// checks a passkey must not bypass), and a user who has a second factor
// already adds another only from a session signed in with one, so a
// stolen session or token alone cannot plant a way back in.
func (a *API) mayAddPasskey(w http.ResponseWriter, r *http.Request, u store.User, hasPasskey bool) bool {
	ctx := r.Context()
	if _, err := a.opts.SignIn.Store.GetUserPassword(ctx, u.ID); errors.Is(err, store.ErrNotFound) {
		a.auditPasskey(r, u, "register", "deny", "", "not_local")
		writeError(w, http.StatusBadRequest, "bad_request", "passkeys are for local users, who have a keygate password; you sign in with single sign-on")
		return false
	} else if err != nil {
		a.internal(w, "look up the password", err)
		return false
	}
	totp, err := a.totpEnrolled(ctx, u.ID)
	if err != nil {
		a.internal(w, "look up the second factor", err)
		return false
	}
	if st := state(r); (hasPasskey || totp) && (st.session == nil || st.session.MFA == "") {
		a.auditPasskey(r, u, "register", "deny", "", "second_factor_not_used")
		writeError(w, http.StatusForbidden, "forbidden", "you have a second factor already: sign in with it (keygate login --user, or a passkey) to add a passkey")
		return false
	}
	return true
}

// beginPasskeyRegistration starts registering a passkey for the caller:
// POST /me/passkeys/begin. The answer is the options for
// navigator.credentials.create.
func (a *API) beginPasskeyRegistration(w http.ResponseWriter, r *http.Request) {
	if !a.passkeysReady(w) {
		return
	}
	var req adminapi.PasskeyBeginRequest
	if err := decodeOptional(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {} or {\"name\": \"laptop\"}: "+err.Error())
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		req.Name = "passkey"
	}
	if utf8.RuneCountInString(req.Name) > maxPasskeyName {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("name: at most %d characters", maxPasskeyName))
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	pu, _, err := a.passkeys(r.Context(), u)
	if err != nil {
		a.internal(w, "list the passkeys", err)
		return
	}
	if !a.mayAddPasskey(w, r, u, len(pu.creds) > 0) {
		return
	}
	rpID, origins, audience := a.relyingParty(r)
	wa, err := a.webAuthn(rpID, origins)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "passkeys are misconfigured (signin.webauthn): "+err.Error())
		return
	}
	creation, sd, err := wa.BeginRegistration(pu,
		webauthn.WithExclusions(webauthn.Credentials(pu.creds).CredentialDescriptors()),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementPreferred, UserVerification: protocol.VerificationPreferred}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err != nil {
		a.internal(w, "begin a passkey registration", err)
		return
	}
	f := passkeyFlow{UserID: u.ID, Name: req.Name, Audience: audience, RPID: rpID, Origins: origins, Session: *sd}
	if err := a.putPasskeyFlow(r.Context(), flowPasskeyRegister, f); err != nil {
		a.internal(w, "keep the passkey registration", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, creation)
}

// finishPasskeyRegistration verifies the authenticator's answer and keeps
// the new passkey: POST /me/passkeys/finish. A session that owed a second
// factor is whole from then on.
func (a *API) finishPasskeyRegistration(w http.ResponseWriter, r *http.Request) {
	if !a.passkeysReady(w) {
		return
	}
	var req adminapi.PasskeyFinishRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil || len(req.Credential) == 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"credential\": <the PublicKeyCredential navigator.credentials.create gave, as JSON>}")
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	if err != nil {
		a.auditPasskey(r, u, "register", "deny", "", "unreadable")
		writeError(w, http.StatusBadRequest, "bad_request", "the credential cannot be read: "+protocolDetail(err))
		return
	}
	f, ok, err := a.takePasskeyFlow(r.Context(), flowPasskeyRegister, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		a.internal(w, "take the passkey registration", err)
		return
	}
	_, _, audience := a.relyingParty(r)
	if !ok || f.UserID != u.ID || f.Audience != audience {
		a.auditPasskey(r, u, "register", "deny", "", "challenge_unknown")
		writeError(w, http.StatusBadRequest, "bad_request", "this passkey registration is unknown, finished already or expired: begin again (POST /api/v1/me/passkeys/begin)")
		return
	}
	wa, err := a.webAuthn(f.RPID, f.Origins)
	if err != nil {
		a.internal(w, "configure passkeys", err)
		return
	}
	pu, _, err := a.passkeys(r.Context(), u)
	if err != nil {
		a.internal(w, "list the passkeys", err)
		return
	}
	cred, err := wa.CreateCredential(pu, f.Session, parsed)
	if err != nil {
		a.auditPasskey(r, u, "register", "deny", f.Name, "attestation_refused")
		writeError(w, http.StatusBadRequest, "bad_request", "the passkey was refused: "+protocolDetail(err))
		return
	}
	data, err := json.Marshal(cred)
	if err != nil {
		a.internal(w, "encode the passkey", err)
		return
	}
	id := credentialID(cred.ID)
	err = a.opts.SignIn.Store.AddWebAuthnCredential(r.Context(), store.WebAuthnCredential{ID: id, UserID: u.ID, Name: f.Name, Credential: data, CreatedAt: a.opts.Now().UTC()})
	if errors.Is(err, store.ErrConflict) {
		a.auditPasskey(r, u, "register", "deny", f.Name, "already_registered")
		writeError(w, http.StatusConflict, "conflict", "this passkey is registered already")
		return
	}
	if err != nil {
		a.internal(w, "store the passkey", err)
		return
	}
	if st := state(r); st.session != nil && st.session.MFAPending {
		if err := a.opts.SignIn.Sessions.CompleteMFA(r.Context(), st.session.ID, session.MethodWebAuthn); err != nil {
			a.internal(w, "update the session", err)
			return
		}
	}
	a.auditPasskey(r, u, "register", "allow", f.Name, "")
	web.WriteJSON(w, http.StatusCreated, adminapi.Passkey{ID: id, Name: f.Name, CreatedAt: a.opts.Now().UTC()})
}

// listPasskeys lists the caller's passkeys: GET /me/passkeys.
func (a *API) listPasskeys(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	rows, err := a.opts.SignIn.Store.ListWebAuthnCredentials(r.Context(), u.ID)
	if err != nil {
		a.internal(w, "list the passkeys", err)
		return
	}
	out := []adminapi.Passkey{}
	for _, c := range rows {
		out = append(out, adminapi.Passkey{ID: c.ID, Name: c.Name, CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt})
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// removePasskey removes one of the caller's passkeys: DELETE
// /me/passkeys/{id}. Another user's passkey is not found.
func (a *API) removePasskey(w http.ResponseWriter, r *http.Request) {
	if !a.signInReady(w) {
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	err := a.opts.SignIn.Store.DeleteWebAuthnCredential(r.Context(), u.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "you have no passkey with this id (GET /api/v1/me/passkeys lists them)")
		return
	}
	if err != nil {
		a.internal(w, "remove the passkey", err)
		return
	}
	a.auditPasskey(r, u, "remove", "allow", id, "")
	w.WriteHeader(http.StatusNoContent)
}

// beginPasskeyLogin starts a passkey sign-in for a user name: POST
// /auth/passkey/begin. The answer is the options for
// navigator.credentials.get.
func (a *API) beginPasskeyLogin(w http.ResponseWriter, r *http.Request) {
	if !a.passkeysReady(w) {
		return
	}
	var req adminapi.PasskeyLoginBeginRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"user\": \"NAME\"}: "+err.Error())
		return
	}
	req.User = strings.TrimSpace(req.User)
	if req.User == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send the user name: {\"user\": \"NAME\"}")
		return
	}
	if !a.signInAllowed(w, r, session.MethodWebAuthn, req.User) {
		return
	}
	ctx := r.Context()
	u, err := a.opts.People.GetUserByName(ctx, req.User)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.internal(w, "look up the user", err)
		return
	}
	var pu passkeyUser
	if err == nil && u.Kind == store.UserPerson && u.DisabledAt == nil {
		if pu, _, err = a.passkeys(ctx, u); err != nil {
			a.internal(w, "list the passkeys", err)
			return
		}
	}
	rpID, origins, audience := a.relyingParty(r)
	wa, err := a.webAuthn(rpID, origins)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "passkeys are misconfigured (signin.webauthn): "+err.Error())
		return
	}
	var assertion *protocol.CredentialAssertion
	var sd *webauthn.SessionData
	uv := webauthn.WithUserVerification(protocol.VerificationPreferred)
	if len(pu.creds) > 0 {
		assertion, sd, err = wa.BeginLogin(pu, uv)
	} else {
		// No user, or none with a passkey: a ceremony that can only
		// fail at the finish, so the answer here does not refuse early.
		assertion, sd, err = wa.BeginDiscoverableLogin(uv)
	}
	if err != nil {
		a.internal(w, "begin a passkey sign-in", err)
		return
	}
	f := passkeyFlow{UserID: pu.u.ID, Name: req.User, Audience: audience, RPID: rpID, Origins: origins, Session: *sd}
	if err := a.putPasskeyFlow(ctx, flowPasskeyLogin, f); err != nil {
		a.internal(w, "keep the passkey sign-in", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, assertion)
}

// finishPasskeyLogin verifies the authenticator's assertion and starts a
// session: POST /auth/passkey/finish. A signature counter that went back
// (a copied authenticator) is refused.
func (a *API) finishPasskeyLogin(w http.ResponseWriter, r *http.Request) {
	if !a.passkeysReady(w) {
		return
	}
	const method = session.MethodWebAuthn
	var req adminapi.PasskeyLoginFinishRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil || len(req.Credential) == 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"credential\": <the PublicKeyCredential navigator.credentials.get gave, as JSON>}")
		return
	}
	if !a.signInAllowed(w, r, method, "") {
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(req.Credential)
	if err != nil {
		a.signInFailed(w, r, method, "", "", "unreadable", http.StatusBadRequest, "bad_request", "the credential cannot be read: "+protocolDetail(err))
		return
	}
	ctx := r.Context()
	f, ok, err := a.takePasskeyFlow(ctx, flowPasskeyLogin, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		a.internal(w, "take the passkey sign-in", err)
		return
	}
	if !ok {
		a.signInFailed(w, r, method, "", "", "challenge_unknown", http.StatusUnauthorized, "unauthorized",
			"this passkey sign-in is unknown, finished already or expired: begin again (POST /api/v1/auth/passkey/begin)")
		return
	}
	if !a.signInAllowed(w, r, method, f.Name) {
		return
	}
	fail := func(userID, reason, msg string) {
		a.signInFailed(w, r, method, f.Name, userID, reason, http.StatusUnauthorized, "unauthorized", msg)
	}
	if _, _, audience := a.relyingParty(r); f.Audience != audience {
		fail(f.UserID, "wrong_audience", "this passkey sign-in began at another admin URL: begin again here")
		return
	}
	if f.UserID == "" {
		fail("", "unknown_user", badPasskey)
		return
	}
	u, err := a.opts.People.GetUser(ctx, f.UserID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.DisabledAt != nil) {
		fail(f.UserID, "user_disabled", badPasskey)
		return
	}
	if err != nil {
		a.internal(w, "look up the user", err)
		return
	}
	pu, raw, err := a.passkeys(ctx, u)
	if err != nil {
		a.internal(w, "list the passkeys", err)
		return
	}
	wa, err := a.webAuthn(f.RPID, f.Origins)
	if err != nil {
		a.internal(w, "configure passkeys", err)
		return
	}
	cred, err := wa.ValidateLogin(pu, f.Session, parsed)
	if err != nil {
		fail(u.ID, "bad_assertion", "the passkey was refused: "+protocolDetail(err))
		return
	}
	id := credentialID(cred.ID)
	if cred.Authenticator.CloneWarning {
		a.opts.Log.Warn("a passkey's signature counter went back: it may have been copied", "user_id", u.ID, "passkey", id)
		fail(u.ID, "sign_count_regressed", "this passkey's signature counter went back, so it may have been copied: it is refused; remove it and register a new one")
		return
	}
	g := session.Grant{UserID: u.ID, Method: method, MFA: session.MethodWebAuthn, Audience: f.Audience, Client: a.clientOf(r)}
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		// The authenticator proved possession only: the passkey is the
		// second factor to the password.
		if req.Password == "" {
			a.auditSignIn(r, method, f.Name, u.ID, session.MethodWebAuthn, "deny", "password_missing")
			writeError(w, http.StatusUnauthorized, "password_required",
				"this authenticator did not verify you (no PIN or biometric): send the password with the passkey, or use an authenticator that verifies you")
			return
		}
		hash, err := a.opts.SignIn.Store.GetUserPassword(ctx, u.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.internal(w, "look up the password", err)
			return
		}
		if err != nil || password.Verify(req.Password, hash) != nil {
			if err != nil {
				password.Dummy(req.Password)
			}
			fail(u.ID, "bad_password", badSignIn)
			return
		}
		g.Method = session.MethodPassword
	}
	data, err := json.Marshal(cred)
	if err != nil {
		a.internal(w, "encode the passkey", err)
		return
	}
	old, found := raw[id]
	if !found {
		fail(u.ID, "bad_assertion", badPasskey)
		return
	}
	err = a.opts.SignIn.Store.SwapWebAuthnCredential(ctx, id, old, data, a.opts.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		// Another node used or removed the passkey meanwhile.
		fail(u.ID, "sign_count_race", "this passkey was used elsewhere at the same moment or removed: sign in again")
		return
	}
	if err != nil {
		a.internal(w, "record the passkey's use", err)
		return
	}
	a.startSession(w, r, g, u.Name, wantsCookie(r, req.Cookie))
}
