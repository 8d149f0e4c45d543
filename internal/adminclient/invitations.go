package adminclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/keygate/keygate/internal/adminapi"
)

// CreateInvitation invites an e-mail address to a team with a role. The
// answer carries the invitation's token and link, shown only this once.
func (c *Client) CreateInvitation(ctx context.Context, team string, req adminapi.CreateInvitationRequest) (adminapi.CreatedInvitation, error) {
	var out adminapi.CreatedInvitation
	p, err := segment("/teams/", "team name", team)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/invitations", req, &out)
	return out, err
}

// ListInvitations returns the pending invitations of team ("" for every
// team the caller may see); with all, accepted, revoked and expired ones
// too.
func (c *Client) ListInvitations(ctx context.Context, team string, all bool) ([]adminapi.Invitation, error) {
	q := url.Values{}
	if team != "" {
		q.Set("team", team)
	}
	if all {
		q.Set("all", "true")
	}
	path := "/invitations"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out adminapi.InvitationList
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Invitations, err
}

// RevokeInvitation stops a pending invitation from working.
func (c *Client) RevokeInvitation(ctx context.Context, id string) (adminapi.Invitation, error) {
	var out adminapi.Invitation
	p, err := segment("/invitations/", "invitation id", id)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/revoke", nil, &out)
	return out, err
}
