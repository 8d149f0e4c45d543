package admin

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/sso"
	"github.com/keygate/keygate/internal/store"
)

// An invitee whose keygate signs people in with an OpenID provider may
// accept with it instead of a password: POST /auth/invitations/sso takes
// the token (a form field) and starts a single sign-on whose flow carries
// the invitation's id; the callback then accepts the invitation for the
// identity the provider vouches for, provided its e-mail address (or user
// name) is the invited one. The user made is named after the address and
// linked to the identity, so later sign-ins find it; no password is set.

// ssoInvitation starts a single sign-on that accepts an invitation.
func (a *API) ssoInvitation(w http.ResponseWriter, r *http.Request) {
	if !a.ssoReady(w) {
		return
	}
	inv, _, ok := a.pendingInvitation(w, r, "send the invitation's token (form field token)")
	if !ok {
		return
	}
	a.startSSO(w, r, ssoFlow{Nonce: randomToken(), Invitation: inv.ID}, http.StatusSeeOther)
}

// acceptWithSSO accepts the invitation a single sign-on carried for the
// identity it signed in: the user it makes (or finds, linked to the
// identity) and the second factor the provider reports. A refusal comes
// back for the trail and the person; err is for store failures only.
func (a *API) acceptWithSSO(r *http.Request, invID string, id sso.Identity) (store.User, string, *invitationRefusal, error) {
	ctx := r.Context()
	inv, err := a.opts.Invitations.GetInvitation(ctx, invID)
	if err != nil {
		return store.User{}, "", nil, err
	}
	fail := func(ref *invitationRefusal) (store.User, string, *invitationRefusal, error) {
		a.auditInvitation(r, inv, "deny", "refused", ref.reason)
		return store.User{}, "", ref, nil
	}
	if ref, err := a.checkInvitation(ctx, inv); err != nil || ref != nil {
		if err != nil {
			return store.User{}, "", nil, err
		}
		return fail(ref)
	}
	if !strings.EqualFold(id.Email, inv.Email) && !strings.EqualFold(id.Username, inv.Email) {
		return fail(&invitationRefusal{http.StatusForbidden, "invitation_other_person", "other_identity",
			"this invitation is for " + inv.Email + ", and the provider signed you in as someone else; sign in there as " + inv.Email})
	}
	mfa := ""
	if id.SecondFactor() {
		mfa = "provider"
	} else if a.opts.SignIn.SSOPolicy.RequireProviderMFA {
		roles := a.opts.SignIn.MFARoles
		if roles == nil {
			roles = DefaultMFARoles(a.opts.Roles)
		}
		if slices.Contains(roles, inv.Role) {
			return fail(&invitationRefusal{http.StatusForbidden, "mfa_missing", "mfa_missing",
				"role " + inv.Role + " needs a second factor, and the provider says you signed in without one; sign in at the provider with a second factor"})
		}
	}
	now := a.opts.Now().UTC()
	acc := store.Acceptance{InvitationID: inv.ID, At: now}
	var u store.User
	link := false
	uid, err := a.opts.SignIn.Store.IdentityUser(ctx, id.Issuer, id.Subject)
	switch {
	case err == nil:
		if u, err = a.opts.People.GetUser(ctx, uid); err != nil {
			return store.User{}, "", nil, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, "", nil, err
	default:
		link = true
		existing, err := a.opts.People.GetUserByName(ctx, inv.Email)
		switch {
		case errors.Is(err, store.ErrNotFound):
			u = store.User{ID: newID("usr_"), Name: inv.Email, Kind: store.UserPerson, Role: inv.Role, CreatedAt: now, CreatedBy: inv.CreatedBy}
			acc.NewUser = &u
		case err != nil:
			return store.User{}, "", nil, err
		default:
			// A user of that name made for single sign-on (no password)
			// is linked; one who signs in another way is not taken over.
			if _, perr := a.opts.SignIn.Store.GetUserPassword(ctx, existing.ID); perr == nil || existing.Kind != store.UserPerson {
				return fail(a.acceptRefusal(inv, store.ErrConflict))
			}
			u = existing
		}
	}
	if u.DisabledAt != nil {
		return fail(&invitationRefusal{http.StatusForbidden, "user_disabled", "user_disabled", "your keygate user is disabled; ask an admin"})
	}
	if acc.NewUser == nil {
		acc.UserID = u.ID
		if ref, err := a.alreadyMember(r, u.ID, inv.Team); err != nil {
			return store.User{}, "", nil, err
		} else if ref != nil {
			return fail(ref)
		}
	}
	got, err := a.opts.Invitations.AcceptInvitation(ctx, acc)
	if ref := a.acceptRefusal(inv, err); ref != nil {
		return fail(ref)
	}
	if err != nil {
		return store.User{}, "", nil, err
	}
	if link {
		if err := a.opts.SignIn.Store.LinkIdentity(ctx, id.Issuer, id.Subject, u.ID, now); err != nil {
			return store.User{}, "", nil, err
		}
	}
	a.accepted(r, got, u)
	return u, mfa, nil, nil
}
