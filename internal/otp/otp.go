// Package otp verifies time-based one-time passwords (RFC 6238) for a
// subject: a keygate key stepping up today, a person signing in later. It
// holds what a second factor needs when several keygate nodes share one
// database:
//
//   - a code is compared in constant time, within one time step either side
//     of now;
//   - a code's time step is accepted once per subject across every node, and
//     never after a newer one (the store records it with one conditional
//     update, so nodes racing on one code accept it at most once);
//   - every attempt is counted against the subject and against the client
//     address before its code is compared, in the shared store: after
//     Limits.MaxFailures wrong codes for a subject, or MaxClientFailures from
//     an address, within Limits.Window, the subject (or address) is locked
//     out for Limits.Lockout and every attempt, even with the right code, is
//     refused with a *LockedError. Counting first makes the limit hold
//     against many attempts sent at once, on one node or many. A right code
//     clears the subject's count and takes back the address's attempt; an
//     attempt that guessed nothing (no secret enrolled, a right code already
//     used) is taken back from both.
package otp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	pq "github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// The code parameters authenticator apps use by default, and keygate's enrollment.
const (
	// Period is the length of one time step.
	Period = 30 * time.Second
	// Digits is the length of a code.
	Digits = 6
	// Skew is how many time steps either side of now a code may belong to.
	Skew = 1
)

// Errors Verify returns. Any of them means the attempt was refused.
var (
	// ErrWrongCode is a code that is not the subject's for any time step near now.
	ErrWrongCode = errors.New("the one-time password is wrong or expired")
	// ErrReused is a right code of a time step already used (or older than one used).
	ErrReused = errors.New("this one-time password was already used")
	// ErrNotEnrolled is a subject with no one-time-password secret; Attempt.Secret returns it.
	ErrNotEnrolled = errors.New("no one-time password is enrolled")
	// ErrLockedOut is matched by every *LockedError.
	ErrLockedOut = errors.New("locked out after too many wrong one-time passwords")
)

// LockedError refuses an attempt during a lockout. It matches ErrLockedOut
// and unwraps to what was wrong with the attempt that started the lockout,
// if this attempt started it.
type LockedError struct {
	// Until is when the lockout ends; RetryAfter is how long that is from the attempt.
	Until      time.Time
	RetryAfter time.Duration
	// ByClient marks a lockout of the client address rather than of the subject.
	ByClient bool
	// Cause is ErrWrongCode for the attempt that started the lockout, else nil.
	Cause error
}

// Error says who is locked out until when; it never carries a code.
func (e *LockedError) Error() string {
	who := "this subject"
	if e.ByClient {
		who = "this client address"
	}
	return fmt.Sprintf("%v for %s until %s", ErrLockedOut, who, e.Until.UTC().Format(time.RFC3339))
}

// Is reports whether target is ErrLockedOut.
func (e *LockedError) Is(target error) bool { return target == ErrLockedOut }

// Unwrap returns the cause of the attempt that started the lockout, if any.
func (e *LockedError) Unwrap() error { return e.Cause }

// Store is the shared state the verifier keeps; *store.Store implements it.
type Store interface {
	OTPLockout(ctx context.Context, now time.Time, cs ...store.OTPCounter) (store.OTPCounter, time.Time, error)
	ChargeOTP(ctx context.Context, c store.OTPCounter, now time.Time, window time.Duration) (store.OTPCount, error)
	RefundOTP(ctx context.Context, c store.OTPCounter, since, now time.Time) error
	ResetOTP(ctx context.Context, c store.OTPCounter, now time.Time) error
	LockOTP(ctx context.Context, c store.OTPCounter, now, until time.Time) (time.Time, bool, error)
	UseOTPStep(ctx context.Context, subject string, step int64, at time.Time) (bool, error)
	PruneOTP(ctx context.Context, now time.Time, window time.Duration) (int, error)
}

// Limits bounds wrong codes. Zero fields take the defaults.
type Limits struct {
	// MaxFailures is how many wrong codes for one subject within Window lock it out (default 5).
	MaxFailures int
	// MaxClientFailures is how many wrong codes from one client address (an IPv6 address
	// counts as its /64) within Window, across subjects, lock the address out (default 20).
	MaxClientFailures int
	// Window is the counting window (default 15 min).
	Window time.Duration
	// Lockout is how long a lockout lasts (default 15 min); attempts are counted afresh after it.
	Lockout time.Duration
}

// DefaultLimits returns the limits zero fields fall back to.
func DefaultLimits() Limits {
	return Limits{MaxFailures: 5, MaxClientFailures: 20, Window: 15 * time.Minute, Lockout: 15 * time.Minute}
}

// Lockout reports a lockout that an attempt started.
type Lockout struct {
	// Subject is the subject whose code was tried; Client the attempt's address.
	Subject, Client string
	// ByClient marks a lockout of the client address rather than of the subject.
	ByClient bool
	// Failures wrong codes were counted within Window, against a limit of Max.
	Failures, Max int
	Window        time.Duration
	// At is when the lockout started and Until when it ends.
	At, Until time.Time
}

// Options configures a Verifier.
type Options struct {
	// Limits bounds wrong codes; zero fields take DefaultLimits.
	Limits Limits
	// OnLockout is called once per lockout, on the node whose attempt started it, before
	// Verify returns. It must not block.
	OnLockout func(Lockout)
	// Log receives store errors that do not change an attempt's answer (default: discarded).
	Log *slog.Logger
	// Now is the clock for attempts that carry no time (default time.Now).
	Now func() time.Time
}

// Verifier checks one-time passwords. It is safe for concurrent use.
type Verifier struct {
	st   Store
	lim  Limits
	opts Options
}

// New returns a Verifier over st.
func New(st Store, opts Options) (*Verifier, error) {
	if st == nil {
		return nil, errors.New("otp: a verifier needs a store")
	}
	l := opts.Limits
	d := DefaultLimits()
	if l.MaxFailures == 0 {
		l.MaxFailures = d.MaxFailures
	}
	if l.MaxClientFailures == 0 {
		l.MaxClientFailures = d.MaxClientFailures
	}
	if l.Window == 0 {
		l.Window = d.Window
	}
	if l.Lockout == 0 {
		l.Lockout = d.Lockout
	}
	if l.MaxFailures < 1 || l.MaxClientFailures < 1 || l.Window < time.Second || l.Lockout < time.Second {
		return nil, fmt.Errorf("otp: limits %+v: failure counts must be at least 1 and durations at least 1s", l)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Verifier{st: st, lim: l, opts: opts}, nil
}

// Attempt is one code presented for a subject.
type Attempt struct {
	// Subject names whose code it is: "key/<id>", "user/<id>".
	Subject string
	// Client is the client's address; "" if unknown (then only the subject's count applies).
	Client string
	// Code is the code as presented.
	Code string
	// Now is when the attempt was made (zero: the verifier's clock).
	Now time.Time
	// Secret returns the subject's enrolled base32 secret, or ErrNotEnrolled. It is called
	// only for an attempt that is not locked out.
	Secret func(ctx context.Context) (secret.String, error)
}

// Verify accepts a's code or says why not: ErrWrongCode, ErrReused,
// ErrNotEnrolled, a *LockedError, or a store error (the attempt is refused).
func (v *Verifier) Verify(ctx context.Context, a Attempt) error {
	if a.Subject == "" || a.Secret == nil {
		return errors.New("otp: an attempt needs a subject and a way to read its secret")
	}
	now := a.Now
	if now.IsZero() {
		now = v.opts.Now()
	}
	subj := store.OTPCounter{Scope: store.OTPSubject, Name: a.Subject}
	cli := store.OTPCounter{Scope: store.OTPClient, Name: clientName(a.Client)}
	hasClient := cli.Name != ""

	// An attempt during a lockout is refused with one read: hammering a
	// locked key costs the database no write.
	cs := []store.OTPCounter{subj}
	if hasClient {
		cs = append(cs, cli)
	}
	lc, until, err := v.st.OTPLockout(ctx, now, cs...)
	if err != nil {
		return fmt.Errorf("otp: %w", err)
	}
	if !until.IsZero() {
		return locked(until, now, lc.Scope == store.OTPClient, nil)
	}

	// Count the attempt first, the address then the subject, so that no more
	// codes are compared than the limits allow, however many arrive at once.
	var cc store.OTPCount
	if hasClient {
		if cc, err = v.st.ChargeOTP(ctx, cli, now, v.lim.Window); err != nil {
			return fmt.Errorf("otp: %w", err)
		}
		if cc.Locked(now) {
			return locked(*cc.LockedUntil, now, true, nil)
		}
		if cc.Failures > v.lim.MaxClientFailures {
			return v.lock(ctx, cli, a, cc.Failures-1, now, nil)
		}
	}
	refundClient := func() {
		if hasClient {
			if err := v.st.RefundOTP(ctx, cli, cc.Since, now); err != nil {
				v.opts.Log.Warn("otp: could not take back an attempt from a client address's count", "err", err)
			}
		}
	}
	sc, err := v.st.ChargeOTP(ctx, subj, now, v.lim.Window)
	if err != nil {
		refundClient()
		return fmt.Errorf("otp: %w", err)
	}
	if sc.Locked(now) {
		refundClient()
		return locked(*sc.LockedUntil, now, false, nil)
	}
	if sc.Failures > v.lim.MaxFailures {
		refundClient()
		return v.lock(ctx, subj, a, sc.Failures-1, now, nil)
	}

	// An attempt that guessed nothing is taken back from both counts: no
	// secret to compare with, or a right code already used (a replay or a
	// double submission reveals nothing about the codes).
	refund := func() {
		refundClient()
		if err := v.st.RefundOTP(ctx, subj, sc.Since, now); err != nil {
			v.opts.Log.Warn("otp: could not take back an attempt from a subject's count", "err", err)
		}
	}
	sec, err := a.Secret(ctx)
	if err != nil {
		refund()
		return err
	}
	step, ok, err := match(sec, a.Code, now)
	if err != nil {
		refund()
		return err
	}
	if ok {
		used, err := v.st.UseOTPStep(ctx, a.Subject, step, now)
		if err != nil {
			refund()
			return fmt.Errorf("otp: %w", err)
		}
		if !used {
			refund()
			return ErrReused
		}
		if err := v.st.ResetOTP(ctx, subj, now); err != nil {
			v.opts.Log.Warn("otp: could not clear a subject's count of wrong codes", "err", err)
		}
		refundClient()
		return nil
	}
	// A wrong code: its count stands, and the one that reaches a limit
	// starts the lockout.
	var lockErr error
	if sc.Failures >= v.lim.MaxFailures {
		lockErr = v.lock(ctx, subj, a, sc.Failures, now, ErrWrongCode)
	}
	if hasClient && cc.Failures >= v.lim.MaxClientFailures {
		if err := v.lock(ctx, cli, a, cc.Failures, now, ErrWrongCode); lockErr == nil {
			lockErr = err
		}
	}
	if lockErr != nil {
		return lockErr
	}
	return ErrWrongCode
}

// lock locks counter c out and reports the lockout if this attempt started it.
func (v *Verifier) lock(ctx context.Context, c store.OTPCounter, a Attempt, failures int, now time.Time, cause error) error {
	until, started, err := v.st.LockOTP(ctx, c, now, now.Add(v.lim.Lockout))
	if err != nil {
		return fmt.Errorf("otp: %w", err)
	}
	byClient := c.Scope == store.OTPClient
	if started && v.opts.OnLockout != nil {
		limit := v.lim.MaxFailures
		if byClient {
			limit = v.lim.MaxClientFailures
		}
		v.opts.OnLockout(Lockout{Subject: a.Subject, Client: a.Client, ByClient: byClient,
			Failures: failures, Max: limit, Window: v.lim.Window, At: now, Until: until})
	}
	return locked(until, now, byClient, cause)
}

func locked(until, now time.Time, byClient bool, cause error) *LockedError {
	return &LockedError{Until: until, RetryAfter: max(until.Sub(now), 0), ByClient: byClient, Cause: cause}
}

// Prune forgets the counts whose window has ended, for a periodic janitor.
func (v *Verifier) Prune(ctx context.Context, now time.Time) (int, error) {
	return v.st.PruneOTP(ctx, now, v.lim.Window)
}

// match compares code with the subject's codes for the time steps around
// now, each in constant time, and returns the step it belongs to.
func match(sec secret.String, code string, now time.Time) (int64, bool, error) {
	well := len(code) == Digits
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			well = false
		}
	}
	cur := now.Unix() / int64(Period/time.Second)
	var step int64
	found := false
	for s := cur - Skew; s <= cur+Skew; s++ {
		want, err := hotp.GenerateCodeCustom(sec.Reveal(), uint64(s), hotp.ValidateOpts{Digits: pq.DigitsSix, Algorithm: pq.AlgorithmSHA1})
		if err != nil {
			return 0, false, errors.New("otp: the enrolled secret is not usable; enroll the subject again")
		}
		if subtle.ConstantTimeCompare([]byte(code), []byte(want)) == 1 && well && !found {
			step, found = s, true
		}
	}
	return step, found, nil
}

// clientName is the address attempts are counted under: an IPv4 address as
// it is, an IPv6 address as its /64 (one host usually holds the whole /64).
func clientName(client string) string {
	if client == "" {
		return ""
	}
	a, err := netip.ParseAddr(client)
	if err != nil {
		if ap, err2 := netip.ParseAddrPort(client); err2 == nil {
			a, err = ap.Addr(), nil
		}
	}
	if err != nil {
		return client
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}
