package token_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
)

func newHasher(t testing.TB) *apikey.Hasher {
	t.Helper()
	pepper := make([]byte, 32)
	rand.Read(pepper)
	h, err := apikey.NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newFamilies(t testing.TB, e *env, opts token.FamilyOptions) *token.Families {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	f, err := token.NewFamilies(e.st, newHasher(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func start(t testing.TB, f *token.Families, keyID string) (store.TokenFamily, secret.String) {
	t.Helper()
	fam, rt, err := f.Start(ctx(t), store.TokenFamily{KeyID: keyID, Scope: []byte(`{"models":["gpt-4o"]}`), AMR: []string{"otp"}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return fam, rt
}

func exchange(t testing.TB, f *token.Families, rt secret.String, at time.Time) (store.TokenFamily, secret.String) {
	t.Helper()
	fam, next, err := f.Exchange(ctx(t), rt.Reveal(), at)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return fam, next
}

func TestRefreshShape(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{})
	fam, rt := start(t, f, "key_1")
	raw := rt.Reveal()
	if !strings.HasPrefix(raw, "kgr_") || len(raw) != 47 || strings.Trim(raw[4:], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
		t.Errorf("refresh token has the wrong shape (length %d)", len(raw))
	}
	if !strings.HasPrefix(fam.ID, "fam_") || len(fam.ID) != 26 {
		t.Errorf("family ID %q, want fam_ and 22 characters", fam.ID)
	}
	if !fam.CreatedAt.Equal(t0) || !fam.ExpiresAt.Equal(t0.Add(token.DefaultFamilyLifetime)) {
		t.Errorf("family created %s, expires %s; want %s and +24h", fam.CreatedAt, fam.ExpiresAt, t0)
	}
	stored, err := e.st.GetTokenFamily(ctx(t), fam.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.KeyID != "key_1" || string(stored.Scope) != `{"models":["gpt-4o"]}` || len(stored.AMR) != 1 {
		t.Errorf("stored family = %+v", stored)
	}
	if _, rt2 := start(t, f, "key_1"); rt2.Equal(rt) {
		t.Error("two families got the same refresh token")
	}
}

func TestStartValidates(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{})
	for name, fam := range map[string]store.TokenFamily{
		"no key":           {},
		"lifetime > 30d":   {KeyID: "k", CreatedAt: t0, ExpiresAt: t0.Add(token.MaxFamilyLifetime + time.Second)},
		"expires at start": {KeyID: "k", CreatedAt: t0, ExpiresAt: t0},
		"expires in past":  {KeyID: "k", CreatedAt: t0, ExpiresAt: t0.Add(-time.Hour)},
	} {
		if _, _, err := f.Start(ctx(t), fam); err == nil {
			t.Errorf("Start with %s succeeded", name)
		}
	}
	if _, err := token.NewFamilies(e.st, newHasher(t), token.FamilyOptions{Lifetime: 31 * 24 * time.Hour}); err == nil {
		t.Error("NewFamilies accepted a 31-day family lifetime")
	}
	fam, _, err := f.Start(ctx(t), store.TokenFamily{KeyID: "k", CreatedAt: t0, ExpiresAt: t0.Add(token.MaxFamilyLifetime)})
	if err != nil {
		t.Fatalf("Start with a 30-day lifetime: %v", err)
	}
	if fam.RevokedAt != nil {
		t.Error("a new family is revoked")
	}
}

func TestRefreshSingleUse(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{})
	fam, r1 := start(t, f, "key_1")
	got, r2 := exchange(t, f, r1, t0.Add(time.Minute))
	if got.ID != fam.ID || got.KeyID != "key_1" || string(got.Scope) != `{"models":["gpt-4o"]}` {
		t.Errorf("Exchange returned family %+v, want %s of key_1 with its scope", got, fam.ID)
	}
	if r2.Equal(r1) {
		t.Fatal("Exchange returned the same refresh token")
	}
	_, r3 := exchange(t, f, r2, t0.Add(2*time.Minute))
	exchange(t, f, r3, t0.Add(3*time.Minute))

	for name, raw := range map[string]string{
		"malformed":      "kgr_tooshort",
		"wrong prefix":   "kgx_" + r1.Reveal()[4:],
		"bad characters": r1.Reveal()[:46] + "-",
	} {
		_, _, err := f.Exchange(ctx(t), raw, t0)
		wantErr(t, err, token.ErrMalformed, name)
		noSecretIn(t, err, raw)
	}
	unknown := "kgr_" + strings.Repeat("7", 43)
	_, _, err := f.Exchange(ctx(t), unknown, t0)
	wantErr(t, err, token.ErrRefreshUnknown, "Exchange of a token never issued")
	wantErr(t, err, token.ErrInvalid, "Exchange of a token never issued")
}

// TestRefreshReuseRevokesFamily: a spent token presented again revokes the
// family, so the newer token, held by whichever party exchanged first,
// stops working too.
func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{})
	fam, r1 := start(t, f, "key_1")
	_, sibling := start(t, f, "key_1") // another family of the same key
	_, r2 := exchange(t, f, r1, t0.Add(time.Minute))

	seq, err := e.st.LatestRevocationSeq(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(2 * time.Minute)
	reused, _, err := f.Exchange(ctx(t), r1.Reveal(), at)
	wantErr(t, err, token.ErrRefreshReused, "second Exchange of a token")
	if reused.ID != fam.ID || reused.KeyID != "key_1" {
		t.Errorf("reuse returned family %+v, want %s of key_1, so the caller can refuse its tokens at once", reused, fam.ID)
	}
	wantErr(t, err, token.ErrInvalid, "second Exchange of a token")
	noSecretIn(t, err, r1.Reveal())
	if !strings.Contains(err.Error(), fam.ID) {
		t.Errorf("reuse error %q does not name the family", err)
	}

	_, _, err = f.Exchange(ctx(t), r2.Reveal(), t0.Add(3*time.Minute))
	wantErr(t, err, token.ErrFamilyRevoked, "Exchange of the newer token after reuse")

	stored, err := e.st.GetTokenFamily(ctx(t), fam.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.RevokedAt == nil || !stored.RevokedAt.Equal(at) || stored.Reason != token.ReasonReuse {
		t.Errorf("family revoked at %v for %q, want %s for %q", stored.RevokedAt, stored.Reason, at, token.ReasonReuse)
	}
	revs, err := e.st.RevocationsSince(ctx(t), seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || revs[0].Kind != token.RevokedFamily || revs[0].Subject != fam.ID || !revs[0].Until.After(fam.ExpiresAt) {
		t.Fatalf("revocations after reuse = %+v, want one of family %s lasting past its expiry", revs, fam.ID)
	}

	// Replaying again still reports reuse but does not flood the revocation feed.
	_, _, err = f.Exchange(ctx(t), r1.Reveal(), t0.Add(4*time.Minute))
	wantErr(t, err, token.ErrRefreshReused, "third Exchange of a token")
	if revs, _ := e.st.RevocationsSince(ctx(t), seq); len(revs) != 1 {
		t.Errorf("a repeated reuse added revocations: %d, want 1", len(revs))
	}

	// Other families of the key are untouched.
	exchange(t, f, sibling, t0.Add(5*time.Minute))
}

func TestRefreshLifetimes(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{}) // family 24h, refresh token 12h

	t.Run("absolute family lifetime", func(t *testing.T) {
		fam, r := start(t, f, "key_1")
		for _, h := range []time.Duration{11, 22, 23} {
			_, r = exchange(t, f, r, t0.Add(h*time.Hour))
		}
		_, _, err := f.Exchange(ctx(t), r.Reveal(), fam.ExpiresAt)
		wantErr(t, err, token.ErrExpired, "Exchange at the family's end")
	})
	t.Run("refresh token TTL", func(t *testing.T) {
		_, r := start(t, f, "key_1")
		_, _, err := f.Exchange(ctx(t), r.Reveal(), t0.Add(token.DefaultRefreshTTL))
		wantErr(t, err, token.ErrExpired, "Exchange after the refresh token's TTL")
	})
	t.Run("short family", func(t *testing.T) {
		_, r, err := f.Start(ctx(t), store.TokenFamily{KeyID: "k", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = f.Exchange(ctx(t), r.Reveal(), t0.Add(time.Hour+time.Second))
		wantErr(t, err, token.ErrExpired, "Exchange after a 1h family ended")
	})
}

func TestRevokeFamilyAndKey(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{})
	famA1, a1 := start(t, f, "key_a")
	_, a2 := start(t, f, "key_a")
	famB, b := start(t, f, "key_b")

	seq, err := e.st.LatestRevocationSeq(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.RevokeKey(ctx(t), "key_a", "key revoked by admin", t0.Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("RevokeKey = %d, %v; want 2 families", n, err)
	}
	for _, r := range []secret.String{a1, a2} {
		_, _, err := f.Exchange(ctx(t), r.Reveal(), t0.Add(2*time.Minute))
		wantErr(t, err, token.ErrFamilyRevoked, "Exchange in a revoked key's family")
	}
	stored, _ := e.st.GetTokenFamily(ctx(t), famA1.ID)
	if stored.Reason != "key revoked by admin" {
		t.Errorf("family reason = %q", stored.Reason)
	}
	revs, err := e.st.RevocationsSince(ctx(t), seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || revs[0].Kind != token.RevokedKey || revs[0].Subject != "key_a" {
		t.Errorf("revocations after RevokeKey = %+v, want one of key key_a", revs)
	}
	_, b = exchange(t, f, b, t0.Add(3*time.Minute))

	if err := f.RevokeFamily(ctx(t), famB.ID, "user logged out", t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.Exchange(ctx(t), b.Reveal(), t0.Add(5*time.Minute))
	wantErr(t, err, token.ErrFamilyRevoked, "Exchange after RevokeFamily")
	if err := f.RevokeFamily(ctx(t), famB.ID, "again", t0.Add(6*time.Minute)); err != nil {
		t.Errorf("revoking a revoked family: %v", err)
	}
	wantErr(t, f.RevokeFamily(ctx(t), "fam_missing", "x", t0), store.ErrNotFound, "RevokeFamily of an unknown family")
	revs, _ = e.st.RevocationsSince(ctx(t), seq)
	if len(revs) != 2 || revs[1].Kind != token.RevokedFamily || revs[1].Subject != famB.ID {
		t.Errorf("revocations = %+v, want the key's and then family %s", revs, famB.ID)
	}
}

// TestRefreshConcurrentExchange presents one token many times at once:
// exactly one exchange gets past the single-use check and every other one
// is reuse, which revokes the family. The one that got past may itself be
// refused, when the family was revoked before it finished: with a stolen
// copy in play, nobody keeps the family.
func TestRefreshConcurrentExchange(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{})
	for round := range 3 {
		fam, r := start(t, f, "key_1")
		const n = 8
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []secret.String
			reused  int
			others  []error
		)
		ready := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-ready
				_, next, err := f.Exchange(ctx(t), r.Reveal(), t0.Add(time.Minute))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, next)
				case errors.Is(err, token.ErrRefreshReused):
					reused++
				default:
					others = append(others, err)
				}
			}()
		}
		close(ready)
		wg.Wait()
		lateWinner := len(others) == 1 && errors.Is(others[0], token.ErrFamilyRevoked)
		if reused != n-1 || !(len(winners) == 1 && len(others) == 0 || len(winners) == 0 && lateWinner) {
			t.Fatalf("round %d: %d winners, %d reuse detections, other errors %v; want %d reuses and one exchange that won or found the family revoked", round, len(winners), reused, others, n-1)
		}
		if len(winners) == 1 {
			_, _, err := f.Exchange(ctx(t), winners[0].Reveal(), t0.Add(2*time.Minute))
			wantErr(t, err, token.ErrFamilyRevoked, "the winner's token after concurrent reuse")
		}
		stored, _ := e.st.GetTokenFamily(ctx(t), fam.ID)
		if stored.RevokedAt == nil || stored.Reason != token.ReasonReuse {
			t.Errorf("round %d: family not revoked for reuse: %+v", round, stored)
		}
	}
}

// TestRefreshNotStoredInClear searches the database files for the tokens.
func TestRefreshNotStoredInClear(t *testing.T) {
	e := newEnv(t)
	h := newHasher(t)
	f, err := token.NewFamilies(e.st, h, token.FamilyOptions{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	_, r1 := start(t, f, "key_1")
	_, r2 := exchange(t, f, r1, t0.Add(time.Minute))
	for i, r := range []secret.String{r1, r2} {
		raw := r.Reveal()
		for _, needle := range []string{raw, raw[4:], raw[4:24]} {
			if searchDB(t, e.path, []byte(needle)) {
				t.Errorf("refresh token %d is in the database in clear", i+1)
			}
		}
		// The search does look where the tokens are: their hashes are there.
		sum := h.Hash(raw)
		if !searchDB(t, e.path, sum[:]) {
			t.Errorf("refresh token %d's hash is not in the database files; the search is looking in the wrong place", i+1)
		}
	}
}

// searchDB reports whether needle occurs in the SQLite database at path or
// its journal files.
func searchDB(t testing.TB, path string, needle []byte) bool {
	t.Helper()
	matches, err := filepath.Glob(path + "*")
	if err != nil || len(matches) == 0 {
		t.Fatalf("no database files at %s", path)
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, needle) {
			return true
		}
	}
	return false
}

// TestFamilyOf: a refresh token's family is read without spending the
// token; a spent, unknown or malformed token is refused.
func TestFamilyOf(t *testing.T) {
	e := newEnv(t)
	f := newFamilies(t, e, token.FamilyOptions{})
	fam, r1 := start(t, f, "key_1")
	for range 2 {
		got, err := f.FamilyOf(ctx(t), r1.Reveal())
		if err != nil || got.ID != fam.ID || string(got.Scope) != `{"models":["gpt-4o"]}` {
			t.Fatalf("FamilyOf = %+v %v, want family %s", got, err, fam.ID)
		}
	}
	_, r2 := exchange(t, f, r1, t0.Add(time.Minute)) // r1 was not spent by FamilyOf
	_, err := f.FamilyOf(ctx(t), r1.Reveal())
	wantErr(t, err, token.ErrInvalid, "FamilyOf a spent token")
	noSecretIn(t, err, r1.Reveal())
	_, err = f.FamilyOf(ctx(t), "kgr_"+strings.Repeat("7", 43))
	wantErr(t, err, token.ErrRefreshUnknown, "FamilyOf a token never issued")
	_, err = f.FamilyOf(ctx(t), "kgr_short")
	wantErr(t, err, token.ErrMalformed, "FamilyOf a malformed token")
	if got, err := f.FamilyOf(ctx(t), r2.Reveal()); err != nil || got.ID != fam.ID {
		t.Fatalf("FamilyOf the rotated token: %+v %v", got, err)
	}
}
