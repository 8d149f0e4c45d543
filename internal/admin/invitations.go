package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Team invitations (adminapi/invitations.go is the contract). Whoever may
// manage a team's invitations invites an e-mail address with a role they
// could give themselves; the answer carries a kg_invite_ token, shown once,
// of which only an HMAC is kept. The invitee accepts it, once and before it
// expires, by setting a password or signing in with single sign-on, and is
// then a user named after the address and a member of the team. Every
// step, refusals included, is an admin.invitation event on the audit trail,
// which names the invitation by its id, never its token.

// InvitationStore keeps invitations to join a team. keygate's store is one.
type InvitationStore interface {
	CreateInvitation(ctx context.Context, inv store.Invitation) error
	GetInvitation(ctx context.Context, id string) (store.Invitation, error)
	GetInvitationByHash(ctx context.Context, hash []byte) (store.Invitation, error)
	ListInvitations(ctx context.Context, f store.InvitationFilter) ([]store.Invitation, error)
	RevokeInvitation(ctx context.Context, id, by string, at time.Time) (store.Invitation, error)
	AcceptInvitation(ctx context.Context, a store.Acceptance) (store.Invitation, error)
}

const (
	// DefaultInvitationTTL is how long an invitation works unless the
	// configuration or the request says otherwise.
	DefaultInvitationTTL = 7 * 24 * time.Hour
	// MaxInvitationTTL is the longest an invitation may work.
	MaxInvitationTTL = 30 * 24 * time.Hour
)

// invitationsReady answers 501 when invitations cannot be made or used
// here: they need the store and people signing in.
func (a *API) invitationsReady(w http.ResponseWriter) bool {
	if a.opts.Invitations == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no invitations")
		return false
	}
	return a.signInReady(w)
}

// invitationTTL reads a requested lifetime: empty is the configured default.
func (a *API) invitationTTL(s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		if a.opts.InvitationTTL > 0 {
			return a.opts.InvitationTTL, nil
		}
		return DefaultInvitationTTL, nil
	}
	d, err := adminapi.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ttl: %w", err)
	}
	if d <= 0 || d > MaxInvitationTTL {
		return 0, fmt.Errorf("ttl: an invitation works for up to %s; ask for less, such as 7d", formatDuration(MaxInvitationTTL))
	}
	return d, nil
}

// inviteEmail reads an invited address: a plain e-mail address, in lower
// case, which is also the name of the user it makes.
func inviteEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if addr, err := mail.ParseAddress(e); err != nil || addr.Address != e || !strings.Contains(e, "@") || !userName.MatchString(e) {
		return "", fmt.Errorf("email %q must be a plain e-mail address, such as ann@example.com", s)
	}
	return e, nil
}

// createInvitation invites someone to a team: POST /teams/{name}/invitations.
func (a *API) createInvitation(w http.ResponseWriter, r *http.Request) {
	if !a.invitationsReady(w) {
		return
	}
	var req adminapi.CreateInvitationRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "send {\"email\": \"ann@example.com\", \"role\": \"developer\"}: "+err.Error())
		return
	}
	t := *state(r).team
	email, err := inviteEmail(req.Email)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	role := strings.TrimSpace(req.Role)
	if role == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "role is required, such as developer")
		return
	}
	// The role must be one the inviter could give in this team: nobody
	// invites anyone to more than they hold.
	if err := a.checkAssign(r, role, t.Name); err != nil {
		var he httpError
		if errors.As(err, &he) && he.status == http.StatusForbidden {
			a.auditInvitation(r, store.Invitation{Email: email, Team: t.Name, Role: role}, "deny", "refused", "role_above_inviter")
		}
		a.targetError(w, err)
		return
	}
	ttl, err := a.invitationTTL(req.TTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	ctx := r.Context()
	// A user who exists already accepts signed in as themselves; one who
	// cannot sign in, or is in the team already, is not invited.
	switch u, err := a.opts.People.GetUserByName(ctx, email); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		a.internal(w, "look up the user", err)
		return
	case u.Kind != store.UserPerson || u.DisabledAt != nil:
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s is a service account or a disabled user, who cannot sign in to accept; add them with keygate team member add %s %s --role %s", email, t.Name, email, role))
		return
	default:
		ms, err := a.opts.People.ListMemberships(ctx, u.ID)
		if err != nil {
			a.internal(w, "read the user's teams", err)
			return
		}
		for _, m := range ms {
			if m.Team == t.Name {
				writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s is a member of team %s already, as %s; change the role with keygate team member add %s %s --role %s", email, t.Name, m.Role, t.Name, email, role))
				return
			}
		}
	}
	now := a.opts.Now().UTC()
	pending, err := a.opts.Invitations.ListInvitations(ctx, store.InvitationFilter{Team: t.Name, PendingAt: now})
	if err != nil {
		a.internal(w, "read the team's invitations", err)
		return
	}
	for _, p := range pending {
		if p.Email == email {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("%s has a pending invitation to team %s already (%s); revoke it first (keygate invite revoke %s)", email, t.Name, p.ID, p.ID))
			return
		}
	}
	raw, err := apikey.GenerateInvite()
	if err != nil {
		a.internal(w, "make the invitation", err)
		return
	}
	hash := a.opts.Hasher.Hash(raw.Reveal())
	p := principal(r)
	inv := store.Invitation{ID: newID("inv_"), Hash: hash[:], Email: email, Team: t.Name, Role: role, CreatedBy: p.ID, CreatedByName: p.Name,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := a.opts.Invitations.CreateInvitation(ctx, inv); err != nil {
		a.internal(w, "store the invitation", err)
		return
	}
	a.auditInvitation(r, inv, "allow", "created", "")
	a.opts.Log.Info("invitation created", "actor", p.ID, "invitation", inv.ID, "team", t.Name, "role", role)
	link := session.Audience(r, a.opts.SignIn.TLS) + "/invite#" + raw.Reveal()
	web.WriteJSON(w, http.StatusCreated, adminapi.CreatedInvitation{Invitation: a.invitationView(inv, now), Token: raw.Reveal(), Link: link})
}

// invitationView shows an invitation, never its token or hash.
func (a *API) invitationView(inv store.Invitation, now time.Time) adminapi.Invitation {
	v := adminapi.Invitation{ID: inv.ID, Email: inv.Email, Team: inv.Team, Role: inv.Role, InvitedBy: inv.CreatedByName, CreatedAt: inv.CreatedAt,
		ExpiresAt: inv.ExpiresAt, RevokedAt: inv.RevokedAt, AcceptedAt: inv.AcceptedAt, Status: invitationStatus(inv, now)}
	return v
}

func invitationStatus(inv store.Invitation, now time.Time) string {
	switch {
	case inv.AcceptedAt != nil:
		return adminapi.InvitationAccepted
	case inv.RevokedAt != nil:
		return adminapi.InvitationRevoked
	case !now.Before(inv.ExpiresAt):
		return adminapi.InvitationExpired
	}
	return adminapi.InvitationPending
}

// listTeamInvitations lists a team's pending invitations (every one with
// ?all=true): GET /teams/{name}/invitations.
func (a *API) listTeamInvitations(w http.ResponseWriter, r *http.Request) {
	a.writeInvitations(w, r, state(r).team.Name)
}

// listInvitations lists the pending invitations of every team the caller
// may see them in (?team= for one): GET /invitations.
func (a *API) listInvitations(w http.ResponseWriter, r *http.Request) {
	a.writeInvitations(w, r, strings.TrimSpace(r.URL.Query().Get("team")))
}

func (a *API) writeInvitations(w http.ResponseWriter, r *http.Request, team string) {
	if a.opts.Invitations == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no invitations")
		return
	}
	now := a.opts.Now().UTC()
	f := store.InvitationFilter{Team: team, PendingAt: now}
	if r.URL.Query().Get("all") == "true" {
		f.PendingAt = time.Time{}
	}
	is, err := a.opts.Invitations.ListInvitations(r.Context(), f)
	if err != nil {
		a.internal(w, "list invitations", err)
		return
	}
	out := adminapi.InvitationList{Invitations: []adminapi.Invitation{}}
	names := map[string]string{} // user id -> name, for accepted invitations
	for _, inv := range is {
		if !a.can(r, rbac.InvitationsRead, rbac.Resource{Team: inv.Team}) {
			continue
		}
		v := a.invitationView(inv, now)
		if id := inv.AcceptedBy; id != "" {
			if _, ok := names[id]; !ok {
				u, err := a.opts.People.GetUser(r.Context(), id)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					a.internal(w, "list invitations", err)
					return
				}
				names[id] = u.Name
			}
			v.User = names[id]
		}
		out.Invitations = append(out.Invitations, v)
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// invitationTarget resolves /invitations/{id} to the invitation's team.
func (a *API) invitationTarget(r *http.Request) (resolved, error) {
	id := r.PathValue("id")
	if a.opts.Invitations == nil {
		return resolved{}, notFound("invitation", id)
	}
	inv, err := a.opts.Invitations.GetInvitation(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return resolved{}, notFound("invitation", id)
	}
	if err != nil {
		return resolved{}, err
	}
	state(r).invitation = &inv
	return resolved{res: rbac.Resource{Team: inv.Team}, kind: "invitation", name: id}, nil
}

// revokeInvitation stops a pending invitation from working: POST
// /invitations/{id}/revoke. Like taking a member out, it needs every grant
// of the invited role.
func (a *API) revokeInvitation(w http.ResponseWriter, r *http.Request) {
	inv := *state(r).invitation
	p := principal(r)
	if missing := a.opts.Roles.MissingToGrant(p, inv.Role, inv.Team); len(missing) > 0 {
		a.auditInvitation(r, inv, "deny", "refused", "role_above_revoker")
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("the invitation gives role %s in team %s, which holds what you may not (%s)", inv.Role, inv.Team, grantList(missing)))
		return
	}
	now := a.opts.Now().UTC()
	got, err := a.opts.Invitations.RevokeInvitation(r.Context(), inv.ID, p.ID, now)
	switch {
	case errors.Is(err, store.ErrInvitationClosed):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("invitation %s is %s already; nothing was changed", inv.ID, invitationStatus(inv, now)))
		return
	case err != nil:
		a.lookupError(w, "invitation", inv.ID, err)
		return
	}
	a.auditInvitation(r, got, "allow", "revoked", "")
	a.opts.Log.Info("invitation revoked", "actor", p.ID, "invitation", inv.ID, "team", inv.Team)
	web.WriteJSON(w, http.StatusOK, a.invitationView(got, now))
}

// auditInvitation records a step of an invitation: created, revoked,
// accepted, or refused (decision deny, with the reason).
func (a *API) auditInvitation(r *http.Request, inv store.Invitation, decision, action, reason string) {
	f := map[string]string{"action": action}
	res := "invitation"
	if inv.Team != "" {
		f["team"], f["role"], f["email"] = inv.Team, inv.Role, inv.Email
	}
	if inv.ID != "" {
		res = "invitation " + inv.ID
		f["invited_by"], f["expires_at"] = inv.CreatedBy, inv.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if inv.AcceptedBy != "" {
		f["user_id"] = inv.AcceptedBy
	}
	if reason != "" {
		f["reason"] = reason
	}
	a.auditEvent(r, "admin.invitation", res, decision, f)
}
