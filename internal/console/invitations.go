package console

import (
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
)

// A team's page shows its members and invitations; whoever may manage the
// team's invitations invites from it and revokes from it. The link an
// invitation answers is shown once, on the page that answers the form.
//
// The invitee opens the link, /invite#kg_invite_...: the token is in the
// fragment, which a browser never sends to a server, so it reaches no
// access log, proxy or Referer header. console.js moves it from the
// fragment into the acceptance form (and takes it out of the address bar
// and history); the form posts it in the body, over the same origin, to
// /invite/accept. The page's HTML never holds it. Without script the
// person pastes the code from the link into the form's field.

// teamData is what the team page shows.
type teamData struct {
	Team        adminapi.Team
	Members     []adminapi.TeamMember
	Invitations []adminapi.Invitation
	// ShowInvitations and CanInvite say what the user may see and do in
	// this team; the API decides each call anyway.
	ShowInvitations, CanInvite bool
	// Roles are the roles an invitation may give here.
	Roles []string
	// Created is a new invitation, its link shown this once.
	Created *adminapi.CreatedInvitation
}

// inTeam reports whether the user holds perm in team: everywhere, or
// through a membership of it.
func (m me) inTeam(perm, team string) bool {
	for _, p := range m.Permissions {
		if p == perm || p == perm+"@"+team {
			return true
		}
	}
	return false
}

// teamPage serves /teams/{name}.
func (c *Console) teamPage(r *http.Request, v *view) error {
	d, err := c.loadTeam(r, v, r.PathValue("name"))
	if err != nil {
		return err
	}
	v.Title = "Team " + d.Team.Name
	v.Data = d
	return nil
}

func (c *Console) loadTeam(r *http.Request, v *view, name string) (teamData, error) {
	var d teamData
	if err := c.api.get(r, "/teams/"+seg(name), &d.Team); err != nil {
		return d, err
	}
	var ms adminapi.TeamMemberList
	if err := c.api.get(r, "/teams/"+seg(name)+"/members", &ms); err != nil {
		return d, err
	}
	d.Members = ms.Members
	d.ShowInvitations = v.Me.inTeam("invitations.read", d.Team.Name)
	d.CanInvite = v.Me.inTeam("invitations.manage", d.Team.Name)
	if d.ShowInvitations {
		var is adminapi.InvitationList
		if err := c.api.get(r, "/teams/"+seg(name)+"/invitations", &is); err != nil {
			return d, err
		}
		d.Invitations = is.Invitations
	}
	if d.CanInvite {
		var rl adminapi.RoleList
		if err := c.api.get(r, "/roles", &rl); err == nil {
			for _, role := range rl.Roles {
				if role.Team || role.Custom {
					d.Roles = append(d.Roles, role.Name)
				}
			}
		}
		if len(d.Roles) == 0 {
			// Who may not read the role table is offered the built-in team roles.
			d.Roles = []string{"team-admin", "developer", "viewer"}
		}
	}
	return d, nil
}

// invite creates an invitation from the team page's form and shows its
// link this once, on the page that answers the form (never stored by the
// browser: Cache-Control no-store; in no URL).
func (c *Console) invite(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r, "Invite")
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, v, &apiError{Status: http.StatusBadRequest, Message: "The form could not be read."})
		return
	}
	name := r.PathValue("name")
	req := adminapi.CreateInvitationRequest{Email: strings.TrimSpace(r.PostForm.Get("email")), Role: r.PostForm.Get("role"), TTL: strings.TrimSpace(r.PostForm.Get("ttl"))}
	var created adminapi.CreatedInvitation
	if _, err := c.api.do(r, http.MethodPost, "/teams/"+seg(name)+"/invitations", req, &created); err != nil {
		c.fail(w, r, v, err)
		return
	}
	d, err := c.loadTeam(r, v, name)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	d.Created = &created
	v.Title, v.Data = "Team "+d.Team.Name, d
	c.render(w, r, http.StatusCreated, "team", v)
}

// revokeInvitation revokes an invitation from the team page.
func (c *Console) revokeInvitation(r *http.Request, v *view) (string, error) {
	var inv adminapi.Invitation
	if _, err := c.api.do(r, http.MethodPost, "/invitations/"+seg(r.PathValue("id"))+"/revoke", nil, &inv); err != nil {
		return "", err
	}
	return "/teams/" + seg(inv.Team) + "?done=invitation-revoked", nil
}

// inviteData is what the acceptance page shows.
type inviteData struct {
	SSO bool // single sign-on is configured: offer it
	// SignedIn is the user this browser is signed in as, "" for none: a
	// user who exists already joins as itself.
	SignedIn string
	// Continue is the provider's sign-in page, once a single sign-on that
	// accepts the invitation has started.
	Continue string
}

// invitePage serves /invite, the acceptance page. It needs no session:
// the invitation is the credential.
func (c *Console) invitePage(w http.ResponseWriter, r *http.Request) {
	c.renderInvite(w, r, http.StatusOK, "")
}

func (c *Console) renderInvite(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := &view{Title: "Accept an invitation", Path: "/invite", Version: c.opts.Version, Error: msg}
	var m signInMethods
	if err := c.api.get(r, "/auth/methods", &m); err != nil {
		c.logErr(r, "read the sign-in methods", err)
	}
	d := inviteData{SSO: m.OIDC != nil}
	if err := c.api.get(r, "/whoami", &v.Me.WhoAmI); err == nil && v.Me.Kind == "user" {
		d.SignedIn = v.Me.Name
	} else {
		v.Me = me{}
	}
	v.Data = d
	c.render(w, r, status, "invite", v)
}

// joinInvite accepts an invitation as the signed-in user it is addressed
// to, and opens the team's page.
func (c *Console) joinInvite(r *http.Request, v *view) (string, error) {
	var m adminapi.TeamMember
	if _, err := c.api.do(r, http.MethodPost, "/me/invitations/accept", adminapi.InvitationToken{Token: strings.TrimSpace(r.PostForm.Get("token"))}, &m); err != nil {
		return "", err
	}
	return "/teams/" + seg(m.Team) + "?done=joined", nil
}

// acceptInvite accepts an invitation with the password the form sets; the
// new member is signed in, and sent to enrol a second factor when the role
// needs one.
func (c *Console) acceptInvite(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.renderInvite(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	f := r.PostForm
	if f.Get("password") != f.Get("password2") {
		c.renderInvite(w, r, http.StatusBadRequest, "The two passwords differ. Open the invitation link again and type the same password twice.")
		return
	}
	yes := true
	var out adminapi.LoginResponse
	rec, err := c.api.do(r, http.MethodPost, "/auth/invitations/accept",
		adminapi.AcceptInvitationRequest{Token: strings.TrimSpace(f.Get("token")), Password: f.Get("password"), Cookie: &yes}, &out)
	if err != nil {
		status := statusOf(err)
		if status == 0 {
			status = http.StatusBadGateway
		}
		c.renderInvite(w, r, status, "The invitation could not be accepted: "+messageOf(err))
		return
	}
	copyCookies(w, rec)
	next := "/"
	if out.Session.MFAEnrolmentRequired {
		next = "/enrol"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// acceptInviteSSO starts the single sign-on that accepts an invitation:
// the API keeps the flow and answers with the provider's address and the
// cookie that binds the flow to this browser, which are handed on.
func (c *Console) acceptInviteSSO(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.renderInvite(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	rec, err := c.api.do(r, http.MethodPost, "/auth/invitations/sso", adminapi.InvitationToken{Token: strings.TrimSpace(r.PostForm.Get("token"))}, nil)
	if err == nil && rec.header.Get("Location") == "" {
		err = &apiError{Status: http.StatusBadGateway, Message: "single sign-on did not start"}
	}
	if err != nil {
		status := statusOf(err)
		if status == 0 {
			status = http.StatusBadGateway
		}
		c.renderInvite(w, r, status, "The invitation could not be accepted: "+messageOf(err))
		return
	}
	// The provider is another origin, which the console's policy lets no
	// form submission reach (form-action 'self'), redirects included: the
	// page links there instead, and console.js follows the link.
	copyCookies(w, rec)
	v := &view{Title: "Accept an invitation", Path: "/invite", Version: c.opts.Version, Data: inviteData{Continue: rec.header.Get("Location")}}
	c.render(w, r, http.StatusOK, "invite", v)
}
