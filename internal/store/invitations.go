package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrInvitationClosed is returned for an invitation that was accepted or
// revoked already, or has expired: it can no longer be used or revoked.
var ErrInvitationClosed = errors.New("the invitation was used, revoked or has expired")

// Invitation invites an e-mail address to join a team with a role. Only a
// keyed hash of its token is kept; the token itself is shown once, to whoever
// made the invitation.
type Invitation struct {
	ID            string // "inv_" + random: safe to show and log
	Hash          []byte // HMAC-SHA256(pepper, token); unique
	Email         string // whom it is for; the user it makes is named so
	Team          string
	Role          string // the role in Team it gives
	CreatedBy     string // the principal that made it (a user or credential id)
	CreatedByName string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	RevokedAt     *time.Time
	RevokedBy     string
	AcceptedAt    *time.Time
	AcceptedBy    string // the user id it made or joined
}

// Pending reports whether the invitation may still be accepted at now.
func (i Invitation) Pending(now time.Time) bool {
	return i.AcceptedAt == nil && i.RevokedAt == nil && now.Before(i.ExpiresAt)
}

// InvitationFilter chooses invitations to list.
type InvitationFilter struct {
	Team string // "" for every team
	// PendingAt, when set, keeps only invitations neither accepted nor
	// revoked that are still valid at that time.
	PendingAt time.Time
}

// Acceptance is what accepting an invitation does, in one transaction.
type Acceptance struct {
	InvitationID string
	At           time.Time
	// NewUser, when set, is created (ErrConflict for a taken name, and
	// nothing changes); otherwise UserID names an existing user.
	NewUser *User
	UserID  string
	// PasswordHash, when set, becomes the user's password.
	PasswordHash string
}

const invitationCols = `id, hash, email, team, role, created_by, created_by_name, created_at, expires_at,
	revoked_at, revoked_by, accepted_at, accepted_by`

// CreateInvitation stores a new invitation, or returns ErrConflict for a
// taken id or hash.
func (s *Store) CreateInvitation(ctx context.Context, inv Invitation) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO invitations (`+invitationCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		inv.ID, inv.Hash, inv.Email, inv.Team, inv.Role, inv.CreatedBy, inv.CreatedByName, s.timeArg(inv.CreatedAt), s.timeArg(inv.ExpiresAt),
		s.nullTimeArg(inv.RevokedAt), inv.RevokedBy, s.nullTimeArg(inv.AcceptedAt), inv.AcceptedBy)
	if err != nil {
		return fmt.Errorf("store: create invitation: %w", mapErr(err))
	}
	return nil
}

// GetInvitation returns the invitation with the given id, or ErrNotFound.
func (s *Store) GetInvitation(ctx context.Context, id string) (Invitation, error) {
	inv, err := scanInvitation(s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT `+invitationCols+` FROM invitations WHERE id = ?`), id))
	if err != nil {
		return Invitation{}, fmt.Errorf("store: get invitation %q: %w", id, mapErr(err))
	}
	return inv, nil
}

// GetInvitationByHash returns the invitation whose token hashes to hash,
// or ErrNotFound.
func (s *Store) GetInvitationByHash(ctx context.Context, hash []byte) (Invitation, error) {
	inv, err := scanInvitation(s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT `+invitationCols+` FROM invitations WHERE hash = ?`), hash))
	if err != nil {
		return Invitation{}, fmt.Errorf("store: get invitation: %w", mapErr(err))
	}
	return inv, nil
}

// ListInvitations returns the invitations f chooses, newest first.
func (s *Store) ListInvitations(ctx context.Context, f InvitationFilter) ([]Invitation, error) {
	q := `SELECT ` + invitationCols + ` FROM invitations WHERE 1 = 1`
	var args []any
	if f.Team != "" {
		q += ` AND team = ?`
		args = append(args, f.Team)
	}
	if !f.PendingAt.IsZero() {
		q += ` AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`
		args = append(args, s.timeArg(f.PendingAt))
	}
	rows, err := s.r.QueryContext(ctx, rebind(s.dialect, q+` ORDER BY created_at DESC, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list invitations: %w", err)
	}
	return collect(rows, scanInvitation, "list invitations")
}

// RevokeInvitation revokes a pending invitation at at, by by, and returns
// it as stored. An unknown id is ErrNotFound; one accepted, revoked or
// expired already is ErrInvitationClosed.
func (s *Store) RevokeInvitation(ctx context.Context, id, by string, at time.Time) (Invitation, error) {
	inv, err := scanInvitation(s.w.QueryRowContext(ctx, rebind(s.dialect, `UPDATE invitations SET revoked_at = ?, revoked_by = ?
		WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ? RETURNING `+invitationCols),
		s.timeArg(at), by, id, s.timeArg(at)))
	if err != nil {
		return Invitation{}, fmt.Errorf("store: revoke invitation %q: %w", id, s.invitationClosedOrMissing(ctx, id, mapErr(err)))
	}
	return inv, nil
}

// AcceptInvitation uses a pending invitation once, in one transaction: it
// marks it accepted, creates the new user (if any), sets the password (if
// any) and makes the user a member of the invitation's team with its role.
// It returns the invitation as stored. An unknown invitation is
// ErrNotFound; one accepted, revoked or expired is ErrInvitationClosed;
// a new user's taken name is ErrConflict. On any error nothing changes, so
// of two acceptances racing for one invitation, one wins.
func (s *Store) AcceptInvitation(ctx context.Context, a Acceptance) (Invitation, error) {
	userID := a.UserID
	if a.NewUser != nil {
		userID = a.NewUser.ID
	}
	var inv Invitation
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		inv, err = scanInvitation(tx.w.QueryRowContext(ctx, rebind(tx.dialect, `UPDATE invitations SET accepted_at = ?, accepted_by = ?
			WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ? RETURNING `+invitationCols),
			tx.timeArg(a.At), userID, a.InvitationID, tx.timeArg(a.At)))
		if err != nil {
			return tx.invitationClosedOrMissing(ctx, a.InvitationID, mapErr(err))
		}
		if a.NewUser != nil {
			if err := tx.CreateUser(ctx, *a.NewUser); err != nil {
				return err
			}
		}
		if a.PasswordHash != "" {
			if err := tx.SetUserPassword(ctx, userID, a.PasswordHash, a.At); err != nil {
				return err
			}
		}
		_, err = tx.PutTeamMember(ctx, TeamMember{Team: inv.Team, UserID: userID, Role: inv.Role, AddedAt: a.At})
		return err
	})
	if err != nil {
		return Invitation{}, fmt.Errorf("store: accept invitation %q: %w", a.InvitationID, err)
	}
	return inv, nil
}

// invitationClosedOrMissing tells a conditional update that changed no row apart:
// ErrNotFound for an invitation that does not exist, ErrInvitationClosed
// for one that does.
func (s *Store) invitationClosedOrMissing(ctx context.Context, id string, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	var one int
	switch e := s.w.QueryRowContext(ctx, rebind(s.dialect, `SELECT 1 FROM invitations WHERE id = ?`), id).Scan(&one); {
	case e == nil:
		return ErrInvitationClosed
	case errors.Is(mapErr(e), ErrNotFound):
		return ErrNotFound
	default:
		return e
	}
}

func scanInvitation(row rowScanner) (Invitation, error) {
	var i Invitation
	err := row.Scan(&i.ID, &i.Hash, &i.Email, &i.Team, &i.Role, &i.CreatedBy, &i.CreatedByName, timeCol{&i.CreatedAt}, timeCol{&i.ExpiresAt},
		nullTimeCol{&i.RevokedAt}, &i.RevokedBy, nullTimeCol{&i.AcceptedAt}, &i.AcceptedBy)
	return i, err
}
