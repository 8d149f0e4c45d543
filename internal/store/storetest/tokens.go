package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

func testKeyScopesSuspendExpiry(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := fullKey("key_1", "etl")
	k.AllowPaths = []string{"POST /v1/embeddings"}
	k.AllowIPs = []string{"10.0.0.0/8", "2001:db8::/32"}
	k.Hours = "mon-fri 08:00-20:00 Europe/Berlin"
	k.RotatedFrom = "key_0"
	k.AllowServices = []string{"github"}
	must(t, s.CreateKey(ctx(t), k))
	got, err := s.GetKey(ctx(t), "key_1")
	must(t, err)
	checkList(t, "AllowServices", got.AllowServices, []string{"github"})
	checkList(t, "AllowPaths", got.AllowPaths, k.AllowPaths)
	checkList(t, "AllowIPs", got.AllowIPs, k.AllowIPs)
	if got.Hours != k.Hours || got.RotatedFrom != "key_0" || got.SuspendedAt != nil {
		t.Fatalf("key %+v", got)
	}
	got, err = s.SetKeyScopes(ctx(t), "key_1", nil, []string{"192.0.2.0/24"}, "")
	must(t, err)
	checkList(t, "AllowPaths", got.AllowPaths, nil)
	checkList(t, "AllowIPs", got.AllowIPs, []string{"192.0.2.0/24"})
	if got.Hours != "" {
		t.Fatalf("hours %q", got.Hours)
	}
	got, err = s.SetKeyServices(ctx(t), "key_1", []string{"stripe", "slack"})
	must(t, err)
	checkList(t, "AllowServices after SetKeyServices", got.AllowServices, []string{"stripe", "slack"})
	checkList(t, "AllowIPs kept by SetKeyServices", got.AllowIPs, []string{"192.0.2.0/24"})
	_, err = s.SetKeyServices(ctx(t), "key_x", nil)
	wantErr(t, err, store.ErrNotFound, "SetKeyServices of an unknown key")
	got, err = s.SetKeySuspended(ctx(t), "key_1", ptr(at(time.Hour)))
	must(t, err)
	checkTimePtr(t, "SuspendedAt", got.SuspendedAt, ptr(at(time.Hour)))
	got, err = s.SetKeySuspended(ctx(t), "key_1", nil)
	must(t, err)
	checkTimePtr(t, "SuspendedAt", got.SuspendedAt, nil)
	_, err = s.SetKeySuspended(ctx(t), "key_x", nil)
	wantErr(t, err, store.ErrNotFound, "SetKeySuspended of an unknown key")
	got, err = s.SetKeyStepUp(ctx(t), "key_1", ptr(at(2*time.Hour)))
	must(t, err)
	checkTimePtr(t, "StepUpUntil", got.StepUpUntil, ptr(at(2*time.Hour)))
	got, err = s.GetKey(ctx(t), "key_1")
	must(t, err)
	checkTimePtr(t, "StepUpUntil read back", got.StepUpUntil, ptr(at(2*time.Hour)))
	got, err = s.SetKeyStepUp(ctx(t), "key_1", nil)
	must(t, err)
	checkTimePtr(t, "StepUpUntil lifted", got.StepUpUntil, nil)
	_, err = s.SetKeyStepUp(ctx(t), "key_x", nil)
	wantErr(t, err, store.ErrNotFound, "SetKeyStepUp of an unknown key")

	// Expiry only moves earlier.
	got, err = s.ShortenKeyExpiry(ctx(t), "key_1", at(48*time.Hour))
	must(t, err)
	want := *k.ExpiresAt
	if at(48 * time.Hour).Before(want) {
		want = at(48 * time.Hour)
	}
	checkTimePtr(t, "ExpiresAt", got.ExpiresAt, &want)
	got, err = s.ShortenKeyExpiry(ctx(t), "key_1", want.Add(time.Hour))
	must(t, err)
	checkTimePtr(t, "ExpiresAt after a later time", got.ExpiresAt, &want)
	b := bareKey("key_2", "no-expiry")
	must(t, s.CreateKey(ctx(t), b))
	got, err = s.ShortenKeyExpiry(ctx(t), "key_2", at(time.Hour))
	must(t, err)
	checkTimePtr(t, "ExpiresAt of a key that never expired", got.ExpiresAt, ptr(at(time.Hour)))

	p := fullProvider("prv_1", "prod-openai")
	p.Env = "prod"
	must(t, s.CreateProvider(ctx(t), p))
	gp, err := s.GetProvider(ctx(t), "prod-openai")
	must(t, err)
	if gp.Env != "prod" {
		t.Fatalf("provider env %q", gp.Env)
	}
}

func testRevocations(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	a, b := Open(t, url), Open(t, url)
	seq0, err := b.LatestRevocationSeq(ctx(t))
	must(t, err)
	if seq0 != 0 {
		t.Fatalf("new database: latest %d", seq0)
	}
	s1, err := a.AddRevocation(ctx(t), store.Revocation{Kind: "key", Subject: "key_1", At: at(0), Until: at(time.Hour)})
	must(t, err)
	s2, err := a.AddRevocation(ctx(t), store.Revocation{Kind: "family", Subject: "fam_1", At: at(time.Minute), Until: at(2 * time.Hour)})
	must(t, err)
	if s2 <= s1 {
		t.Fatalf("sequence %d then %d", s1, s2)
	}
	got, err := b.RevocationsSince(ctx(t), 0)
	must(t, err)
	if len(got) != 2 || got[0].Subject != "key_1" || got[1].Kind != "family" || got[1].Seq != s2 {
		t.Fatalf("revocations %+v", got)
	}
	checkTime(t, "Until", got[1].Until, at(2*time.Hour))
	got, err = b.RevocationsSince(ctx(t), s1)
	must(t, err)
	if len(got) != 1 || got[0].Seq != s2 {
		t.Fatalf("since %d: %+v", s1, got)
	}
	n, err := a.PruneRevocations(ctx(t), at(90*time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("pruned %d", n)
	}
	if latest, _ := b.LatestRevocationSeq(ctx(t)); latest != s2 {
		t.Fatalf("latest %d, want %d", latest, s2)
	}
}

func testSigningKeysAndFamilies(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := store.SigningKey{KID: "k1", Alg: "EdDSA", PublicKey: []byte{1, 2, 3}, CreatedAt: at(0), SignFrom: at(0), SignUntil: at(time.Hour), PublishUntil: at(2 * time.Hour)}
	must(t, s.PutSigningKey(ctx(t), k))
	wantErr(t, s.PutSigningKey(ctx(t), k), store.ErrConflict, "PutSigningKey of a known kid")
	ks, err := s.ListSigningKeys(ctx(t))
	must(t, err)
	if len(ks) != 1 || ks[0].KID != "k1" || string(ks[0].PublicKey) != "\x01\x02\x03" {
		t.Fatalf("signing keys %+v", ks)
	}
	checkTime(t, "PublishUntil", ks[0].PublishUntil, at(2*time.Hour))

	f := store.TokenFamily{ID: "fam_1", KeyID: "key_1", Scope: []byte(`{"models":["gpt-4o"]}`), Cnf: "thumb", AMR: []string{"otp"}, CreatedAt: at(0), ExpiresAt: at(24 * time.Hour), UserID: "usr_1"}
	must(t, s.CreateTokenFamily(ctx(t), f))
	must(t, s.CreateTokenFamily(ctx(t), store.TokenFamily{ID: "fam_2", KeyID: "key_1", CreatedAt: at(0), ExpiresAt: at(time.Hour)}))
	got, err := s.GetTokenFamily(ctx(t), "fam_1")
	must(t, err)
	if string(got.Scope) != string(f.Scope) || got.Cnf != "thumb" || len(got.AMR) != 1 || got.RevokedAt != nil || got.UserID != "usr_1" {
		t.Fatalf("family %+v", got)
	}
	if got, _ := s.GetTokenFamily(ctx(t), "fam_2"); got.UserID != "" {
		t.Fatalf("a key's own family has user %q", got.UserID)
	}
	must(t, s.RevokeTokenFamily(ctx(t), "fam_1", at(time.Minute), "refresh token reuse"))
	must(t, s.RevokeTokenFamily(ctx(t), "fam_1", at(time.Hour), "later"))
	got, _ = s.GetTokenFamily(ctx(t), "fam_1")
	checkTimePtr(t, "RevokedAt", got.RevokedAt, ptr(at(time.Minute)))
	if got.Reason != "refresh token reuse" {
		t.Fatalf("reason %q", got.Reason)
	}
	wantErr(t, s.RevokeTokenFamily(ctx(t), "fam_x", at(0), "x"), store.ErrNotFound, "RevokeTokenFamily of an unknown family")
	n, err := s.RevokeKeyFamilies(ctx(t), "key_1", at(2*time.Minute), "key revoked")
	must(t, err)
	if n != 1 {
		t.Fatalf("RevokeKeyFamilies revoked %d, want 1 (fam_1 was revoked already)", n)
	}

	rt := store.RefreshToken{Hash: hashOf("rt1"), FamilyID: "fam_2", CreatedAt: at(0), ExpiresAt: at(time.Hour)}
	must(t, s.PutRefreshToken(ctx(t), rt))
	_, err = s.UseRefreshToken(ctx(t), hashOf("nope"), at(time.Second))
	wantErr(t, err, store.ErrNotFound, "UseRefreshToken of an unknown token")
	// Concurrent exchanges of one token: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, reuses := 0, 0
	for range 8 {
		wg.Go(func() {
			got, err := s.UseRefreshToken(ctx(t), rt.Hash, at(time.Second))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				if got.FamilyID != "fam_2" {
					t.Errorf("family %q", got.FamilyID)
				}
			case errors.Is(err, store.ErrTokenReused):
				reuses++
				if got.FamilyID != "fam_2" || got.UsedAt == nil {
					t.Errorf("a reused token's record: %+v", got)
				}
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || reuses != 7 {
		t.Fatalf("%d exchanges won and %d saw reuse; want 1 and 7", wins, reuses)
	}
}

func testKeyClientCert(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.CreateKey(ctx(t), bareKey("key_1", "workload")))
	k, err := s.SetKeyClientCert(ctx(t), "key_1", "uri:spiffe://example.org/agent")
	must(t, err)
	if k.ClientCert != "uri:spiffe://example.org/agent" {
		t.Fatalf("client cert %q", k.ClientCert)
	}
	got, _ := s.GetKey(ctx(t), "key_1")
	if got.ClientCert != k.ClientCert {
		t.Fatalf("read back %q", got.ClientCert)
	}
	k, err = s.SetKeyClientCert(ctx(t), "key_1", "")
	must(t, err)
	if k.ClientCert != "" {
		t.Fatalf("cleared: %q", k.ClientCert)
	}
	_, err = s.SetKeyClientCert(ctx(t), "key_x", "")
	wantErr(t, err, store.ErrNotFound, "SetKeyClientCert of an unknown key")
}

func testKeyHistory(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	_, err := s.LoadKeyHistory(ctx(t), "key_1")
	wantErr(t, err, store.ErrNotFound, "LoadKeyHistory of a key without one")
	must(t, s.SaveKeyHistories(ctx(t), []store.KeyHistory{{KeyID: "key_1", Data: []byte(`{"a":1}`), At: at(0)}}))
	must(t, s.SaveKeyHistories(ctx(t), []store.KeyHistory{
		{KeyID: "key_1", Data: []byte(`{"a":2}`), At: at(time.Minute)},
		{KeyID: "key_2", Data: []byte(`{"b":1}`), At: at(time.Minute)},
	}))
	must(t, s.SaveKeyHistories(ctx(t), nil))
	for id, want := range map[string]string{"key_1": `{"a":2}`, "key_2": `{"b":1}`} {
		got, err := s.LoadKeyHistory(ctx(t), id)
		must(t, err)
		if string(got) != want {
			t.Fatalf("history of %s: %s, want %s", id, got, want)
		}
	}
}
