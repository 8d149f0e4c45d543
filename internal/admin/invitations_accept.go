package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/password"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Using an invitation: its holder learns what it is for, and accepts it
// with a new password, or signed in as the user it is addressed to (single
// sign-on is in invitations_sso.go). Each use checks the token, that the
// invitation is pending, and that its inviter may still give its role.

// invitationRefusal is why a presented invitation token cannot be used.
type invitationRefusal struct {
	status       int
	code, reason string
	msg          string
}

// findInvitation resolves a presented token to its pending invitation. A
// token that is malformed, unknown, used, revoked or expired, or whose
// inviter may no longer give its role, is a refusal to answer.
func (a *API) findInvitation(ctx context.Context, raw string) (store.Invitation, *invitationRefusal, error) {
	unknown := &invitationRefusal{http.StatusNotFound, "invitation_unknown", "unknown",
		"this invitation link is not valid: it is incomplete or was never issued; ask whoever invited you for a new invitation"}
	if p, err := apikey.Parse(strings.TrimSpace(raw)); err != nil || p.Env != apikey.InviteEnv {
		return store.Invitation{}, unknown, nil
	}
	h := a.opts.Hasher.Hash(strings.TrimSpace(raw))
	inv, err := a.opts.Invitations.GetInvitationByHash(ctx, h[:])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Invitation{}, unknown, nil
	case err != nil:
		return store.Invitation{}, nil, err
	}
	if subtle.ConstantTimeCompare(inv.Hash, h[:]) != 1 {
		return store.Invitation{}, unknown, nil
	}
	ref, err := a.checkInvitation(ctx, inv)
	return inv, ref, err
}

// checkInvitation refuses an invitation that is no longer pending, or
// whose inviter may no longer give its role.
func (a *API) checkInvitation(ctx context.Context, inv store.Invitation) (*invitationRefusal, error) {
	const ask = "; ask whoever invited you for a new invitation"
	switch invitationStatus(inv, a.opts.Now()) {
	case adminapi.InvitationAccepted:
		return &invitationRefusal{http.StatusGone, "invitation_used", "used", "this invitation was accepted already; an invitation works once. Sign in instead, or" + ask[1:]}, nil
	case adminapi.InvitationRevoked:
		return &invitationRefusal{http.StatusGone, "invitation_revoked", "revoked", "this invitation was revoked" + ask}, nil
	case adminapi.InvitationExpired:
		return &invitationRefusal{http.StatusGone, "invitation_expired", "expired", "this invitation expired at " + inv.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC") + ask}, nil
	}
	// The inviter must still hold what the role grants: an invitation from
	// someone since disabled, demoted or taken out of the team gives nothing.
	if ok, err := a.inviterMayGive(ctx, inv); err != nil {
		return nil, err
	} else if !ok {
		return &invitationRefusal{http.StatusForbidden, "invitation_inviter", "inviter_lacks_role", "whoever invited you may no longer give role " + inv.Role + " in team " + inv.Team + ask}, nil
	}
	return nil, nil
}

// inviterMayGive reports whether an invitation's maker may still give its
// role in its team: a user who is enabled and holds it, or an admin
// credential of no user that is still valid and holds it.
func (a *API) inviterMayGive(ctx context.Context, inv store.Invitation) (bool, error) {
	var p rbac.Principal
	tok, err := a.opts.Credentials.GetAdminToken(ctx, inv.CreatedBy)
	switch {
	case err == nil && tok.UserID == "":
		if tok.RevokedAt != nil || (tok.ExpiresAt != nil && !a.opts.Now().Before(*tok.ExpiresAt)) {
			return false, nil
		}
		if p, err = a.tokenPrincipal(ctx, tok); err != nil {
			return false, err
		}
	case err == nil, errors.Is(err, store.ErrNotFound):
		userID := inv.CreatedBy
		if err == nil {
			userID = tok.UserID
		}
		p, err = a.UserPrincipal(ctx, userID, "", "", "", nil)
		if errors.Is(err, ErrUserDisabled) || errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	default:
		return false, err
	}
	return len(a.opts.Roles.MissingToGrant(p, inv.Role, inv.Team)) == 0, nil
}

// refuseInvitation answers a refused use of an invitation, records it, and
// counts it as a failed sign-in from the client's address.
func (a *API) refuseInvitation(w http.ResponseWriter, r *http.Request, inv store.Invitation, ref *invitationRefusal) {
	a.auditInvitation(r, inv, "deny", "refused", ref.reason)
	a.countSignInFailure(r, "")
	writeError(w, ref.status, ref.code, ref.msg)
}

// pendingInvitation takes the first steps every use of an invitation link
// takes: the invitations are kept, the form names a token (else 400 with
// usage), the caller's address is not throttled, and the token names an
// invitation still pending (else the refusal is audited and answered). It
// reports whether the caller may go on.
func (a *API) pendingInvitation(w http.ResponseWriter, r *http.Request, usage string) (store.Invitation, adminapi.AcceptInvitationRequest, bool) {
	if !a.invitationsReady(w) {
		return store.Invitation{}, adminapi.AcceptInvitationRequest{}, false
	}
	req, err := readInvitationForm(w, r)
	if err != nil || strings.TrimSpace(req.Token) == "" {
		writeError(w, http.StatusBadRequest, "bad_request", usage)
		return store.Invitation{}, req, false
	}
	if !a.signInAllowed(w, r, "invitation", "") {
		return store.Invitation{}, req, false
	}
	inv, ref, err := a.findInvitation(r.Context(), req.Token)
	if err != nil {
		a.internal(w, "look up the invitation", err)
		return inv, req, false
	}
	if ref != nil {
		a.refuseInvitation(w, r, inv, ref)
		return inv, req, false
	}
	return inv, req, true
}

// readInvitationForm reads a token (and a password) from a JSON body or a
// browser's form.
func readInvitationForm(w http.ResponseWriter, r *http.Request) (adminapi.AcceptInvitationRequest, error) {
	var req adminapi.AcceptInvitationRequest
	if isForm(r) {
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		if err := r.ParseForm(); err != nil {
			return req, errors.New("could not read the form")
		}
		req.Token, req.Password = r.PostForm.Get("token"), r.PostForm.Get("password")
		return req, nil
	}
	err := web.DecodeJSON(w, r, maxAdminBody, &req)
	return req, err
}

// lookupInvitation tells the holder of a pending invitation what it is
// for: POST /auth/invitations/lookup.
func (a *API) lookupInvitation(w http.ResponseWriter, r *http.Request) {
	inv, _, ok := a.pendingInvitation(w, r, "send {\"token\": \"kg_invite_...\"}")
	if !ok {
		return
	}
	out := adminapi.InvitationInfo{Email: inv.Email, Team: inv.Team, Role: inv.Role, InvitedBy: inv.CreatedByName, ExpiresAt: inv.ExpiresAt}
	if a.opts.SignIn.SSO != nil {
		out.SSO = a.opts.SignIn.SSO.Name()
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// acceptInvitation accepts an invitation with a new password: POST
// /auth/invitations/accept. The new user, named after the invited address,
// is a member of the team with the invited role and is signed in; a role
// that needs a second factor gets a session that may only enrol one.
func (a *API) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	inv, req, ok := a.pendingInvitation(w, r, "send {\"token\": \"kg_invite_...\", \"password\": \"...\"}")
	if !ok {
		return
	}
	ctx := r.Context()
	if err := password.Check(req.Password); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	params := a.opts.SignIn.Password
	if params == (password.Params{}) {
		params = password.Default
	}
	hash, err := password.Hash(req.Password, params)
	if err != nil {
		a.internal(w, "hash the password", err)
		return
	}
	now := a.opts.Now().UTC()
	u := store.User{ID: newID("usr_"), Name: inv.Email, Kind: store.UserPerson, Role: inv.Role, CreatedAt: now, CreatedBy: inv.CreatedBy}
	got, err := a.opts.Invitations.AcceptInvitation(ctx, store.Acceptance{InvitationID: inv.ID, At: now, NewUser: &u, PasswordHash: hash})
	if ref := a.acceptRefusal(inv, err); ref != nil {
		a.refuseInvitation(w, r, inv, ref)
		return
	}
	if err != nil {
		a.internal(w, "accept the invitation", err)
		return
	}
	a.accepted(r, got, u)
	g := session.Grant{UserID: u.ID, Method: session.MethodPassword, Audience: session.Audience(r, a.opts.SignIn.TLS), Client: a.clientOf(r)}
	need, err := a.mfaRequired(ctx, u)
	if err != nil {
		a.internal(w, "look up the user's teams", err)
		return
	}
	// A role that needs a second factor gets a session that may only
	// enrol one, as a password sign-in without one does.
	g.MFAPending = need
	a.startSession(w, r, g, u.Name, wantsCookie(r, req.Cookie))
}

// acceptRefusal turns the store's refusal of an acceptance into one for
// the invitee: another acceptance won, or the name was taken since.
func (a *API) acceptRefusal(inv store.Invitation, err error) *invitationRefusal {
	switch {
	case errors.Is(err, store.ErrInvitationClosed):
		return &invitationRefusal{http.StatusGone, "invitation_used", "closed", "this invitation was used, revoked or expired a moment ago; ask whoever invited you for a new invitation"}
	case errors.Is(err, store.ErrConflict):
		return &invitationRefusal{http.StatusConflict, "conflict", "name_taken",
			"a keygate user named " + inv.Email + " exists already; sign in as that user, then open the invitation link again to join team " + inv.Team}
	}
	return nil
}

// accepted records an accepted invitation. From here on the request is
// the new member's: the trail names them as its actor.
func (a *API) accepted(r *http.Request, inv store.Invitation, u store.User) {
	st := state(r)
	st.principal = rbac.Principal{ID: u.ID, UserID: u.ID, Name: u.Name, Kind: rbac.KindUser, Role: u.Role, Via: "invitation " + inv.ID}
	a.auditInvitation(r, inv, "allow", "accepted", "")
	a.auditEvent(r, "admin.change", "team "+inv.Team, "allow", map[string]string{"field": "member " + u.Name, "before": "", "after": inv.Role + " (invitation " + inv.ID + ")"})
	a.opts.Log.Info("invitation accepted", "invitation", inv.ID, "user_id", u.ID, "team", inv.Team, "role", inv.Role)
}

// acceptInvitationAsCaller accepts an invitation for the signed-in user it
// is addressed to: POST /me/invitations/accept. This is how someone who is
// a keygate user already (invited to two teams, or made by single sign-on
// since) joins: no new user, no password, only the membership.
func (a *API) acceptInvitationAsCaller(w http.ResponseWriter, r *http.Request) {
	if !a.invitationsReady(w) {
		return
	}
	req, err := readInvitationForm(w, r)
	if err != nil || strings.TrimSpace(req.Token) == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"token\": \"kg_invite_...\"}")
		return
	}
	u, ok := a.caller(w, r)
	if !ok {
		return
	}
	if !a.signInAllowed(w, r, "invitation", "") {
		return
	}
	ctx := r.Context()
	inv, ref, err := a.findInvitation(ctx, req.Token)
	if err != nil {
		a.internal(w, "look up the invitation", err)
		return
	}
	if ref == nil && !strings.EqualFold(u.Name, inv.Email) {
		ref = &invitationRefusal{http.StatusForbidden, "invitation_other_person", "other_user",
			"this invitation is for " + inv.Email + ", and you are signed in as " + u.Name + "; sign in as " + inv.Email + " to accept it"}
	}
	if ref == nil {
		if ref, err = a.alreadyMember(r, u.ID, inv.Team); err != nil {
			a.internal(w, "read the user's teams", err)
			return
		}
	}
	if ref != nil {
		a.refuseInvitation(w, r, inv, ref)
		return
	}
	got, err := a.opts.Invitations.AcceptInvitation(ctx, store.Acceptance{InvitationID: inv.ID, At: a.opts.Now().UTC(), UserID: u.ID})
	if ref := a.acceptRefusal(inv, err); ref != nil {
		a.refuseInvitation(w, r, inv, ref)
		return
	}
	if err != nil {
		a.internal(w, "accept the invitation", err)
		return
	}
	a.accepted(r, got, u)
	web.WriteJSON(w, http.StatusOK, memberView(store.TeamMember{Team: got.Team, UserID: u.ID, Role: got.Role, AddedAt: *got.AcceptedAt, UserName: u.Name, UserKind: u.Kind}))
}

// alreadyMember refuses an invitation to a team the user is in already:
// an invitation never changes the role of someone in the team.
func (a *API) alreadyMember(r *http.Request, userID, team string) (*invitationRefusal, error) {
	ms, err := a.opts.People.ListMemberships(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Team == team {
			return &invitationRefusal{http.StatusConflict, "conflict", "already_member",
				"you are a member of team " + team + " already, as " + m.Role + "; ask a team-admin to change your role instead"}, nil
		}
	}
	return nil, nil
}
