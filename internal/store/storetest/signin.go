package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testSessions: a session is kept by its hash, read back whole on another
// node, used (its idle end moves on, never past its absolute end and never
// back), revoked once, and revoked with every other session of its user.
func testSessions(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	a, b := Open(t, url), Open(t, url)
	u := store.User{ID: "usr_s", Name: "sam", Kind: store.UserPerson, Role: "admin", CreatedAt: at(0)}
	must(t, a.CreateUser(ctx(t), u))
	se := store.Session{ID: "ses_1", Hash: []byte("hash-1"), UserID: u.ID, Method: "password", MFA: "totp", MFAPending: true,
		Audience: "https://keygate.example", Client: "192.0.2.1", CreatedAt: at(0), LastUsedAt: at(0),
		IdleUntil: at(30 * time.Minute), ExpiresAt: at(time.Hour)}
	must(t, a.CreateSession(ctx(t), se))
	if err := a.CreateSession(ctx(t), store.Session{ID: "ses_2", Hash: []byte("hash-1"), UserID: u.ID, Method: "password", Audience: "x",
		CreatedAt: at(0), LastUsedAt: at(0), IdleUntil: at(time.Minute), ExpiresAt: at(time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second session with the same hash: %v, want ErrConflict", err)
	}
	got, err := b.GetSessionByHash(ctx(t), []byte("hash-1"))
	must(t, err)
	if got.ID != se.ID || got.UserID != u.ID || got.TokenID != "" || got.Method != "password" || got.MFA != "totp" || !got.MFAPending ||
		got.Audience != se.Audience || got.Client != se.Client || !got.IdleUntil.Equal(stored(se.IdleUntil)) ||
		!got.ExpiresAt.Equal(stored(se.ExpiresAt)) || got.RevokedAt != nil {
		t.Fatalf("session read back as %+v", got)
	}
	if _, err := b.GetSessionByHash(ctx(t), []byte("other")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}
	// A use moves the idle end, but not past the absolute end.
	must(t, b.TouchSession(ctx(t), se.ID, at(20*time.Minute), at(50*time.Minute)))
	got, _ = a.GetSession(ctx(t), se.ID)
	if !got.IdleUntil.Equal(stored(at(50*time.Minute))) || !got.LastUsedAt.Equal(stored(at(20*time.Minute))) {
		t.Fatalf("after a use: idle until %v, last used %v", got.IdleUntil, got.LastUsedAt)
	}
	must(t, a.TouchSession(ctx(t), se.ID, at(45*time.Minute), at(75*time.Minute)))
	got, _ = a.GetSession(ctx(t), se.ID)
	if !got.IdleUntil.Equal(stored(se.ExpiresAt)) {
		t.Fatalf("idle end %v moved past the absolute end %v", got.IdleUntil, se.ExpiresAt)
	}
	// A late touch (another node's clock behind) never moves it back.
	must(t, b.TouchSession(ctx(t), se.ID, at(46*time.Minute), at(50*time.Minute)))
	if got, _ = a.GetSession(ctx(t), se.ID); !got.IdleUntil.Equal(stored(se.ExpiresAt)) {
		t.Fatalf("a late touch moved the idle end back to %v", got.IdleUntil)
	}
	// Past its idle end a session cannot be revived by a touch.
	if err := a.TouchSession(ctx(t), se.ID, at(2*time.Hour), at(3*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touching an expired session: %v, want ErrNotFound", err)
	}
	must(t, a.ClearSessionMFA(ctx(t), se.ID, "webauthn"))
	if got, _ = b.GetSession(ctx(t), se.ID); got.MFAPending || got.MFA != "webauthn" {
		t.Fatalf("after the second factor: pending %v, mfa %q", got.MFAPending, got.MFA)
	}

	// Revocation: once, seen by the other node, and a revoked session is
	// never touched again.
	must(t, a.RevokeSession(ctx(t), se.ID, at(time.Minute)))
	must(t, a.RevokeSession(ctx(t), se.ID, at(2*time.Minute)))
	got, _ = b.GetSessionByHash(ctx(t), []byte("hash-1"))
	if got.RevokedAt == nil || !got.RevokedAt.Equal(stored(at(time.Minute))) {
		t.Fatalf("revoked at %v, want the first revocation's time", got.RevokedAt)
	}
	if err := b.TouchSession(ctx(t), se.ID, at(3*time.Minute), at(33*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touching a revoked session: %v, want ErrNotFound", err)
	}
	if err := a.RevokeSession(ctx(t), "ses_none", at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoking an unknown session: %v, want ErrNotFound", err)
	}

	// A token sign-in's session has no user.
	must(t, a.CreateSession(ctx(t), store.Session{ID: "ses_tok", Hash: []byte("hash-tok"), TokenID: "adm_boot", CapRole: "auditor", Method: "token",
		Audience: "http://127.0.0.1:8788", CreatedAt: at(0), LastUsedAt: at(0), IdleUntil: at(time.Minute), ExpiresAt: at(time.Hour)}))
	got, _ = b.GetSession(ctx(t), "ses_tok")
	if got.UserID != "" || got.TokenID != "adm_boot" || got.CapRole != "auditor" {
		t.Fatalf("token session read back as %+v", got)
	}
	for i, h := range []string{"u-a", "u-b"} {
		must(t, a.CreateSession(ctx(t), store.Session{ID: "ses_u" + h, Hash: []byte(h), UserID: u.ID, Method: "oidc", Audience: "x",
			CreatedAt: at(time.Duration(i)), LastUsedAt: at(0), IdleUntil: at(time.Hour), ExpiresAt: at(time.Hour)}))
	}
	n, err := b.RevokeUserSessions(ctx(t), u.ID, at(5*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("revoked %d sessions of the user, want the 2 live ones", n)
	}
	if got, _ = a.GetSession(ctx(t), "ses_tok"); got.RevokedAt != nil {
		t.Fatal("revoking a user's sessions revoked a session of nobody's")
	}
	n, err = a.PruneSessions(ctx(t), at(2*time.Hour))
	must(t, err)
	if n != 4 {
		t.Fatalf("pruned %d sessions, want all 4 (over by then)", n)
	}
}

// testSignInSecrets: passwords, TOTP enrolments, passkeys and linked
// identities are kept per user and read back on another node.
func testSignInSecrets(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	a, b := Open(t, url), Open(t, url)
	u := store.User{ID: "usr_p", Name: "pat", Kind: store.UserPerson, Role: "admin", CreatedAt: at(0)}
	must(t, a.CreateUser(ctx(t), u))
	if _, err := a.GetUserPassword(ctx(t), u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("password of a user without one: %v, want ErrNotFound", err)
	}
	must(t, a.SetUserPassword(ctx(t), u.ID, "$argon2id$first", at(0)))
	must(t, b.SetUserPassword(ctx(t), u.ID, "$argon2id$second", at(time.Minute)))
	if h, err := a.GetUserPassword(ctx(t), u.ID); err != nil || h != "$argon2id$second" {
		t.Fatalf("password hash %q, %v; want the second", h, err)
	}

	if _, err := a.GetUserTOTP(ctx(t), u.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TOTP of a user without: %v", err)
	}
	if err := a.ConfirmUserTOTP(ctx(t), u.ID, at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("confirming a TOTP never enrolled: %v", err)
	}
	must(t, a.PutUserTOTP(ctx(t), u.ID, at(0)))
	if e, _ := b.GetUserTOTP(ctx(t), u.ID); e.ConfirmedAt != nil {
		t.Fatal("a new TOTP enrolment is confirmed before any code")
	}
	must(t, b.ConfirmUserTOTP(ctx(t), u.ID, at(time.Minute)))
	if e, _ := a.GetUserTOTP(ctx(t), u.ID); e.ConfirmedAt == nil {
		t.Fatal("a confirmed TOTP enrolment reads as unconfirmed")
	}
	must(t, a.PutUserTOTP(ctx(t), u.ID, at(2*time.Minute)))
	if e, _ := a.GetUserTOTP(ctx(t), u.ID); e.ConfirmedAt != nil {
		t.Fatal("re-enrolling kept the old confirmation")
	}

	c := store.WebAuthnCredential{ID: "Y3JlZC0x", UserID: u.ID, Name: "laptop", Credential: []byte(`{"n":1}`), CreatedAt: at(0)}
	must(t, a.AddWebAuthnCredential(ctx(t), c))
	if err := b.AddWebAuthnCredential(ctx(t), c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("registering a credential id twice: %v, want ErrConflict", err)
	}
	must(t, b.UpdateWebAuthnCredential(ctx(t), c.ID, []byte(`{"n":2}`), at(time.Minute)))
	cs, err := a.ListWebAuthnCredentials(ctx(t), u.ID)
	must(t, err)
	if len(cs) != 1 || string(cs[0].Credential) != `{"n":2}` || cs[0].LastUsedAt == nil || cs[0].Name != "laptop" {
		t.Fatalf("passkeys read back as %+v", cs)
	}
	if err := a.UpdateWebAuthnCredential(ctx(t), "none", nil, at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("updating an unknown passkey: %v", err)
	}

	// A use is recorded only over the credential it read: the node that
	// lost the race to the same sign count is told so.
	must(t, a.SwapWebAuthnCredential(ctx(t), c.ID, []byte(`{"n":2}`), []byte(`{"n":3}`), at(2*time.Minute)))
	if err := b.SwapWebAuthnCredential(ctx(t), c.ID, []byte(`{"n":2}`), []byte(`{"n":3}`), at(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a second swap over a stale credential: %v, want ErrNotFound", err)
	}
	o := store.User{ID: "usr_o", Name: "other", Kind: store.UserPerson, Role: "admin", CreatedAt: at(0)}
	must(t, a.CreateUser(ctx(t), o))
	if err := b.DeleteWebAuthnCredential(ctx(t), o.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing another user's passkey: %v, want ErrNotFound", err)
	}
	must(t, b.DeleteWebAuthnCredential(ctx(t), u.ID, c.ID))
	if cs, _ := a.ListWebAuthnCredentials(ctx(t), u.ID); len(cs) != 0 {
		t.Fatalf("a removed passkey is still listed: %+v", cs)
	}
	if err := a.DeleteWebAuthnCredential(ctx(t), u.ID, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing a passkey twice: %v, want ErrNotFound", err)
	}

	must(t, a.LinkIdentity(ctx(t), "https://idp.example", "sub-1", u.ID, at(0)))
	if err := b.LinkIdentity(ctx(t), "https://idp.example", "sub-1", u.ID, at(0)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("linking an identity twice: %v, want ErrConflict", err)
	}
	if id, err := b.IdentityUser(ctx(t), "https://idp.example", "sub-1"); err != nil || id != u.ID {
		t.Fatalf("identity user %q, %v", id, err)
	}
	if _, err := b.IdentityUser(ctx(t), "https://other.example", "sub-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("identity of another issuer: %v, want ErrNotFound", err)
	}
}

// testSignInFlows: a ceremony's state is taken once across nodes racing
// for it, only as its own kind, and not after it expires.
func testSignInFlows(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	nodes := []*store.Store{Open(t, url), Open(t, url)}
	must(t, nodes[0].PutSignInFlow(ctx(t), "f1", "oidc", []byte(`{"to":"/"}`), at(10*time.Minute)))
	if _, err := nodes[1].TakeSignInFlow(ctx(t), "f1", "webauthn", at(0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("taking a flow as another kind: %v, want ErrNotFound", err)
	}
	d, err := nodes[1].TakeSignInFlow(ctx(t), "f1", "oidc", at(time.Minute))
	must(t, err)
	if string(d) != `{"to":"/"}` {
		t.Fatalf("flow data %q", d)
	}
	if _, err := nodes[0].TakeSignInFlow(ctx(t), "f1", "oidc", at(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("taking a flow twice: %v, want ErrNotFound", err)
	}
	must(t, nodes[0].PutSignInFlow(ctx(t), "f2", "oidc", []byte(`{}`), at(time.Minute)))
	if _, err := nodes[0].TakeSignInFlow(ctx(t), "f2", "oidc", at(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("taking an expired flow: %v, want ErrNotFound", err)
	}
	must(t, nodes[0].PutSignInFlow(ctx(t), "race", "oidc", []byte(`{}`), at(time.Hour)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Go(func() {
			_, err := nodes[i%2].TakeSignInFlow(ctx(t), "race", "oidc", at(time.Minute))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
				return
			}
			if err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d racing takes of one flow won, want 1", won)
	}
}
