package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

func testOpen(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	s := Open(t, url)
	want := store.SQLite
	if isPostgresURL(url) {
		want = store.Postgres
	}
	if s.Dialect() != want {
		t.Errorf("Dialect() = %v, want %v", s.Dialect(), want)
	}
	must(t, s.Ping(ctx(t)))
	n, err := s.CountAdminTokens(ctx(t))
	must(t, err)
	if n != 0 {
		t.Errorf("new database has %d admin tokens, want 0", n)
	}
	ps, err := s.ListProviders(ctx(t))
	must(t, err)
	ks, err := s.ListKeys(ctx(t))
	must(t, err)
	if len(ps) != 0 || len(ks) != 0 {
		t.Errorf("new database lists %d providers and %d keys, want none", len(ps), len(ks))
	}
}

func testReopen(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	s, err := store.Open(ctx(t), url)
	must(t, err)
	k := fullKey("key_reopen", "reopen")
	must(t, s.CreateKey(ctx(t), k))
	must(t, s.PutSecretVersion(ctx(t), secretVersion("provider/openai", 1)))
	must(t, s.Close())

	// Opening again must find the schema in place and the data intact.
	s2 := Open(t, url)
	got, err := s2.GetKey(ctx(t), k.ID)
	must(t, err)
	checkKey(t, got, k)
	if _, err := s2.LatestSecretVersion(ctx(t), "provider/openai"); err != nil {
		t.Fatalf("secret lost across reopen: %v", err)
	}
	// A third open while the second is still running, as a CLI next to a server.
	s3 := Open(t, url)
	if _, err := s3.GetKeyByName(ctx(t), "reopen"); err != nil {
		t.Fatalf("second concurrent store cannot read: %v", err)
	}
}

func testConcurrentOpen(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*store.Store, n)
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = store.Open(ctx(t), url) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("open %d of %d at once: %v", i+1, n, errs[i])
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	must(t, stores[0].CreateProvider(ctx(t), fullProvider("prv_1", "openai")))
	if _, err := stores[n-1].GetProvider(ctx(t), "openai"); err != nil {
		t.Fatalf("store opened concurrently cannot see another's write: %v", err)
	}
}

func fullProvider(id, name string) store.Provider {
	return store.Provider{
		ID:        id,
		Name:      name,
		Dialect:   "openai",
		BaseURL:   "https://api.openai.com/v1",
		Models:    []string{"gpt-*", "o1-*", "text-embedding-3-small"},
		IsDefault: true,
		SecretID:  "provider/" + name,
		CreatedAt: at(0),
		Env:       "prod",
		Preset:    "azure-openai", APIVersion: "2024-10-21",
	}
}

func checkProvider(t testing.TB, got, want store.Provider) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Dialect != want.Dialect ||
		got.BaseURL != want.BaseURL || got.IsDefault != want.IsDefault || got.SecretID != want.SecretID ||
		got.Env != want.Env || got.Preset != want.Preset || got.APIVersion != want.APIVersion {
		t.Errorf("provider = %+v, want %+v", got, want)
	}
	checkList(t, "Models", got.Models, want.Models)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
}

func testProviders(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	full := fullProvider("prv_full", "openai")
	bare := store.Provider{ID: "prv_bare", Name: "anthropic", Dialect: "anthropic",
		BaseURL: "https://api.anthropic.com", SecretID: "provider/anthropic", CreatedAt: at(time.Hour)}
	empty := bare
	empty.ID, empty.Name, empty.Models = "prv_empty", "zeta", []string{}
	for _, p := range []store.Provider{full, bare, empty} {
		must(t, s.CreateProvider(ctx(t), p))
	}
	for _, want := range []store.Provider{full, bare, empty} {
		got, err := s.GetProvider(ctx(t), want.Name)
		must(t, err)
		checkProvider(t, got, want)
	}
	list, err := s.ListProviders(ctx(t))
	must(t, err)
	wantOrder := []store.Provider{bare, full, empty} // anthropic, openai, zeta
	if len(list) != len(wantOrder) {
		t.Fatalf("ListProviders returned %d providers, want %d", len(list), len(wantOrder))
	}
	for i := range list {
		checkProvider(t, list[i], wantOrder[i])
	}
	_, err = s.GetProvider(ctx(t), "missing")
	wantErr(t, err, store.ErrNotFound, "GetProvider of an unknown name")
}

func testProviderConflicts(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.CreateProvider(ctx(t), fullProvider("prv_1", "openai")))
	err := s.CreateProvider(ctx(t), fullProvider("prv_1", "other"))
	wantErr(t, err, store.ErrConflict, "CreateProvider with a duplicate ID")
	err = s.CreateProvider(ctx(t), fullProvider("prv_2", "openai"))
	wantErr(t, err, store.ErrConflict, "CreateProvider with a duplicate name")
	// The rejected writes must not have replaced the original.
	got, err := s.GetProvider(ctx(t), "openai")
	must(t, err)
	if got.ID != "prv_1" {
		t.Errorf("provider openai has ID %q after rejected duplicate, want prv_1", got.ID)
	}
	if _, err := s.GetProvider(ctx(t), "other"); err == nil {
		t.Error("provider with a duplicate ID was stored")
	}
}

func testProviderDelete(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.CreateProvider(ctx(t), fullProvider("prv_1", "openai")))
	must(t, s.CreateProvider(ctx(t), fullProvider("prv_2", "groq")))
	must(t, s.DeleteProvider(ctx(t), "openai"))
	_, err := s.GetProvider(ctx(t), "openai")
	wantErr(t, err, store.ErrNotFound, "GetProvider after delete")
	wantErr(t, s.DeleteProvider(ctx(t), "openai"), store.ErrNotFound, "second DeleteProvider")
	if _, err := s.GetProvider(ctx(t), "groq"); err != nil {
		t.Fatalf("deleting one provider affected another: %v", err)
	}
	// The name is free again.
	must(t, s.CreateProvider(ctx(t), fullProvider("prv_3", "openai")))
}

// secretVersion returns a vault record version whose bytes cover every byte
// value, so any text conversion along the way would corrupt it.
func secretVersion(id string, version int) store.SecretVersion {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return store.SecretVersion{
		ID:         id,
		Version:    version,
		Format:     1,
		KEKID:      "kek-2025",
		WrappedDEK: append([]byte{0, byte(version)}, all[:40]...),
		Ciphertext: append([]byte{byte(version)}, all...),
		CreatedAt:  at(time.Duration(version) * time.Minute),
	}
}

func checkSecret(t testing.TB, got, want store.SecretVersion) {
	t.Helper()
	if got.ID != want.ID || got.Version != want.Version || got.Format != want.Format || got.KEKID != want.KEKID {
		t.Errorf("secret version = %+v, want %+v", got, want)
	}
	checkBytes(t, "WrappedDEK", got.WrappedDEK, want.WrappedDEK)
	checkBytes(t, "Ciphertext", got.Ciphertext, want.Ciphertext)
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
}

func testSecretVersions(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	_, err := s.LatestSecretVersion(ctx(t), "provider/openai")
	wantErr(t, err, store.ErrNotFound, "LatestSecretVersion of an unknown record")

	// Versions arrive out of order; latest means highest, not newest row.
	for _, v := range []int{1, 3, 2} {
		must(t, s.PutSecretVersion(ctx(t), secretVersion("provider/openai", v)))
	}
	must(t, s.PutSecretVersion(ctx(t), secretVersion("provider/openai-extra", 7)))
	for _, v := range []int{1, 2, 3} {
		got, err := s.GetSecretVersion(ctx(t), "provider/openai", v)
		must(t, err)
		checkSecret(t, got, secretVersion("provider/openai", v))
	}
	latest, err := s.LatestSecretVersion(ctx(t), "provider/openai")
	must(t, err)
	checkSecret(t, latest, secretVersion("provider/openai", 3))

	_, err = s.GetSecretVersion(ctx(t), "provider/openai", 4)
	wantErr(t, err, store.ErrNotFound, "GetSecretVersion of an unknown version")
	_, err = s.GetSecretVersion(ctx(t), "provider/other", 1)
	wantErr(t, err, store.ErrNotFound, "GetSecretVersion of an unknown record")
}

func testSecretConflict(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	first := secretVersion("system/pepper", 1)
	must(t, s.PutSecretVersion(ctx(t), first))
	second := secretVersion("system/pepper", 1)
	second.Ciphertext = []byte("different")
	wantErr(t, s.PutSecretVersion(ctx(t), second), store.ErrConflict, "PutSecretVersion of an existing version")
	got, err := s.GetSecretVersion(ctx(t), "system/pepper", 1)
	must(t, err)
	checkSecret(t, got, first)
}

func testSecretDelete(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	for v := 1; v <= 3; v++ {
		must(t, s.PutSecretVersion(ctx(t), secretVersion("provider/openai", v)))
	}
	must(t, s.PutSecretVersion(ctx(t), secretVersion("provider/groq", 1)))
	must(t, s.DeleteSecret(ctx(t), "provider/openai"))
	for v := 1; v <= 3; v++ {
		_, err := s.GetSecretVersion(ctx(t), "provider/openai", v)
		wantErr(t, err, store.ErrNotFound, "GetSecretVersion after DeleteSecret")
	}
	_, err := s.LatestSecretVersion(ctx(t), "provider/openai")
	wantErr(t, err, store.ErrNotFound, "LatestSecretVersion after DeleteSecret")
	wantErr(t, s.DeleteSecret(ctx(t), "provider/openai"), store.ErrNotFound, "second DeleteSecret")
	if _, err := s.LatestSecretVersion(ctx(t), "provider/groq"); err != nil {
		t.Fatalf("DeleteSecret removed another record: %v", err)
	}
}
