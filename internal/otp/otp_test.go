package otp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// t0 is the start of every test's timeline: the first second of a time step.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// databases runs fn against a fresh SQLite database and, when configured, a PostgreSQL one.
func databases(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("SQLite", func(t *testing.T) { t.Parallel(); fn(t, storetest.SQLiteURL(t)) })
	t.Run("Postgres", func(t *testing.T) { t.Parallel(); fn(t, storetest.PostgresURL(t)) })
}

// node is one keygate process's verifier over the shared database, with the lockouts it started.
type node struct {
	v        *otp.Verifier
	mu       sync.Mutex
	lockouts []otp.Lockout
}

func newNode(t *testing.T, url string, lim otp.Limits) *node {
	t.Helper()
	n := &node{}
	v, err := otp.New(storetest.Open(t, url), otp.Options{Limits: lim, OnLockout: func(l otp.Lockout) {
		n.mu.Lock()
		n.lockouts = append(n.lockouts, l)
		n.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	n.v = v
	return n
}

func (n *node) taken() []otp.Lockout {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]otp.Lockout(nil), n.lockouts...)
}

// enrolled is a subject with a secret made for this run.
type enrolled struct {
	subject string
	sec     secret.String
	reads   atomic.Int64 // how many attempts got as far as comparing a code
}

func enroll(t *testing.T, subject string) *enrolled {
	t.Helper()
	k, err := totp.Generate(totp.GenerateOpts{Issuer: "keygate-test", AccountName: subject})
	if err != nil {
		t.Fatal(err)
	}
	return &enrolled{subject: subject, sec: secret.New(k.Secret())}
}

// code is the subject's code at t.
func (e *enrolled) code(t *testing.T, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(e.sec.Reveal(), at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrong is a code that is none of the subject's codes near at.
func (e *enrolled) wrong(t *testing.T, at time.Time, i int) string {
	t.Helper()
	near := map[string]bool{}
	for _, d := range []time.Duration{-otp.Period, 0, otp.Period} {
		near[e.code(t, at.Add(d))] = true
	}
	for ; ; i++ {
		c := fmt.Sprintf("%06d", (i*7919)%1000000)
		if !near[c] {
			return c
		}
	}
}

func (e *enrolled) attempt(code, client string, at time.Time) otp.Attempt {
	return otp.Attempt{Subject: e.subject, Client: client, Code: code, Now: at, Secret: func(context.Context) (secret.String, error) {
		e.reads.Add(1)
		return e.sec, nil
	}}
}

func TestCodeWindowAndFormat(t *testing.T) {
	n := newNode(t, storetest.SQLiteURL(t), otp.Limits{MaxFailures: 100})
	e := enroll(t, "key/window")
	now := t0.Add(10 * time.Minute)
	for i, c := range []struct {
		code string
		want error
	}{
		{e.code(t, now.Add(-otp.Period)), nil}, // the previous step
		{e.code(t, now), nil},
		{e.code(t, now.Add(otp.Period)), nil}, // the next step
		{e.code(t, now.Add(2*otp.Period)), otp.ErrWrongCode},
		{e.code(t, now.Add(-otp.Period)), otp.ErrReused}, // older than one used
		{" " + e.code(t, now.Add(2*otp.Period))[1:], otp.ErrWrongCode},
		{e.code(t, now.Add(2*otp.Period)) + "0", otp.ErrWrongCode},
		{"", otp.ErrWrongCode},
	} {
		if err := n.v.Verify(t.Context(), e.attempt(c.code, "192.0.2.1", now)); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("case %d: got %v, want %v", i, err, c.want)
		}
	}
	// Two steps on, the code two steps ahead is current and newer than any used.
	if err := n.v.Verify(t.Context(), e.attempt(e.code(t, now.Add(2*otp.Period)), "192.0.2.1", now.Add(2*otp.Period))); err != nil {
		t.Errorf("the next fresh code: %v", err)
	}
}

func TestNotEnrolledIsNotCounted(t *testing.T) {
	n := newNode(t, storetest.SQLiteURL(t), otp.Limits{MaxFailures: 2})
	a := otp.Attempt{Subject: "key/none", Client: "192.0.2.9", Code: "123456", Now: t0,
		Secret: func(context.Context) (secret.String, error) { return secret.String{}, otp.ErrNotEnrolled }}
	for i := 0; i < 5; i++ {
		if err := n.v.Verify(t.Context(), a); !errors.Is(err, otp.ErrNotEnrolled) {
			t.Fatalf("attempt %d: %v, want ErrNotEnrolled", i, err)
		}
	}
}

// TestCodeUsedOnceAcrossNodes: a code accepted on one node is refused on another, and of two
// nodes racing with one code exactly one accepts it.
func TestCodeUsedOnceAcrossNodes(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		a, b := newNode(t, url, otp.Limits{}), newNode(t, url, otp.Limits{})
		e := enroll(t, "key/shared")
		now := t0.Add(time.Minute)
		code := e.code(t, now)
		if err := a.v.Verify(t.Context(), e.attempt(code, "192.0.2.1", now)); err != nil {
			t.Fatalf("node A: %v", err)
		}
		if err := b.v.Verify(t.Context(), e.attempt(code, "192.0.2.1", now.Add(time.Second))); !errors.Is(err, otp.ErrReused) {
			t.Fatalf("node B with the same code: %v, want ErrReused", err)
		}
		for round := 1; round <= 4; round++ {
			at := now.Add(time.Duration(round) * otp.Period)
			code := e.code(t, at)
			var ok, reused atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func(n *node) {
					defer wg.Done()
					switch err := n.v.Verify(context.Background(), e.attempt(code, "192.0.2.1", at)); {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, otp.ErrReused):
						reused.Add(1)
					default:
						t.Errorf("round %d: %v", round, err)
					}
				}([]*node{a, b}[i%2])
			}
			wg.Wait()
			if ok.Load() != 1 || reused.Load() != 3 {
				t.Fatalf("round %d: %d nodes accepted the code and %d refused it as used, want 1 and 3", round, ok.Load(), reused.Load())
			}
		}
	})
}

// TestSubjectLockout: five wrong codes for a subject, spread over two nodes, lock it out: the
// fifth answer is already the lockout, a right code is refused during it, one alert-worthy
// lockout is reported, and after it the right code works.
func TestSubjectLockout(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		a, b := newNode(t, url, otp.Limits{}), newNode(t, url, otp.Limits{})
		e := enroll(t, "key/target")
		now := t0
		for i := 1; i <= 5; i++ {
			n := []*node{a, b}[i%2]
			err := n.v.Verify(t.Context(), e.attempt(e.wrong(t, now, i), fmt.Sprintf("192.0.2.%d", i), now))
			var le *otp.LockedError
			if i < 5 && (!errors.Is(err, otp.ErrWrongCode) || errors.As(err, &le)) {
				t.Fatalf("wrong code %d: %v, want ErrWrongCode", i, err)
			}
			if i == 5 && (!errors.As(err, &le) || !errors.Is(err, otp.ErrWrongCode) || le.ByClient || le.RetryAfter != 15*time.Minute) {
				t.Fatalf("wrong code 5: %v, want the subject's 15-minute lockout caused by a wrong code", err)
			}
			now = now.Add(time.Second)
		}
		right := e.code(t, now)
		err := a.v.Verify(t.Context(), e.attempt(right, "198.51.100.1", now))
		var le *otp.LockedError
		if !errors.As(err, &le) || !errors.Is(err, otp.ErrLockedOut) || le.Cause != nil {
			t.Fatalf("the right code during the lockout: %v, want refused as locked out", err)
		}
		if want := 15*time.Minute - time.Second; le.RetryAfter != want { // locked at the fifth, a second before
			t.Errorf("retry after %v, want %v", le.RetryAfter, want)
		}
		ls := append(a.taken(), b.taken()...)
		if len(ls) != 1 || ls[0].Subject != "key/target" || ls[0].ByClient || ls[0].Failures != 5 || ls[0].Max != 5 ||
			ls[0].Client != "192.0.2.5" || !ls[0].Until.Equal(t0.Add(4*time.Second+15*time.Minute)) {
			t.Fatalf("lockouts reported %+v, want one of key/target after 5 failures", ls)
		}
		after := t0.Add(4*time.Second + 15*time.Minute)
		if err := b.v.Verify(t.Context(), e.attempt(e.code(t, after), "198.51.100.1", after)); err != nil {
			t.Fatalf("the right code after the lockout: %v", err)
		}
	})
}

// TestRightCodeClearsCount: wrong codes followed by a right one start the count again.
func TestRightCodeClearsCount(t *testing.T) {
	n := newNode(t, storetest.SQLiteURL(t), otp.Limits{})
	e := enroll(t, "key/typo")
	now := t0
	for round := 0; round < 3; round++ {
		for i := 0; i < 4; i++ {
			if err := n.v.Verify(t.Context(), e.attempt(e.wrong(t, now, i), "192.0.2.1", now)); !errors.Is(err, otp.ErrWrongCode) || errors.Is(err, otp.ErrLockedOut) {
				t.Fatalf("round %d, wrong code %d: %v", round, i, err)
			}
		}
		if err := n.v.Verify(t.Context(), e.attempt(e.code(t, now), "192.0.2.1", now)); err != nil {
			t.Fatalf("round %d, the right code: %v", round, err)
		}
		now = now.Add(otp.Period)
	}
}

// TestClientLockout: twenty wrong codes from one address, one at each of twenty subjects, lock
// the address out for every subject; another address is not affected. An IPv6 client counts as
// its /64.
func TestClientLockout(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		a, b := newNode(t, url, otp.Limits{}), newNode(t, url, otp.Limits{})
		for _, addrs := range [][2]string{{"203.0.113.50", "203.0.113.51"}, {"2001:db8:1:2::1", "2001:db8:1:3::1"}} {
			spray := func(i int) string {
				if len(addrs[0]) > 15 {
					return fmt.Sprintf("2001:db8:1:2::%x", i+1)
				}
				return addrs[0]
			}
			for i := 1; i <= 20; i++ {
				e := enroll(t, fmt.Sprintf("key/%s-%d", addrs[0], i))
				err := []*node{a, b}[i%2].v.Verify(t.Context(), e.attempt(e.wrong(t, t0, i), spray(i), t0))
				var le *otp.LockedError
				if i < 20 && !errors.Is(err, otp.ErrWrongCode) || errors.Is(err, otp.ErrLockedOut) != (i == 20) {
					t.Fatalf("%s: wrong code %d: %v", addrs[0], i, err)
				}
				if i == 20 && (!errors.As(err, &le) || !le.ByClient) {
					t.Fatalf("%s: wrong code 20: %v, want the address locked out", addrs[0], err)
				}
			}
			e := enroll(t, "key/innocent-"+addrs[0])
			if err := a.v.Verify(t.Context(), e.attempt(e.code(t, t0), spray(99), t0)); !errors.Is(err, otp.ErrLockedOut) {
				t.Fatalf("%s: a right code from the locked address: %v", addrs[0], err)
			}
			if err := b.v.Verify(t.Context(), e.attempt(e.code(t, t0), addrs[1], t0)); err != nil {
				t.Fatalf("%s: a right code from another address: %v", addrs[1], err)
			}
		}
		ls := append(a.taken(), b.taken()...)
		if len(ls) != 2 || !ls[0].ByClient || !ls[1].ByClient || ls[0].Max != 20 {
			t.Fatalf("lockouts reported %+v, want the two addresses", ls)
		}
	})
}

// TestParallelAttemptsHoldTheLimit: 200 wrong codes sent at once through two nodes compare at
// most five codes; every other answer is the lockout, and it is reported once.
func TestParallelAttemptsHoldTheLimit(t *testing.T) {
	databases(t, func(t *testing.T, url string) {
		a, b := newNode(t, url, otp.Limits{}), newNode(t, url, otp.Limits{})
		e := enroll(t, "key/hammered")
		var wrong, lockedOut atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				err := []*node{a, b}[i%2].v.Verify(context.Background(), e.attempt(e.wrong(t, t0, i), fmt.Sprintf("198.51.100.%d", i%50), t0))
				switch {
				case errors.Is(err, otp.ErrLockedOut):
					lockedOut.Add(1)
				case errors.Is(err, otp.ErrWrongCode):
					wrong.Add(1)
				default:
					t.Errorf("attempt %d: %v", i, err)
				}
			}(i)
		}
		wg.Wait()
		if got := e.reads.Load(); got > 5 {
			t.Errorf("%d codes were compared, want at most 5", got)
		}
		if wrong.Load() > 4 || wrong.Load()+lockedOut.Load() != 200 {
			t.Errorf("%d answered wrong and %d locked out, want at most 4 wrong and the rest locked out", wrong.Load(), lockedOut.Load())
		}
		if ls := append(a.taken(), b.taken()...); len(ls) != 1 {
			t.Errorf("%d lockouts reported, want 1: %+v", len(ls), ls)
		}
	})
}

// TestPrune: the janitor forgets counts whose window has ended.
func TestPrune(t *testing.T) {
	url := storetest.SQLiteURL(t)
	n := newNode(t, url, otp.Limits{})
	e := enroll(t, "key/old")
	if err := n.v.Verify(t.Context(), e.attempt(e.wrong(t, t0, 1), "192.0.2.1", t0)); !errors.Is(err, otp.ErrWrongCode) {
		t.Fatal(err)
	}
	if got, err := n.v.Prune(t.Context(), t0.Add(10*time.Minute)); err != nil || got != 0 {
		t.Fatalf("prune within the window: %d, %v", got, err)
	}
	if got, err := n.v.Prune(t.Context(), t0.Add(16*time.Minute)); err != nil || got != 2 {
		t.Fatalf("prune after the window: %d, %v; want the subject's and the address's counts", got, err)
	}
}

func TestNewRejectsBadLimits(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t))
	if _, err := otp.New(st, otp.Options{Limits: otp.Limits{MaxFailures: -1}}); err == nil {
		t.Error("New accepted a negative failure limit")
	}
	if _, err := otp.New(nil, otp.Options{}); err == nil {
		t.Error("New accepted no store")
	}
	var _ otp.Store = (*store.Store)(nil)
}
