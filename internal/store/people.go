package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// User kinds.
const (
	UserPerson  = "user"    // a person
	UserService = "service" // a service account, for automation
)

// User is a person or a service account of the admin plane. Users are
// disabled, never deleted.
type User struct {
	ID         string     // "usr_" + random
	Name       string     // unique
	Kind       string     // UserPerson or UserService
	Role       string     // a role name from the role table
	CreatedAt  time.Time  // UTC
	CreatedBy  string     // who added it: a user id or a credential id
	DisabledAt *time.Time // set while disabled: none of its credentials work
}

// Team owns keys; its shared limits are those of its key group.
type Team struct {
	Name      string
	Group     string    // the key group every key of the team is in
	Policy    []byte    // JSON (adminapi.TeamPolicy); nil for none
	CreatedAt time.Time // UTC
}

// TeamMember is one user's role in one team.
type TeamMember struct {
	Team     string
	UserID   string
	Role     string
	AddedAt  time.Time // UTC
	UserName string    // read-only: the user's name
	UserKind string    // read-only: the user's kind
}

// peopleQueries are the statements of users, teams, members and approvals.
type peopleQueries struct {
	createUser, getUser, getUserByName, listUsers, setUserRole, setUserDisabled, countPeople string
	createTeam, getTeam, listTeams, setTeamPolicy, adoptGroupKeys, listTeamKeys              string
	putMember, getMember, deleteMember, listMembers, listMemberships, listAllMembers         string
	getAdminToken, touchAdminToken, revokeUserTokens                                         string
	createApproval, getApproval, listApprovals, decideApproval, useApproval                  string
}

const (
	userCols     = `id, name, kind, role, created_at, created_by, disabled_at`
	teamCols     = `name, group_name, policy, created_at`
	memberCols   = `m.team, m.user_id, m.role, m.added_at, u.name, u.kind`
	approvalCols = `id, permission, method, path, request_hash, requester, requester_name, credential, status,
		created_at, expires_at, decided_by, decided_name, decided_at, used_at`
)

func newPeopleQueries(d Dialect) peopleQueries {
	r := func(q string) string { return rebind(d, q) }
	return peopleQueries{
		createUser:      r(`INSERT INTO users (` + userCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		getUser:         r(`SELECT ` + userCols + ` FROM users WHERE id = ?`),
		getUserByName:   r(`SELECT ` + userCols + ` FROM users WHERE name = ?`),
		listUsers:       r(`SELECT ` + userCols + ` FROM users ORDER BY name`),
		setUserRole:     r(`UPDATE users SET role = ? WHERE id = ? RETURNING ` + userCols),
		setUserDisabled: r(`UPDATE users SET disabled_at = ? WHERE id = ? RETURNING ` + userCols),
		countPeople:     r(`SELECT COUNT(*) FROM users WHERE kind = 'user' AND disabled_at IS NULL`),

		createTeam:    r(`INSERT INTO teams (` + teamCols + `) VALUES (?, ?, ?, ?)`),
		getTeam:       r(`SELECT ` + teamCols + ` FROM teams WHERE name = ?`),
		listTeams:     r(`SELECT ` + teamCols + ` FROM teams ORDER BY name`),
		setTeamPolicy: r(`UPDATE teams SET policy = ? WHERE name = ?`),
		// Keys already in an adopted group join the team, unless another
		// team claimed them.
		adoptGroupKeys: r(`UPDATE api_keys SET team = ? WHERE group_name = ? AND team IS NULL`),
		listTeamKeys:   r(`SELECT ` + keyCols + ` FROM api_keys WHERE team = ? ORDER BY created_at, id`),

		putMember: r(`INSERT INTO team_members (team, user_id, role, added_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (team, user_id) DO UPDATE SET role = excluded.role`),
		getMember:       r(`SELECT ` + memberCols + ` FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team = ? AND m.user_id = ?`),
		deleteMember:    r(`DELETE FROM team_members WHERE team = ? AND user_id = ?`),
		listMembers:     r(`SELECT ` + memberCols + ` FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team = ? ORDER BY u.name`),
		listMemberships: r(`SELECT ` + memberCols + ` FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.user_id = ? ORDER BY m.team`),
		listAllMembers:  r(`SELECT ` + memberCols + ` FROM team_members m JOIN users u ON u.id = m.user_id ORDER BY m.team, u.name`),

		getAdminToken: r(`SELECT ` + adminCols + ` FROM admin_tokens WHERE id = ?`),
		// last_used_at only moves forward, like a key's.
		touchAdminToken:  r(`UPDATE admin_tokens SET last_used_at = ?, last_used_from = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`),
		revokeUserTokens: r(`UPDATE admin_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`),

		createApproval: r(`INSERT INTO approvals (` + approvalCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		getApproval:    r(`SELECT ` + approvalCols + ` FROM approvals WHERE id = ?`),
		listApprovals:  r(`SELECT ` + approvalCols + ` FROM approvals WHERE created_at >= ? ORDER BY created_at DESC, id LIMIT 500`),
		// Only a pending, unexpired request is decided, once.
		decideApproval: r(`UPDATE approvals SET status = ?, decided_by = ?, decided_name = ?, decided_at = ?
			WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING ` + approvalCols),
		// An approved request is used once, by its requester, before it expires.
		useApproval: r(`UPDATE approvals SET used_at = ? WHERE id = ? AND status = 'approved' AND used_at IS NULL
			AND requester = ? AND expires_at > ? RETURNING ` + approvalCols),
	}
}

// CreateUser stores a new user or service account, or returns ErrConflict
// for a taken id or name.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	_, err := s.w.ExecContext(ctx, s.p.createUser, u.ID, u.Name, u.Kind, u.Role, s.timeArg(u.CreatedAt), u.CreatedBy, s.nullTimeArg(u.DisabledAt))
	if err != nil {
		return fmt.Errorf("store: create user %q: %w", u.Name, mapErr(err))
	}
	return nil
}

// GetUser returns the user with the given id, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.p.getUser, id))
	if err != nil {
		return User{}, fmt.Errorf("store: get user %q: %w", id, mapErr(err))
	}
	return u, nil
}

// GetUserByName returns the user with the given name, or ErrNotFound.
func (s *Store) GetUserByName(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, s.p.getUserByName, name))
	if err != nil {
		return User{}, fmt.Errorf("store: get user named %q: %w", name, mapErr(err))
	}
	return u, nil
}

// ListUsers returns every user and service account, disabled ones
// included, by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, s.p.listUsers)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	return collect(rows, scanUser, "list users")
}

// SetUserRole changes a user's role and returns the user as stored, or
// ErrNotFound.
func (s *Store) SetUserRole(ctx context.Context, id, role string) (User, error) {
	u, err := scanUser(s.w.QueryRowContext(ctx, s.p.setUserRole, role, id))
	if err != nil {
		return User{}, fmt.Errorf("store: set the role of user %q: %w", id, mapErr(err))
	}
	return u, nil
}

// SetUserDisabled disables a user at the given time (nil enables it) and
// returns the user as stored, or ErrNotFound.
func (s *Store) SetUserDisabled(ctx context.Context, id string, at *time.Time) (User, error) {
	u, err := scanUser(s.w.QueryRowContext(ctx, s.p.setUserDisabled, s.nullTimeArg(at), id))
	if err != nil {
		return User{}, fmt.Errorf("store: disable user %q: %w", id, mapErr(err))
	}
	return u, nil
}

// CountPeople returns how many enabled users (people, not service
// accounts) exist.
func (s *Store) CountPeople(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, s.p.countPeople).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count users: %w", err)
	}
	return n, nil
}

func scanUser(row rowScanner) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Name, &u.Kind, &u.Role, timeCol{&u.CreatedAt}, &u.CreatedBy, nullTimeCol{&u.DisabledAt})
	return u, err
}

// CreateTeam stores a new team in one transaction. With group non-nil, the
// team's key group is created with it (ErrConflict if the name is taken);
// with group nil, the team adopts its existing key group t.Group
// (ErrNoSuchGroup if there is none) and every key in that group that
// belongs to no team joins the team. ErrConflict also answers a taken team
// name, or a group another team already has.
func (s *Store) CreateTeam(ctx context.Context, t Team, group *Group) error {
	return s.InTx(ctx, func(tx *Store) error {
		if group != nil {
			if err := tx.CreateGroup(ctx, *group); err != nil {
				return fmt.Errorf("store: create team %q: %w", t.Name, err)
			}
		} else if _, err := tx.GetGroup(ctx, t.Group); err != nil {
			if errors.Is(err, ErrNotFound) {
				err = ErrNoSuchGroup
			}
			return fmt.Errorf("store: create team %q from group %q: %w", t.Name, t.Group, err)
		}
		if _, err := tx.w.ExecContext(ctx, tx.p.createTeam, t.Name, t.Group, limitsArg(t.Policy), tx.timeArg(t.CreatedAt)); err != nil {
			return fmt.Errorf("store: create team %q: %w", t.Name, mapErr(err))
		}
		if group == nil {
			if _, err := tx.w.ExecContext(ctx, tx.p.adoptGroupKeys, t.Name, t.Group); err != nil {
				return fmt.Errorf("store: create team %q: move the group's keys into it: %w", t.Name, mapErr(err))
			}
		}
		return nil
	})
}

// GetTeam returns the named team, or ErrNotFound.
func (s *Store) GetTeam(ctx context.Context, name string) (Team, error) {
	t, err := scanTeam(s.r.QueryRowContext(ctx, s.p.getTeam, name))
	if err != nil {
		return Team{}, fmt.Errorf("store: get team %q: %w", name, mapErr(err))
	}
	return t, nil
}

// ListTeams returns every team by name.
func (s *Store) ListTeams(ctx context.Context) ([]Team, error) {
	rows, err := s.r.QueryContext(ctx, s.p.listTeams)
	if err != nil {
		return nil, fmt.Errorf("store: list teams: %w", err)
	}
	return collect(rows, scanTeam, "list teams")
}

// SetTeamPolicy replaces a team's policy (JSON; nil for none), or returns
// ErrNotFound.
func (s *Store) SetTeamPolicy(ctx context.Context, name string, policy []byte) error {
	res, err := s.w.ExecContext(ctx, s.p.setTeamPolicy, limitsArg(policy), name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: set the policy of team %q: %w", name, mapErr(err))
	}
	return nil
}

// ListTeamKeys returns every key of a team, revoked ones included, oldest first.
func (s *Store) ListTeamKeys(ctx context.Context, team string) ([]Key, error) {
	rows, err := s.r.QueryContext(ctx, s.p.listTeamKeys, team)
	if err != nil {
		return nil, fmt.Errorf("store: list the keys of team %q: %w", team, err)
	}
	return collect(rows, scanKey, "list team keys")
}

func scanTeam(row rowScanner) (Team, error) {
	var t Team
	err := row.Scan(&t.Name, &t.Group, limitsCol{&t.Policy}, timeCol{&t.CreatedAt})
	return t, err
}

// PutTeamMember adds a user to a team with a role, or changes the role of
// a member; it returns the member's previous role ("" when new). It
// returns ErrNotFound for an unknown team or user.
func (s *Store) PutTeamMember(ctx context.Context, m TeamMember) (string, error) {
	var prev string
	err := s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.GetTeam(ctx, m.Team); err != nil {
			return err
		}
		if _, err := tx.GetUser(ctx, m.UserID); err != nil {
			return err
		}
		old, err := scanMember(tx.r.QueryRowContext(ctx, tx.p.getMember, m.Team, m.UserID))
		switch {
		case err == nil:
			prev = old.Role
		case !errors.Is(mapErr(err), ErrNotFound):
			return err
		}
		_, err = tx.w.ExecContext(ctx, tx.p.putMember, m.Team, m.UserID, m.Role, tx.timeArg(m.AddedAt))
		return mapErr(err)
	})
	if err != nil {
		return "", fmt.Errorf("store: put user %q in team %q: %w", m.UserID, m.Team, err)
	}
	return prev, nil
}

// RemoveTeamMember takes a user out of a team, or returns ErrNotFound if
// the user is not a member.
func (s *Store) RemoveTeamMember(ctx context.Context, team, userID string) error {
	res, err := s.w.ExecContext(ctx, s.p.deleteMember, team, userID)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: remove user %q from team %q: %w", userID, team, mapErr(err))
	}
	return nil
}

// ListTeamMembers returns a team's members by user name.
func (s *Store) ListTeamMembers(ctx context.Context, team string) ([]TeamMember, error) {
	rows, err := s.r.QueryContext(ctx, s.p.listMembers, team)
	if err != nil {
		return nil, fmt.Errorf("store: list the members of team %q: %w", team, err)
	}
	return collect(rows, scanMember, "list team members")
}

// ListMemberships returns the teams a user is a member of, by team name.
func (s *Store) ListMemberships(ctx context.Context, userID string) ([]TeamMember, error) {
	rows, err := s.r.QueryContext(ctx, s.p.listMemberships, userID)
	if err != nil {
		return nil, fmt.Errorf("store: list the teams of user %q: %w", userID, err)
	}
	return collect(rows, scanMember, "list memberships")
}

func scanMember(row rowScanner) (TeamMember, error) {
	var m TeamMember
	err := row.Scan(&m.Team, &m.UserID, &m.Role, timeCol{&m.AddedAt}, &m.UserName, &m.UserKind)
	return m, err
}
