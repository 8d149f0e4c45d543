package admin

import (
	"context"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// PeopleStore keeps users, service accounts, teams and their members.
type PeopleStore interface {
	CreateUser(ctx context.Context, u store.User) error
	GetUser(ctx context.Context, id string) (store.User, error)
	GetUserByName(ctx context.Context, name string) (store.User, error)
	ListUsers(ctx context.Context) ([]store.User, error)
	SetUserRole(ctx context.Context, id, role string) (store.User, error)
	SetUserDisabled(ctx context.Context, id string, at *time.Time) (store.User, error)

	CreateTeam(ctx context.Context, t store.Team, group *store.Group) error
	GetTeam(ctx context.Context, name string) (store.Team, error)
	ListTeams(ctx context.Context) ([]store.Team, error)
	SetTeamPolicy(ctx context.Context, name string, policy []byte) error
	ListTeamKeys(ctx context.Context, team string) ([]store.Key, error)

	PutTeamMember(ctx context.Context, m store.TeamMember) (string, error)
	RemoveTeamMember(ctx context.Context, team, userID string) error
	ListTeamMembers(ctx context.Context, team string) ([]store.TeamMember, error)
	ListMemberships(ctx context.Context, userID string) ([]store.TeamMember, error)
}

// CredentialStore keeps admin credentials.
type CredentialStore interface {
	CreateAdminToken(ctx context.Context, t store.AdminToken) error
	GetAdminTokenByHash(ctx context.Context, hash []byte) (store.AdminToken, error)
	GetAdminToken(ctx context.Context, id string) (store.AdminToken, error)
	ListAdminTokens(ctx context.Context) ([]store.AdminToken, error)
	RevokeAdminToken(ctx context.Context, id string, at time.Time) error
	RevokeUserAdminTokens(ctx context.Context, userID string, at time.Time) (int, error)
	TouchAdminToken(ctx context.Context, id string, at time.Time, from string) error
}

// ApprovalStore keeps requests waiting for a second person.
type ApprovalStore interface {
	CreateApproval(ctx context.Context, a store.Approval) error
	GetApproval(ctx context.Context, id string) (store.Approval, error)
	ListApprovals(ctx context.Context, since time.Time) ([]store.Approval, error)
	DecideApproval(ctx context.Context, id, status, by, byName string, at time.Time) (store.Approval, error)
	UseApproval(ctx context.Context, id, requester string, at time.Time) (store.Approval, error)
}
