package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
)

// ErrApprovalClosed is returned when an approval cannot be decided or used
// as asked: it was decided already, denied, used, has expired, or belongs
// to someone else.
var ErrApprovalClosed = errors.New("the approval is not open for this")

// Approval is a request that needs a second person's approval before it
// runs. Only a keyed hash of the request is kept, never its body.
type Approval struct {
	ID            string // "apr_" + random
	Permission    string // the permission the request needs, such as secrets.read_value
	Method        string
	Path          string // as logged: secret names replaced by their references
	RequestHash   []byte // keyed hash of method, path and body: the request approved
	Requester     string // the requester's principal id (a user id, or a credential id)
	RequesterName string
	Credential    string // the credential the request came with
	Status        string // ApprovalPending, ApprovalApproved or ApprovalDenied
	CreatedAt     time.Time
	ExpiresAt     time.Time // a pending or approved request lapses after this
	DecidedBy     string    // principal id of whoever approved or denied it
	DecidedName   string
	DecidedAt     *time.Time
	UsedAt        *time.Time // set when the approved request ran
}

// CreateApproval stores a new pending approval, or returns ErrConflict.
func (s *Store) CreateApproval(ctx context.Context, a Approval) error {
	_, err := s.w.ExecContext(ctx, s.p.createApproval, a.ID, a.Permission, a.Method, a.Path, bytesArg(a.RequestHash),
		a.Requester, a.RequesterName, a.Credential, a.Status, s.timeArg(a.CreatedAt), s.timeArg(a.ExpiresAt),
		a.DecidedBy, a.DecidedName, s.nullTimeArg(a.DecidedAt), s.nullTimeArg(a.UsedAt))
	if err != nil {
		return fmt.Errorf("store: create approval %q: %w", a.ID, mapErr(err))
	}
	return nil
}

// GetApproval returns the approval with the given id, or ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) (Approval, error) {
	a, err := scanApproval(s.r.QueryRowContext(ctx, s.p.getApproval, id))
	if err != nil {
		return Approval{}, fmt.Errorf("store: get approval %q: %w", id, mapErr(err))
	}
	return a, nil
}

// ListApprovals returns up to 500 approvals created at or after since,
// newest first.
func (s *Store) ListApprovals(ctx context.Context, since time.Time) ([]Approval, error) {
	rows, err := s.r.QueryContext(ctx, s.p.listApprovals, s.timeArg(since))
	if err != nil {
		return nil, fmt.Errorf("store: list approvals: %w", err)
	}
	return collect(rows, scanApproval, "list approvals")
}

// DecideApproval approves or denies (status) a pending approval that has
// not expired at at, once: of racing deciders on any node, one wins and
// the others get ErrApprovalClosed. It returns ErrNotFound for an unknown id.
func (s *Store) DecideApproval(ctx context.Context, id, status, by, byName string, at time.Time) (Approval, error) {
	t := s.timeArg(at)
	a, err := scanApproval(s.w.QueryRowContext(ctx, s.p.decideApproval, status, by, byName, t, id, t))
	if err != nil {
		return Approval{}, fmt.Errorf("store: decide approval %q: %w", id, s.closedOrMissing(ctx, id, err))
	}
	return a, nil
}

// UseApproval marks an approved approval used by its requester at at,
// once: a second use, anyone else's use, or one after it expired gets
// ErrApprovalClosed. It returns ErrNotFound for an unknown id.
func (s *Store) UseApproval(ctx context.Context, id, requester string, at time.Time) (Approval, error) {
	t := s.timeArg(at)
	a, err := scanApproval(s.w.QueryRowContext(ctx, s.p.useApproval, t, id, requester, t))
	if err != nil {
		return Approval{}, fmt.Errorf("store: use approval %q: %w", id, s.closedOrMissing(ctx, id, err))
	}
	return a, nil
}

// closedOrMissing tells a conditional update that matched no row apart:
// the approval does not exist, or is not open for the change.
func (s *Store) closedOrMissing(ctx context.Context, id string, err error) error {
	err = mapErr(err)
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if _, gerr := s.GetApproval(ctx, id); gerr == nil {
		return ErrApprovalClosed
	}
	return ErrNotFound
}

func scanApproval(row rowScanner) (Approval, error) {
	var a Approval
	err := row.Scan(&a.ID, &a.Permission, &a.Method, &a.Path, &a.RequestHash, &a.Requester, &a.RequesterName, &a.Credential,
		&a.Status, timeCol{&a.CreatedAt}, timeCol{&a.ExpiresAt}, &a.DecidedBy, &a.DecidedName, nullTimeCol{&a.DecidedAt}, nullTimeCol{&a.UsedAt})
	return a, err
}
