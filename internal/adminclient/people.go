package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/keygate/keygate/internal/adminapi"
)

// ListUsers returns every user (people, not service accounts).
func (c *Client) ListUsers(ctx context.Context) ([]adminapi.User, error) {
	var out adminapi.UserList
	err := c.do(ctx, http.MethodGet, "/users", nil, &out)
	return out.Users, err
}

// CreateUser adds a user. The answer carries its first admin credential,
// shown only this once, unless req.NoToken is set.
func (c *Client) CreateUser(ctx context.Context, req adminapi.CreateUserRequest) (adminapi.CreatedUser, error) {
	var out adminapi.CreatedUser
	err := c.do(ctx, http.MethodPost, "/users", req, &out)
	return out, err
}

// GetUser returns the named user or service account with its teams and
// admin credentials.
func (c *Client) GetUser(ctx context.Context, name string) (adminapi.User, error) {
	var out adminapi.User
	p, err := segment("/users/", "user name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// SetUserRole changes a user's role.
func (c *Client) SetUserRole(ctx context.Context, name, role string) (adminapi.User, error) {
	var out adminapi.User
	p, err := segment("/users/", "user name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPut, p+"/role", adminapi.SetRoleRequest{Role: role}, &out)
	return out, err
}

// DisableUser disables a user: every admin credential of theirs stops.
func (c *Client) DisableUser(ctx context.Context, name string) (adminapi.User, error) {
	var out adminapi.User
	p, err := segment("/users/", "user name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/disable", nil, &out)
	return out, err
}

// EnableUser enables a disabled user and, unless req.NoToken is set,
// issues a new first credential, shown only this once.
func (c *Client) EnableUser(ctx context.Context, name string, req adminapi.IssueTokenRequest) (adminapi.CreatedUser, error) {
	var out adminapi.CreatedUser
	p, err := segment("/users/", "user name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/enable", req, &out)
	return out, err
}

// ListServiceAccounts returns every service account.
func (c *Client) ListServiceAccounts(ctx context.Context) ([]adminapi.User, error) {
	var out adminapi.UserList
	err := c.do(ctx, http.MethodGet, "/service-accounts", nil, &out)
	return out.Users, err
}

// CreateServiceAccount adds a service account and returns its first
// token, shown only this once.
func (c *Client) CreateServiceAccount(ctx context.Context, req adminapi.CreateUserRequest) (adminapi.CreatedUser, error) {
	var out adminapi.CreatedUser
	err := c.do(ctx, http.MethodPost, "/service-accounts", req, &out)
	return out, err
}

// CreateServiceToken issues a service account another token, shown only
// this once.
func (c *Client) CreateServiceToken(ctx context.Context, name string, req adminapi.CreateTokenRequest) (adminapi.CreatedToken, error) {
	var out adminapi.CreatedToken
	p, err := segment("/service-accounts/", "service account name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/tokens", req, &out)
	return out, err
}

// CreatePersonalToken issues the caller a personal access token, shown
// only this once; req.Role caps it below the caller's role.
func (c *Client) CreatePersonalToken(ctx context.Context, req adminapi.CreateTokenRequest) (adminapi.CreatedToken, error) {
	var out adminapi.CreatedToken
	err := c.do(ctx, http.MethodPost, "/me/tokens", req, &out)
	return out, err
}

// ListAdminTokens returns the admin credentials the caller may manage.
func (c *Client) ListAdminTokens(ctx context.Context) ([]adminapi.AdminToken, error) {
	var out adminapi.AdminTokenList
	err := c.do(ctx, http.MethodGet, "/admin-tokens", nil, &out)
	return out.Tokens, err
}

// RevokeAdminToken revokes one admin credential by id.
func (c *Client) RevokeAdminToken(ctx context.Context, id string) (adminapi.AdminToken, error) {
	var out adminapi.AdminToken
	p, err := segment("/admin-tokens/", "admin credential id", id)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/revoke", nil, &out)
	return out, err
}

// CreateTeam adds a team.
func (c *Client) CreateTeam(ctx context.Context, req adminapi.CreateTeamRequest) (adminapi.Team, error) {
	var out adminapi.Team
	err := c.do(ctx, http.MethodPost, "/teams", req, &out)
	return out, err
}

// ListTeams returns the teams the caller may see.
func (c *Client) ListTeams(ctx context.Context) ([]adminapi.Team, error) {
	var out adminapi.TeamList
	err := c.do(ctx, http.MethodGet, "/teams", nil, &out)
	return out.Teams, err
}

// GetTeam returns the named team.
func (c *Client) GetTeam(ctx context.Context, name string) (adminapi.Team, error) {
	var out adminapi.Team
	p, err := segment("/teams/", "team name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// UpdateTeam changes a team's policy or shared limits.
func (c *Client) UpdateTeam(ctx context.Context, name string, req adminapi.UpdateTeamRequest) (adminapi.Team, error) {
	var out adminapi.Team
	p, err := segment("/teams/", "team name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPatch, p, req, &out)
	return out, err
}

// TeamUsage returns what every key of the team used over the last days days.
func (c *Client) TeamUsage(ctx context.Context, name string, days int) (adminapi.TeamUsage, error) {
	var out adminapi.TeamUsage
	p, err := segment("/teams/", "team name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p+"/usage?"+url.Values{"days": {strconv.Itoa(days)}}.Encode(), nil, &out)
	return out, err
}

// ListTeamMembers returns a team's members.
func (c *Client) ListTeamMembers(ctx context.Context, team string) ([]adminapi.TeamMember, error) {
	var out adminapi.TeamMemberList
	p, err := segment("/teams/", "team name", team)
	if err != nil {
		return nil, err
	}
	err = c.do(ctx, http.MethodGet, p+"/members", nil, &out)
	return out.Members, err
}

// PutTeamMember adds a user to a team with a role, or changes its role.
func (c *Client) PutTeamMember(ctx context.Context, team, user, role string) (adminapi.TeamMember, error) {
	var out adminapi.TeamMember
	p, err := segment("/teams/", "team name", team)
	if err != nil {
		return out, err
	}
	m, err := segment("/members/", "user name", user)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPut, p+m, adminapi.PutMemberRequest{Role: role}, &out)
	return out, err
}

// RemoveTeamMember takes a user out of a team.
func (c *Client) RemoveTeamMember(ctx context.Context, team, user string) error {
	p, err := segment("/teams/", "team name", team)
	if err != nil {
		return err
	}
	m, err := segment("/members/", "user name", user)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p+m, nil, nil)
}

// ListRoles returns the role table.
func (c *Client) ListRoles(ctx context.Context) (adminapi.RoleList, error) {
	var out adminapi.RoleList
	err := c.do(ctx, http.MethodGet, "/roles", nil, &out)
	return out, err
}

// ListApprovals returns the last week's approval requests the caller may see.
func (c *Client) ListApprovals(ctx context.Context) ([]adminapi.Approval, error) {
	var out adminapi.ApprovalList
	err := c.do(ctx, http.MethodGet, "/approvals", nil, &out)
	return out.Approvals, err
}

// DecideApproval approves (or, with approve false, denies) another
// person's request.
func (c *Client) DecideApproval(ctx context.Context, id string, approve bool) (adminapi.Approval, error) {
	var out adminapi.Approval
	p, err := segment("/approvals/", "approval id", id)
	if err != nil {
		return out, err
	}
	verb := "/deny"
	if approve {
		verb = "/approve"
	}
	err = c.do(ctx, http.MethodPost, p+verb, nil, &out)
	return out, err
}
