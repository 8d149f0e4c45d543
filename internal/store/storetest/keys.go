package storetest

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// hashOf stands in for the HMAC keygate stores for a key or admin token.
func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func fullKey(id, name string) store.Key {
	return store.Key{
		ID:             id,
		Name:           name,
		Env:            "live",
		Prefix:         "kg_live_4fTq",
		Hash:           hashOf(id),
		AllowModels:    []string{"gpt-4o*", "claude-*"},
		AllowProviders: []string{"openai", "anthropic"},
		CreatedAt:      at(0),
		ExpiresAt:      ptr(at(90 * 24 * time.Hour)),
		RevokedAt:      ptr(at(2 * time.Hour)),
		LastUsedAt:     ptr(at(time.Hour)),
	}
}

func bareKey(id, name string) store.Key {
	return store.Key{ID: id, Name: name, Env: "test", Prefix: "kg_test_abcd", Hash: hashOf(id), CreatedAt: at(0)}
}

func checkKey(t testing.TB, got, want store.Key) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Env != want.Env || got.Prefix != want.Prefix {
		t.Errorf("key = %s/%s/%s/%s, want %s/%s/%s/%s",
			got.ID, got.Name, got.Env, got.Prefix, want.ID, want.Name, want.Env, want.Prefix)
	}
	checkBytes(t, "Hash", got.Hash, want.Hash)
	checkList(t, "AllowModels", got.AllowModels, want.AllowModels)
	checkList(t, "AllowProviders", got.AllowProviders, want.AllowProviders)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTimePtr(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	checkTimePtr(t, "RevokedAt", got.RevokedAt, want.RevokedAt)
	checkTimePtr(t, "LastUsedAt", got.LastUsedAt, want.LastUsedAt)
}

func testKeyRoundTrip(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := fullKey("key_full", "ci-deploy")
	must(t, s.CreateKey(ctx(t), k))
	byID, err := s.GetKey(ctx(t), k.ID)
	must(t, err)
	checkKey(t, byID, k)
	byName, err := s.GetKeyByName(ctx(t), k.Name)
	must(t, err)
	checkKey(t, byName, k)
	byHash, err := s.GetKeyByHash(ctx(t), k.Hash)
	must(t, err)
	checkKey(t, byHash, k)
}

func testKeyEmptyOptionalFields(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	nilLists := bareKey("key_nil", "nil-lists")
	emptyLists := bareKey("key_empty", "empty-lists")
	emptyLists.AllowModels, emptyLists.AllowProviders = []string{}, []string{}
	for _, k := range []store.Key{nilLists, emptyLists} {
		must(t, s.CreateKey(ctx(t), k))
		got, err := s.GetKey(ctx(t), k.ID)
		must(t, err)
		checkKey(t, got, k) // lists read back nil, times nil
	}
}

func testKeyConflicts(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := fullKey("key_1", "one")
	must(t, s.CreateKey(ctx(t), k))

	dupID := bareKey("key_1", "two")
	dupName := bareKey("key_2", "one")
	dupHash := bareKey("key_3", "three")
	dupHash.Hash = k.Hash
	for what, c := range map[string]store.Key{"ID": dupID, "name": dupName, "hash": dupHash} {
		err := s.CreateKey(ctx(t), c)
		wantErr(t, err, store.ErrConflict, "CreateKey with a duplicate "+what)
		if !strings.Contains(err.Error(), c.Name) {
			t.Errorf("conflict error %q does not name the key %q", err, c.Name)
		}
	}
	list, err := s.ListKeys(ctx(t))
	must(t, err)
	if len(list) != 1 {
		t.Errorf("after rejected duplicates ListKeys returned %d keys, want 1", len(list))
	}
}

func testKeyNotFound(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.CreateKey(ctx(t), bareKey("key_1", "one")))
	_, err := s.GetKey(ctx(t), "key_missing")
	wantErr(t, err, store.ErrNotFound, "GetKey of an unknown ID")
	_, err = s.GetKeyByName(ctx(t), "missing")
	wantErr(t, err, store.ErrNotFound, "GetKeyByName of an unknown name")
	_, err = s.GetKeyByHash(ctx(t), hashOf("key_missing"))
	wantErr(t, err, store.ErrNotFound, "GetKeyByHash of an unknown hash")
	_, err = s.GetKeyByHash(ctx(t), nil)
	wantErr(t, err, store.ErrNotFound, "GetKeyByHash of an empty hash")
	_, err = s.RevokeKey(ctx(t), "key_missing", at(0))
	wantErr(t, err, store.ErrNotFound, "RevokeKey of an unknown ID")
	wantErr(t, s.TouchKey(ctx(t), "key_missing", at(0)), store.ErrNotFound, "TouchKey of an unknown ID")
}

func testListKeysOrder(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	// Created at the same instant, b and a are ordered by ID; c is older.
	b, a, c := bareKey("key_b", "b"), bareKey("key_a", "a"), bareKey("key_c", "c")
	c.CreatedAt = at(-time.Hour)
	d := bareKey("key_0", "d")
	d.CreatedAt = at(time.Microsecond) // a microsecond later still sorts after
	for _, k := range []store.Key{b, d, a, c} {
		must(t, s.CreateKey(ctx(t), k))
	}
	list, err := s.ListKeys(ctx(t))
	must(t, err)
	var ids []string
	for _, k := range list {
		ids = append(ids, k.ID)
	}
	want := []string{"key_c", "key_a", "key_b", "key_0"}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("ListKeys order = %v, want %v", ids, want)
	}
}

func testRevokeKey(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := bareKey("key_1", "one")
	must(t, s.CreateKey(ctx(t), k))
	first, second := at(time.Hour), at(2*time.Hour)

	got, err := s.RevokeKey(ctx(t), k.ID, first)
	must(t, err)
	want := k
	want.RevokedAt = &first
	checkKey(t, got, want)

	// Revoking again succeeds and keeps the first revocation time.
	got, err = s.RevokeKey(ctx(t), k.ID, second)
	must(t, err)
	checkKey(t, got, want)
	got, err = s.GetKey(ctx(t), k.ID)
	must(t, err)
	checkKey(t, got, want)
}

func testTouchKey(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := bareKey("key_1", "one")
	must(t, s.CreateKey(ctx(t), k))
	other := bareKey("key_2", "two")
	must(t, s.CreateKey(ctx(t), other))

	lastUsed := func() *time.Time {
		t.Helper()
		got, err := s.GetKey(ctx(t), k.ID)
		must(t, err)
		return got.LastUsedAt
	}
	must(t, s.TouchKey(ctx(t), k.ID, at(time.Hour)))
	checkTimePtr(t, "LastUsedAt after first touch", lastUsed(), ptr(at(time.Hour)))
	must(t, s.TouchKey(ctx(t), k.ID, at(3*time.Hour)))
	checkTimePtr(t, "LastUsedAt after later touch", lastUsed(), ptr(at(3*time.Hour)))
	// A late-arriving older touch must not move the time back.
	must(t, s.TouchKey(ctx(t), k.ID, at(2*time.Hour)))
	checkTimePtr(t, "LastUsedAt after older touch", lastUsed(), ptr(at(3*time.Hour)))

	got, err := s.GetKey(ctx(t), other.ID)
	must(t, err)
	checkTimePtr(t, "LastUsedAt of an untouched key", got.LastUsedAt, nil)

	// TouchKeys: many in one transaction, never backwards, deleted ids skipped.
	must(t, s.TouchKeys(ctx(t), []store.KeyUse{
		{ID: k.ID, At: at(time.Hour)}, // older than the stored 3h: kept at 3h
		{ID: other.ID, At: at(4 * time.Hour)},
		{ID: "key_gone", At: at(5 * time.Hour)},
	}))
	checkTimePtr(t, "LastUsedAt after an older batched touch", lastUsed(), ptr(at(3*time.Hour)))
	got, err = s.GetKey(ctx(t), other.ID)
	must(t, err)
	checkTimePtr(t, "LastUsedAt after a batched touch", got.LastUsedAt, ptr(at(4*time.Hour)))
	must(t, s.TouchKeys(ctx(t), nil))
}

func checkAdminToken(t testing.TB, got, want store.AdminToken) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name {
		t.Errorf("admin token = %s/%s, want %s/%s", got.ID, got.Name, want.ID, want.Name)
	}
	checkBytes(t, "Hash", got.Hash, want.Hash)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTimePtr(t, "RevokedAt", got.RevokedAt, want.RevokedAt)
}

func testAdminTokens(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	active := store.AdminToken{ID: "adm_1", Name: "bootstrap", Hash: hashOf("adm_1"), CreatedAt: at(0)}
	revoked := store.AdminToken{ID: "adm_2", Name: "old", Hash: hashOf("adm_2"), CreatedAt: at(0), RevokedAt: ptr(at(time.Hour))}
	must(t, s.CreateAdminToken(ctx(t), active))
	must(t, s.CreateAdminToken(ctx(t), revoked))
	for _, want := range []store.AdminToken{active, revoked} {
		got, err := s.GetAdminTokenByHash(ctx(t), want.Hash)
		must(t, err)
		checkAdminToken(t, got, want)
	}
	_, err := s.GetAdminTokenByHash(ctx(t), hashOf("adm_missing"))
	wantErr(t, err, store.ErrNotFound, "GetAdminTokenByHash of an unknown hash")

	n, err := s.CountAdminTokens(ctx(t))
	must(t, err)
	if n != 1 {
		t.Errorf("CountAdminTokens = %d, want 1 (revoked tokens do not count)", n)
	}

	dupID := store.AdminToken{ID: "adm_1", Name: "x", Hash: hashOf("x"), CreatedAt: at(0)}
	wantErr(t, s.CreateAdminToken(ctx(t), dupID), store.ErrConflict, "CreateAdminToken with a duplicate ID")
	dupHash := store.AdminToken{ID: "adm_3", Name: "y", Hash: active.Hash, CreatedAt: at(0)}
	wantErr(t, s.CreateAdminToken(ctx(t), dupHash), store.ErrConflict, "CreateAdminToken with a duplicate hash")
}

func testAdminTokenRevoke(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	for _, id := range []string{"adm_1", "adm_2", "adm_3"} {
		must(t, s.CreateAdminToken(ctx(t), store.AdminToken{ID: id, Name: id, Hash: hashOf(id), CreatedAt: at(0)}))
	}
	count := func() int {
		t.Helper()
		n, err := s.CountAdminTokens(ctx(t))
		must(t, err)
		return n
	}
	if n := count(); n != 3 {
		t.Fatalf("CountAdminTokens = %d, want 3", n)
	}
	must(t, s.RevokeAdminToken(ctx(t), "adm_2", at(time.Hour)))
	must(t, s.RevokeAdminToken(ctx(t), "adm_2", at(2*time.Hour)))
	if n := count(); n != 2 {
		t.Errorf("CountAdminTokens after revoking one (twice) = %d, want 2", n)
	}
	got, err := s.GetAdminTokenByHash(ctx(t), hashOf("adm_2"))
	must(t, err)
	checkTimePtr(t, "RevokedAt after revoking twice", got.RevokedAt, ptr(at(time.Hour)))
	wantErr(t, s.RevokeAdminToken(ctx(t), "adm_missing", at(0)), store.ErrNotFound, "RevokeAdminToken of an unknown ID")
}
