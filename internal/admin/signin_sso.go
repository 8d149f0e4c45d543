package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/sso"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Single sign-on, in the browser or for the CLI:
//
//	GET /auth/oidc/start[?next=/oauth/authorize?...]
//	GET /auth/oidc/start[?cli_redirect=http://127.0.0.1:PORT/callback&cli_challenge=S256(verifier)]
//	  -> 302 to the provider, with state, nonce and a PKCE challenge; the
//	     state also goes in a short-lived cookie, so only the browser that
//	     started a sign-in can finish it.
//	GET /auth/oidc/callback?state&code
//	  -> the state is taken once (any node), the code exchanged with the
//	     PKCE verifier, the ID token verified (signature, issuer,
//	     audience, expiry, nonce), the identity mapped to a user (created
//	     just in time when allowed); then the session cookie and a redirect
//	     to / (or back to the MCP client's authorization request the
//	     sign-in interrupted, kept with the flow), or, for the CLI, a
//	     redirect to its loopback listener with a one-time code.
//	POST /auth/oidc/exchange {"code", "verifier"}
//	  -> the CLI trades the code and its verifier for the session token.
//
// The PKCE verifier is never stored: it is derived from the state with the
// server's pepper. The flow keeps only the nonce and the CLI's redirect and
// challenge, under a SHA-256 of the state.

const (
	ssoFlowTTL    = 10 * time.Minute
	ssoCLICodeTTL = 2 * time.Minute
	ssoCookie     = "keygate_sso"
	flowOIDC      = "oidc"
	flowOIDCCLI   = "oidc-cli"
)

type ssoFlow struct {
	Nonce        string `json:"nonce"`
	CLIRedirect  string `json:"cli_redirect,omitempty"`
	CLIChallenge string `json:"cli_challenge,omitempty"`
	// Invitation is the id of the invitation the sign-in accepts, if any.
	Invitation string `json:"invitation,omitempty"`
	// Next is the authorization request of an MCP client to return to
	// once signed in (see authorizeReturn). It is kept with the flow, so
	// only the browser that started the sign-in, holding its state
	// cookie, is sent there; the callback's own query cannot name it.
	Next string `json:"next,omitempty"`
}

type ssoCLIGrant struct {
	UserID    string `json:"user_id"`
	Name      string `json:"name"`
	Challenge string `json:"challenge"`
	MFA       string `json:"mfa,omitempty"`
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func flowID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// pkceVerifier derives a sign-in's PKCE verifier from its state.
func (a *API) pkceVerifier(state string) string {
	sum := a.opts.Hasher.Hash("sso-pkce:" + state)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (a *API) ssoReady(w http.ResponseWriter) bool {
	if !a.signInReady(w) {
		return false
	}
	if a.opts.SignIn.SSO == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "single sign-on is not configured here (signin.oidc); sign in with a password or an admin token")
		return false
	}
	return true
}

// loopbackRedirect checks that a CLI's redirect goes to this machine's
// loopback, with a port: nowhere else may a sign-in code be sent.
func loopbackRedirect(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Port() == "" {
		return errors.New("cli_redirect must be http://127.0.0.1:PORT/...")
	}
	if h := u.Hostname(); h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return errors.New("cli_redirect must be on the loopback address (127.0.0.1, ::1 or localhost)")
		}
	}
	return nil
}

// oidcStart begins a single sign-on: GET /auth/oidc/start.
func (a *API) oidcStart(w http.ResponseWriter, r *http.Request) {
	if !a.ssoReady(w) {
		return
	}
	q := r.URL.Query()
	f := ssoFlow{Nonce: randomToken(), CLIRedirect: q.Get("cli_redirect"), CLIChallenge: q.Get("cli_challenge")}
	if f.CLIRedirect == "" {
		// Any other page to return to is dropped: the sign-in then ends
		// on the console's home, as without one.
		f.Next, _ = authorizeReturn(q.Get("next"))
	}
	if f.CLIRedirect != "" || f.CLIChallenge != "" {
		if err := loopbackRedirect(f.CLIRedirect); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if len(f.CLIChallenge) != 43 {
			writeError(w, http.StatusBadRequest, "bad_request", "cli_challenge must be the base64url SHA-256 of the CLI's verifier")
			return
		}
	}
	a.startSSO(w, r, f, http.StatusFound)
}

// startSSO keeps a sign-in flow under a new state, binds it to this
// browser with a cookie, and sends the browser to the provider.
func (a *API) startSSO(w http.ResponseWriter, r *http.Request, f ssoFlow, status int) {
	state := randomToken()
	data, _ := json.Marshal(f)
	if err := a.opts.SignIn.Store.PutSignInFlow(r.Context(), flowID(state), flowOIDC, data, a.opts.Now().Add(ssoFlowTTL)); err != nil {
		a.internal(w, "start the sign-in", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: state, Path: adminapiPrefix + "/auth/oidc/", HttpOnly: true, Secure: a.opts.SignIn.TLS,
		SameSite: http.SameSiteLaxMode, MaxAge: int(ssoFlowTTL.Seconds())})
	http.Redirect(w, r, a.opts.SignIn.SSO.AuthURL(state, f.Nonce, a.pkceVerifier(state)), status)
}

// oidcCallback finishes a single sign-on: GET /auth/oidc/callback.
func (a *API) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if !a.ssoReady(w) {
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	fail := func(f *ssoFlow, status int, reason, msg, name, userID string) {
		a.auditSignIn(r, session.MethodOIDC, name, userID, "", "deny", reason)
		if f != nil && f.CLIRedirect != "" {
			http.Redirect(w, r, f.CLIRedirect+"?"+url.Values{"error": {msg}}.Encode(), http.StatusFound)
			return
		}
		writeError(w, status, "unauthorized", msg)
	}
	c, err := r.Cookie(ssoCookie)
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		fail(nil, http.StatusBadRequest, "state_mismatch", "this sign-in was not started in this browser, or is over; start again", "", "")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: adminapiPrefix + "/auth/oidc/", HttpOnly: true, Secure: a.opts.SignIn.TLS, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	data, err := a.opts.SignIn.Store.TakeSignInFlow(r.Context(), flowID(state), flowOIDC, a.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		fail(nil, http.StatusBadRequest, "state_unknown", "this sign-in is unknown, used already or expired; start again", "", "")
		return
	}
	if err != nil {
		a.internal(w, "finish the sign-in", err)
		return
	}
	var f ssoFlow
	if err := json.Unmarshal(data, &f); err != nil {
		a.internal(w, "read the sign-in", err)
		return
	}
	if e := q.Get("error"); e != "" {
		fail(&f, http.StatusUnauthorized, "provider_error", "the provider refused the sign-in: "+e, "", "")
		return
	}
	id, err := a.opts.SignIn.SSO.Exchange(r.Context(), q.Get("code"), a.pkceVerifier(state), f.Nonce)
	if errors.Is(err, sso.ErrVerify) {
		fail(&f, http.StatusUnauthorized, "id_token_refused", err.Error(), "", "")
		return
	}
	if err != nil {
		a.opts.Log.Error("single sign-on: the provider could not be reached", "err", err)
		writeError(w, http.StatusBadGateway, "provider_unavailable", "keygate could not reach the single-sign-on provider; try again")
		return
	}
	var u store.User
	var mfa string
	if f.Invitation != "" {
		var ref *invitationRefusal
		if u, mfa, ref, err = a.acceptWithSSO(r, f.Invitation, id); err == nil && ref != nil {
			fail(&f, ref.status, ref.reason, ref.msg, id.Username, "")
			return
		}
	} else {
		var reason, msg string
		if u, mfa, reason, msg, err = a.ssoUser(r, id); err == nil && reason != "" {
			fail(&f, http.StatusForbidden, reason, msg, id.Username, u.ID)
			return
		}
	}
	if err != nil {
		a.internal(w, "find the user", err)
		return
	}
	if f.CLIRedirect != "" {
		code := randomToken()
		g, _ := json.Marshal(ssoCLIGrant{UserID: u.ID, Name: u.Name, Challenge: f.CLIChallenge, MFA: mfa})
		if err := a.opts.SignIn.Store.PutSignInFlow(r.Context(), flowID(code), flowOIDCCLI, g, a.opts.Now().Add(ssoCLICodeTTL)); err != nil {
			a.internal(w, "hand the sign-in to the CLI", err)
			return
		}
		http.Redirect(w, r, f.CLIRedirect+"?"+url.Values{"code": {code}}.Encode(), http.StatusFound)
		return
	}
	tok, s, err := a.opts.SignIn.Sessions.Issue(r.Context(), session.Grant{UserID: u.ID, Method: session.MethodOIDC, MFA: mfa,
		Audience: session.Audience(r, a.opts.SignIn.TLS), Client: a.clientOf(r)})
	if err != nil {
		a.internal(w, "start a session", err)
		return
	}
	a.auditSignIn(r, session.MethodOIDC, u.Name, u.ID, mfa, "allow", "")
	a.setSessionCookie(w, tok.Reveal(), s)
	to := "/"
	if next, ok := authorizeReturn(f.Next); ok {
		to = next
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// authorizeReturn reports whether next is a page a browser sign-in may
// return to: keygate's authorization endpoint for MCP clients on this
// origin (mcpauth.AuthorizePath, with the client's query), as a path with
// no scheme, host, user info or fragment. It returns next rebuilt from
// its parsed parts, so nothing but that path and its query survives.
func authorizeReturn(next string) (string, bool) {
	if next == "" || len(next) > 8192 || !strings.HasPrefix(next, mcpauth.AuthorizePath) || strings.ContainsAny(next, "\\\r\n\t ") {
		return "", false
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Fragment != "" || u.Opaque != "" || u.Path != mcpauth.AuthorizePath ||
		u.RawPath != "" {
		return "", false
	}
	if u.RawQuery == "" {
		return u.Path, true
	}
	return u.Path + "?" + u.RawQuery, true
}

// oidcExchange trades a CLI's one-time code and verifier for its session:
// POST /auth/oidc/exchange.
func (a *API) oidcExchange(w http.ResponseWriter, r *http.Request) {
	if !a.ssoReady(w) {
		return
	}
	var req adminapi.SSOExchangeRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil || req.Code == "" || req.Verifier == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"code\": \"...\", \"verifier\": \"...\"}")
		return
	}
	if !a.signInAllowed(w, r, session.MethodOIDC, "") {
		return
	}
	data, err := a.opts.SignIn.Store.TakeSignInFlow(r.Context(), flowID(req.Code), flowOIDCCLI, a.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		a.signInFailed(w, r, session.MethodOIDC, "", "", "code_unknown", http.StatusUnauthorized, "unauthorized", "this sign-in code is unknown, used already or expired; run keygate login --sso again")
		return
	}
	if err != nil {
		a.internal(w, "finish the sign-in", err)
		return
	}
	var g ssoCLIGrant
	if err := json.Unmarshal(data, &g); err != nil {
		a.internal(w, "read the sign-in", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(sso.S256(req.Verifier)), []byte(g.Challenge)) != 1 {
		a.signInFailed(w, r, session.MethodOIDC, g.Name, g.UserID, "verifier_mismatch", http.StatusUnauthorized, "unauthorized", "the verifier does not match this sign-in; run keygate login --sso again")
		return
	}
	a.startSession(w, r, session.Grant{UserID: g.UserID, Method: session.MethodOIDC, MFA: g.MFA, Audience: session.Audience(r, a.opts.SignIn.TLS), Client: a.clientOf(r)}, g.Name, false)
}

// ssoUser finds (or, when allowed, creates) the user an identity signs in
// as, and the second factor the provider reports ("provider" when its ID
// token's amr names one). A refusal comes back as a reason for the trail
// and a message for the person; err is for store failures only.
func (a *API) ssoUser(r *http.Request, id sso.Identity) (store.User, string, string, string, error) {
	u, reason, msg, err := a.ssoLink(r, id)
	if err != nil || reason != "" {
		return u, "", reason, msg, err
	}
	mfa := ""
	if id.SecondFactor() {
		mfa = "provider"
	} else if a.opts.SignIn.SSOPolicy.RequireProviderMFA {
		need, err := a.mfaRequired(r.Context(), u)
		if err != nil {
			return store.User{}, "", "", "", err
		}
		if need {
			return u, "", "mfa_missing", "your keygate role needs a second factor, and the provider says you signed in without one (its ID token's amr claim); sign in at the provider with a second factor", nil
		}
	}
	return u, mfa, "", "", nil
}

// ssoLink finds, links or creates the user an identity signs in as.
func (a *API) ssoLink(r *http.Request, id sso.Identity) (store.User, string, string, error) {
	ctx := r.Context()
	pol := a.opts.SignIn.SSOPolicy
	role, teams, mapped := pol.Mapping.Map(id.Groups)
	uid, err := a.opts.SignIn.Store.IdentityUser(ctx, id.Issuer, id.Subject)
	var u store.User
	switch {
	case err == nil:
		if u, err = a.opts.People.GetUser(ctx, uid); err != nil {
			return store.User{}, "", "", err
		}
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, "", "", err
	default:
		// Not linked yet: an existing user of that name who has no
		// password (made for single sign-on) is linked; else one is
		// created when the mapping allows it.
		if id.Username == "" || !userName.MatchString(id.Username) {
			return store.User{}, "no_username", "the provider sent no usable user name (signin.oidc.username_claim)", nil
		}
		existing, err := a.opts.People.GetUserByName(ctx, id.Username)
		switch {
		case err == nil:
			if _, perr := a.opts.SignIn.Store.GetUserPassword(ctx, existing.ID); perr == nil || existing.Kind != store.UserPerson {
				return store.User{}, "name_taken", fmt.Sprintf("a keygate user named %s exists and signs in another way; ask an admin", id.Username), nil
			}
			u = existing
		case !errors.Is(err, store.ErrNotFound):
			return store.User{}, "", "", err
		case !pol.CreateUsers:
			return store.User{}, "no_user", fmt.Sprintf("there is no keygate user %s, and users are not created at sign-in here (signin.oidc.create_users); ask an admin", id.Username), nil
		case !mapped:
			return store.User{}, "no_mapping", "none of your groups at the provider maps to a keygate role (signin.oidc.groups); ask an admin", nil
		default:
			for _, m := range teams {
				if _, err := a.opts.People.GetTeam(ctx, m.Team); errors.Is(err, store.ErrNotFound) {
					return store.User{}, "no_team", fmt.Sprintf("your groups map to team %s, which does not exist in keygate; ask an admin", m.Team), nil
				} else if err != nil {
					return store.User{}, "", "", err
				}
			}
			u = store.User{ID: newID("usr_"), Name: id.Username, Kind: store.UserPerson, Role: role, CreatedAt: a.opts.Now().UTC(), CreatedBy: "sso:" + id.Issuer}
			if err := a.opts.People.CreateUser(ctx, u); err != nil {
				return store.User{}, "", "", err
			}
			for _, m := range teams {
				if _, err := a.opts.People.PutTeamMember(ctx, store.TeamMember{Team: m.Team, UserID: u.ID, Role: m.Role, AddedAt: a.opts.Now().UTC()}); err != nil {
					return store.User{}, "", "", err
				}
			}
			a.auditEvent(r, "admin.change", "user "+u.Name, "allow", map[string]string{"field": "created", "before": "", "after": "by single sign-on, role " + role})
		}
		if err := a.opts.SignIn.Store.LinkIdentity(ctx, id.Issuer, id.Subject, u.ID, a.opts.Now().UTC()); err != nil {
			return store.User{}, "", "", err
		}
	}
	if u.DisabledAt != nil {
		return u, "user_disabled", "your keygate user is disabled; ask an admin", nil
	}
	if pol.SyncRoles && mapped && u.Role != role {
		before := u.Role
		if u, err = a.opts.People.SetUserRole(ctx, u.ID, role); err != nil {
			return store.User{}, "", "", err
		}
		a.auditChange(r, "user "+u.Name, "role", before, role+" (from single sign-on groups)")
	}
	return u, "", "", nil
}
