package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// One-time-password state shared by every node: the newest time step
// accepted per subject, so a code is used once across the fleet, and the
// counters that limit wrong codes per subject and per client address. Every
// change is one conditional statement, so nodes racing on one subject or
// address cannot both win.

// OTPScope names what a one-time-password counter counts.
type OTPScope string

const (
	// OTPSubject counts the attempts at one subject's codes (a key, a user).
	OTPSubject OTPScope = "subject"
	// OTPClient counts the attempts from one client address, across subjects.
	OTPClient OTPScope = "client"
)

// OTPCounter names one counter of attempts at one-time passwords.
type OTPCounter struct {
	Scope OTPScope
	Name  string
}

// OTPCount is a counter as an attempt charged to it left it.
type OTPCount struct {
	// Failures is how many attempts the current window holds, the one just charged included.
	Failures int
	// Since is when the current window began.
	Since time.Time
	// LockedUntil is the end of the counter's latest lockout, nil if it was never locked.
	LockedUntil *time.Time
}

// Locked reports whether the counter is locked out at now.
func (c OTPCount) Locked(now time.Time) bool { return c.LockedUntil != nil && c.LockedUntil.After(now) }

// OTPLockout returns the counter among cs locked out longest at now and the
// end of its lockout, or a zero time when none is locked. It only reads, so
// attempts during a lockout cost the database no write.
func (s *Store) OTPLockout(ctx context.Context, now time.Time, cs ...OTPCounter) (OTPCounter, time.Time, error) {
	if len(cs) == 0 {
		return OTPCounter{}, time.Time{}, nil
	}
	args := []any{s.timeArg(now)}
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(scope = ? AND name = ?)")
		args = append(args, string(c.Scope), c.Name)
	}
	q := rebind(s.dialect, `SELECT scope, name, locked_until FROM otp_failures WHERE locked_until > ? AND (`+b.String()+`)
		ORDER BY locked_until DESC LIMIT 1`)
	var c OTPCounter
	var scope string
	var until time.Time
	err := s.r.QueryRowContext(ctx, q, args...).Scan(&scope, &c.Name, timeCol{&until})
	if errors.Is(err, sql.ErrNoRows) {
		return OTPCounter{}, time.Time{}, nil
	}
	if err != nil {
		return OTPCounter{}, time.Time{}, fmt.Errorf("store: read one-time-password lockouts: %w", mapErr(err))
	}
	c.Scope = OTPScope(scope)
	return c, until, nil
}

// ChargeOTP counts one attempt on counter c at now, unless c is locked out
// at now, in which case it is returned unchanged. A window that began more
// than window before now starts again at now with this attempt. Concurrent
// charges are each counted.
func (s *Store) ChargeOTP(ctx context.Context, c OTPCounter, now time.Time, window time.Duration) (OTPCount, error) {
	q := rebind(s.dialect, `INSERT INTO otp_failures (scope, name, failures, since, locked_until) VALUES (?, ?, 1, ?, NULL)
		ON CONFLICT (scope, name) DO UPDATE SET
			failures = CASE WHEN otp_failures.locked_until > ? THEN otp_failures.failures
				WHEN otp_failures.since <= ? THEN 1 ELSE otp_failures.failures + 1 END,
			since = CASE WHEN otp_failures.locked_until > ? THEN otp_failures.since
				WHEN otp_failures.since <= ? THEN excluded.since ELSE otp_failures.since END
		RETURNING failures, since, locked_until`)
	at, cutoff := s.timeArg(now), s.timeArg(now.Add(-window))
	var n OTPCount
	err := s.w.QueryRowContext(ctx, q, string(c.Scope), c.Name, at, at, cutoff, at, cutoff).
		Scan(&n.Failures, timeCol{&n.Since}, nullTimeCol{&n.LockedUntil})
	if err != nil {
		return OTPCount{}, fmt.Errorf("store: count a one-time-password attempt (%s): %w", c.Scope, mapErr(err))
	}
	return n, nil
}

// RefundOTP takes back one attempt charged to c in the window that began at
// since: an attempt that turned out right, or that was never judged. It
// does nothing once that window has ended or while c is locked out.
func (s *Store) RefundOTP(ctx context.Context, c OTPCounter, since, now time.Time) error {
	q := rebind(s.dialect, `UPDATE otp_failures SET failures = failures - 1
		WHERE scope = ? AND name = ? AND since = ? AND failures > 0 AND (locked_until IS NULL OR locked_until <= ?)`)
	if _, err := s.w.ExecContext(ctx, q, string(c.Scope), c.Name, s.timeArg(since), s.timeArg(now)); err != nil {
		return fmt.Errorf("store: take back a one-time-password attempt (%s): %w", c.Scope, mapErr(err))
	}
	return nil
}

// ResetOTP forgets counter c's attempts, unless it is locked out at now.
func (s *Store) ResetOTP(ctx context.Context, c OTPCounter, now time.Time) error {
	q := rebind(s.dialect, `DELETE FROM otp_failures WHERE scope = ? AND name = ? AND (locked_until IS NULL OR locked_until <= ?)`)
	if _, err := s.w.ExecContext(ctx, q, string(c.Scope), c.Name, s.timeArg(now)); err != nil {
		return fmt.Errorf("store: reset one-time-password attempts (%s): %w", c.Scope, mapErr(err))
	}
	return nil
}

// LockOTP locks counter c out until until, unless it is already locked out
// at now, and returns the end of the lockout in force and whether this call
// started it: of concurrent calls, on any node, exactly one does. The
// counter's window starts again when the lockout ends.
func (s *Store) LockOTP(ctx context.Context, c OTPCounter, now, until time.Time) (time.Time, bool, error) {
	q := rebind(s.dialect, `INSERT INTO otp_failures (scope, name, failures, since, locked_until) VALUES (?, ?, 0, ?, ?)
		ON CONFLICT (scope, name) DO UPDATE SET failures = 0, since = excluded.since, locked_until = excluded.locked_until
		WHERE otp_failures.locked_until IS NULL OR otp_failures.locked_until <= ?`)
	end := s.timeArg(until)
	res, err := s.w.ExecContext(ctx, q, string(c.Scope), c.Name, end, end, s.timeArg(now))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: lock out one-time passwords (%s): %w", c.Scope, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return time.Time{}, false, fmt.Errorf("store: lock out one-time passwords (%s): %w", c.Scope, err)
	} else if n == 1 {
		return until.UTC().Truncate(time.Microsecond), true, nil
	}
	var got *time.Time
	err = s.w.QueryRowContext(ctx, rebind(s.dialect, `SELECT locked_until FROM otp_failures WHERE scope = ? AND name = ?`),
		string(c.Scope), c.Name).Scan(nullTimeCol{&got})
	if err == nil && got == nil {
		err = errors.New("the lockout vanished")
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: read a one-time-password lockout (%s): %w", c.Scope, mapErr(err))
	}
	return *got, false, nil
}

// UseOTPStep records step as the newest time step of a one-time password
// accepted for subject, if it is newer than every step accepted before,
// and reports whether it was. Of concurrent calls with one step, on any
// node, exactly one gets true; a step no newer than an accepted one is a
// replay and gets false.
func (s *Store) UseOTPStep(ctx context.Context, subject string, step int64, at time.Time) (bool, error) {
	q := rebind(s.dialect, `INSERT INTO otp_steps (subject, last_step, used_at) VALUES (?, ?, ?)
		ON CONFLICT (subject) DO UPDATE SET last_step = excluded.last_step, used_at = excluded.used_at
		WHERE otp_steps.last_step < excluded.last_step`)
	res, err := s.w.ExecContext(ctx, q, subject, step, s.timeArg(at))
	if err != nil {
		return false, fmt.Errorf("store: record a used one-time password: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: record a used one-time password: %w", err)
	}
	return n == 1, nil
}

// PruneOTP forgets the counters whose window ended more than window before
// now and that are not locked out, and returns how many.
func (s *Store) PruneOTP(ctx context.Context, now time.Time, window time.Duration) (int, error) {
	q := rebind(s.dialect, `DELETE FROM otp_failures WHERE since <= ? AND (locked_until IS NULL OR locked_until <= ?)`)
	res, err := s.w.ExecContext(ctx, q, s.timeArg(now.Add(-window)), s.timeArg(now))
	if err != nil {
		return 0, fmt.Errorf("store: prune one-time-password counters: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}
