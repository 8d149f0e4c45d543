package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

func testAdminTokenRole(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.CreateAdminToken(ctx(t), store.AdminToken{ID: "adm_1", Name: "a", Hash: hashOf("adm_1"), CreatedAt: at(0)}))
	must(t, s.CreateAdminToken(ctx(t), store.AdminToken{ID: "adm_2", Name: "o", Hash: hashOf("adm_2"), Role: "operator", CreatedAt: at(time.Second)}))
	got, err := s.GetAdminTokenByHash(ctx(t), hashOf("adm_1"))
	must(t, err)
	if got.Role != "owner" {
		t.Errorf("a token of no user stored without a role reads back as %q, want owner", got.Role)
	}
	got, err = s.GetAdminTokenByHash(ctx(t), hashOf("adm_2"))
	must(t, err)
	if got.Role != "operator" {
		t.Errorf("role = %q, want operator", got.Role)
	}
	all, err := s.ListAdminTokens(ctx(t))
	must(t, err)
	if len(all) != 2 || all[0].ID != "adm_1" || all[1].ID != "adm_2" {
		t.Errorf("ListAdminTokens = %+v, want adm_1 then adm_2", all)
	}
}

func testSecretMetaLifecycle(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	m := store.SecretMeta{Name: "payments/stripe", RecordID: "secret/sec_1", CreatedAt: at(0), UpdatedAt: at(0), Owner: "rotation:bot"}
	must(t, s.CreateSecretMeta(ctx(t), m))
	wantErr(t, s.CreateSecretMeta(ctx(t), store.SecretMeta{Name: m.Name, RecordID: "secret/sec_2", CreatedAt: at(0), UpdatedAt: at(0)}),
		store.ErrConflict, "CreateSecretMeta with a taken name")
	wantErr(t, s.CreateSecretMeta(ctx(t), store.SecretMeta{Name: "other", RecordID: m.RecordID, CreatedAt: at(0), UpdatedAt: at(0)}),
		store.ErrConflict, "CreateSecretMeta with a taken record id")

	got, err := s.GetSecretMeta(ctx(t), m.Name)
	must(t, err)
	if got.CurrentVersion != 0 || got.Versions != 0 || got.RecordID != m.RecordID || got.Owner != "rotation:bot" {
		t.Errorf("new secret = %+v, want no versions", got)
	}
	for v := 1; v <= 3; v++ {
		must(t, s.PutSecretVersion(ctx(t), secretVersion(m.RecordID, v)))
	}
	must(t, s.TouchSecretMeta(ctx(t), m.Name, at(time.Hour)))
	got, err = s.GetSecretMeta(ctx(t), m.Name)
	must(t, err)
	if got.CurrentVersion != 3 || got.Versions != 3 {
		t.Errorf("CurrentVersion, Versions = %d, %d; want 3, 3", got.CurrentVersion, got.Versions)
	}
	checkTime(t, "UpdatedAt", got.UpdatedAt, at(time.Hour))
	checkTime(t, "CreatedAt", got.CreatedAt, at(0))
	wantErr(t, s.TouchSecretMeta(ctx(t), "missing", at(0)), store.ErrNotFound, "TouchSecretMeta of an unknown secret")

	must(t, s.CreateSecretMeta(ctx(t), store.SecretMeta{Name: "a/first", RecordID: "secret/sec_0", CreatedAt: at(0), UpdatedAt: at(0)}))
	must(t, s.SoftDeleteSecret(ctx(t), m.Name, at(2*time.Hour), at(72*time.Hour)))
	wantErr(t, s.SoftDeleteSecret(ctx(t), m.Name, at(3*time.Hour), at(96*time.Hour)), store.ErrNotFound, "second SoftDeleteSecret")
	live, err := s.ListSecretMeta(ctx(t), false)
	must(t, err)
	if len(live) != 1 || live[0].Name != "a/first" {
		t.Errorf("live secrets = %+v, want only a/first", live)
	}
	all, err := s.ListSecretMeta(ctx(t), true)
	must(t, err)
	if len(all) != 2 || all[0].Name != "a/first" || all[1].Name != m.Name {
		t.Fatalf("all secrets = %+v, want a/first then %s", all, m.Name)
	}
	checkTimePtr(t, "DeletedAt", all[1].DeletedAt, ptr(at(2*time.Hour)))
	checkTimePtr(t, "PurgeAt", all[1].PurgeAt, ptr(at(72*time.Hour)))

	due, err := s.SecretsDueForPurge(ctx(t), at(71*time.Hour))
	must(t, err)
	if len(due) != 0 {
		t.Errorf("due for purge before the purge time: %v", due)
	}
	due, err = s.SecretsDueForPurge(ctx(t), at(72*time.Hour))
	must(t, err)
	if len(due) != 1 || due[0] != m.Name {
		t.Errorf("due for purge = %v, want [%s]", due, m.Name)
	}

	must(t, s.RestoreSecretMeta(ctx(t), m.Name, at(4*time.Hour)))
	wantErr(t, s.RestoreSecretMeta(ctx(t), m.Name, at(4*time.Hour)), store.ErrNotFound, "RestoreSecretMeta of a live secret")
	got, err = s.GetSecretMeta(ctx(t), m.Name)
	must(t, err)
	if got.DeletedAt != nil || got.PurgeAt != nil || got.Versions != 3 {
		t.Errorf("restored secret = %+v, want live with its 3 versions", got)
	}

	must(t, s.PurgeSecret(ctx(t), m.Name))
	_, err = s.GetSecretMeta(ctx(t), m.Name)
	wantErr(t, err, store.ErrNotFound, "GetSecretMeta after PurgeSecret")
	vs, err := s.ListSecretVersions(ctx(t), m.RecordID)
	must(t, err)
	if len(vs) != 0 {
		t.Errorf("PurgeSecret left %d versions", len(vs))
	}
	wantErr(t, s.PurgeSecret(ctx(t), m.Name), store.ErrNotFound, "second PurgeSecret")
	if _, err := s.GetSecretMeta(ctx(t), "a/first"); err != nil {
		t.Errorf("PurgeSecret touched another secret: %v", err)
	}
}

func testDestroySupersededVersions(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	for v := 1; v <= 3; v++ {
		must(t, s.PutSecretVersion(ctx(t), secretVersion("provider/prv_1", v)))
	}
	must(t, s.PutSecretVersion(ctx(t), secretVersion("provider/prv_2", 1)))
	n, err := s.ScheduleDestroy(ctx(t), "provider/prv_1", 3, at(time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("ScheduleDestroy set %d versions, want 2", n)
	}
	// A later schedule keeps the earlier time.
	n, err = s.ScheduleDestroy(ctx(t), "provider/prv_1", 3, at(48*time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("second ScheduleDestroy set %d versions, want 0", n)
	}
	vs, err := s.ListSecretVersions(ctx(t), "provider/prv_1")
	must(t, err)
	if len(vs) != 3 {
		t.Fatalf("%d versions, want 3", len(vs))
	}
	checkTimePtr(t, "v1 DestroyAt", vs[0].DestroyAt, ptr(at(time.Hour)))
	checkTimePtr(t, "v3 DestroyAt", vs[2].DestroyAt, nil)

	n, err = s.DestroyDueVersions(ctx(t), at(59*time.Minute))
	must(t, err)
	if n != 0 {
		t.Errorf("DestroyDueVersions before the time destroyed %d", n)
	}
	n, err = s.DestroyDueVersions(ctx(t), at(time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("DestroyDueVersions destroyed %d, want 2", n)
	}
	latest, err := s.LatestSecretVersion(ctx(t), "provider/prv_1")
	must(t, err)
	if latest.Version != 3 {
		t.Errorf("latest = %d, want 3", latest.Version)
	}
	_, err = s.GetSecretVersion(ctx(t), "provider/prv_1", 1)
	wantErr(t, err, store.ErrNotFound, "a destroyed version")

	// Even a newest version marked for destruction survives: a record
	// always keeps its current value.
	v := secretVersion("provider/prv_3", 1)
	v.DestroyAt = ptr(at(0))
	must(t, s.PutSecretVersion(ctx(t), v))
	_, err = s.DestroyDueVersions(ctx(t), at(100*time.Hour))
	must(t, err)
	if _, err := s.GetSecretVersion(ctx(t), "provider/prv_3", 1); err != nil {
		t.Errorf("the newest version was destroyed: %v", err)
	}
}

func testRewrap(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	for i, id := range []string{"provider/a", "secret/b", "system/kek-url/x", "secret/c"} {
		v := secretVersion(id, 1)
		if i == 3 {
			v.KEKID = "new"
		}
		must(t, s.PutSecretVersion(ctx(t), v))
	}
	const exclude = "system/kek-url/%"
	n, err := s.CountNotWrappedBy(ctx(t), "new", exclude)
	must(t, err)
	if n != 2 {
		t.Errorf("CountNotWrappedBy = %d, want 2", n)
	}
	cands, err := s.RewrapCandidates(ctx(t), "new", exclude, "", 0, 1)
	must(t, err)
	if len(cands) != 1 || cands[0].ID != "provider/a" {
		t.Fatalf("RewrapCandidates(limit 1) = %+v, want provider/a", cands)
	}
	next, err := s.RewrapCandidates(ctx(t), "new", exclude, cands[0].ID, cands[0].Version, 10)
	must(t, err)
	if len(next) != 1 || next[0].ID != "secret/b" {
		t.Fatalf("RewrapCandidates after provider/a = %+v, want secret/b", next)
	}
	cands, err = s.RewrapCandidates(ctx(t), "new", exclude, "", 0, 10)
	must(t, err)
	if len(cands) != 2 || cands[1].ID != "secret/b" {
		t.Fatalf("RewrapCandidates = %d rows, want provider/a and secret/b", len(cands))
	}
	ok, err := s.Rewrap(ctx(t), cands[0], "new", []byte("rewrapped"))
	must(t, err)
	if !ok {
		t.Fatal("Rewrap of an unchanged version reported no change")
	}
	// The same stale read cannot rewrap again.
	ok, err = s.Rewrap(ctx(t), cands[0], "new", []byte("other"))
	must(t, err)
	if ok {
		t.Error("Rewrap from a stale read replaced the data key")
	}
	got, err := s.GetSecretVersion(ctx(t), "provider/a", 1)
	must(t, err)
	checkBytes(t, "WrappedDEK", got.WrappedDEK, []byte("rewrapped"))
	checkBytes(t, "Ciphertext", got.Ciphertext, cands[0].Ciphertext)
	if got.KEKID != "new" {
		t.Errorf("KEKID = %q, want new", got.KEKID)
	}

	counts, err := s.CountByKEK(ctx(t))
	must(t, err)
	want := []store.KEKCount{{KEKID: "kek-2025", Format: 1, Versions: 2}, {KEKID: "new", Format: 1, Versions: 2}}
	if len(counts) != len(want) || counts[0] != want[0] || counts[1] != want[1] {
		t.Errorf("CountByKEK = %+v, want %+v", counts, want)
	}
}

func testListAndDeleteVersions(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	for _, id := range []string{"system/kek-url/b", "system/kek-url/a", "system/kek-urlx", "secret/kek-url/c"} {
		must(t, s.PutSecretVersion(ctx(t), secretVersion(id, 1)))
	}
	must(t, s.PutSecretVersion(ctx(t), secretVersion("system/kek-url/a", 2)))
	got, err := s.ListSecretVersionsLike(ctx(t), "system/kek-url/%")
	must(t, err)
	if len(got) != 3 || got[0].ID != "system/kek-url/a" || got[0].Version != 1 || got[1].Version != 2 || got[2].ID != "system/kek-url/b" {
		t.Fatalf("ListSecretVersionsLike = %+v, want a v1, a v2, b v1", got)
	}
	checkBytes(t, "WrappedDEK", got[0].WrappedDEK, secretVersion("system/kek-url/a", 1).WrappedDEK)

	// A version changed since it was read (rewrapped) is not deleted.
	stale := got[0]
	ok, err := s.Rewrap(ctx(t), stale, "new", []byte("rewrapped"))
	must(t, err)
	if !ok {
		t.Fatal("Rewrap reported no change")
	}
	ok, err = s.DeleteSecretVersion(ctx(t), stale)
	must(t, err)
	if ok {
		t.Error("DeleteSecretVersion deleted a version that was rewrapped after it was read")
	}
	ok, err = s.DeleteSecretVersion(ctx(t), got[1])
	must(t, err)
	if !ok {
		t.Error("DeleteSecretVersion of an unchanged version reported no change")
	}
	ok, err = s.DeleteSecretVersion(ctx(t), got[1])
	must(t, err)
	if ok {
		t.Error("deleting a deleted version reported a change")
	}
	left, err := s.ListSecretVersionsLike(ctx(t), "system/kek-url/%")
	must(t, err)
	if len(left) != 2 || left[0].Version != 1 || left[0].KEKID != "new" || left[1].ID != "system/kek-url/b" {
		t.Fatalf("after the deletes: %+v, want a v1 (rewrapped) and b v1", left)
	}
}

func testKEKRecords(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	recs, err := s.ListKEKRecords(ctx(t))
	must(t, err)
	if len(recs) != 0 {
		t.Fatalf("new database has %d KEK records", len(recs))
	}
	a := store.KEKRecord{ID: "passphrase:aa", Kind: "passphrase", Params: []byte(`{"salt":"AAAA"}`), CreatedAt: at(0)}
	b := store.KEKRecord{ID: "local:bb", Kind: "file", CreatedAt: at(time.Minute)}
	must(t, s.PutKEKRecord(ctx(t), a))
	must(t, s.PutKEKRecord(ctx(t), b))
	wantErr(t, s.PutKEKRecord(ctx(t), a), store.ErrConflict, "PutKEKRecord of a recorded id")
	recs, err = s.ListKEKRecords(ctx(t))
	must(t, err)
	if len(recs) != 2 || recs[0].ID != a.ID || string(recs[0].Params) != string(a.Params) || recs[1].Kind != "file" || string(recs[1].Params) != "{}" {
		t.Errorf("ListKEKRecords = %+v", recs)
	}
	checkTime(t, "CreatedAt", recs[0].CreatedAt, at(0))
}

func testKEKRotations(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	_, err := s.LatestKEKRotation(ctx(t))
	wantErr(t, err, store.ErrNotFound, "LatestKEKRotation with none")
	first := store.KEKRotation{ID: "rot_1", FromKEK: "a", ToKEK: "b", BatchSize: 100, BatchInterval: 10 * time.Millisecond, StartedAt: at(0), HeartbeatAt: at(0)}
	second := store.KEKRotation{ID: "rot_2", FromKEK: "b", ToKEK: "c", BatchSize: 5, StartedAt: at(time.Hour), HeartbeatAt: at(time.Hour)}
	must(t, s.CreateKEKRotation(ctx(t), first))
	must(t, s.CreateKEKRotation(ctx(t), second))
	wantErr(t, s.CreateKEKRotation(ctx(t), first), store.ErrConflict, "CreateKEKRotation of a recorded id")

	must(t, s.KEKRotationProgress(ctx(t), "rot_2", 5, "", at(2*time.Hour)))
	must(t, s.KEKRotationProgress(ctx(t), "rot_2", 3, "KMS unreachable", at(3*time.Hour)))
	wantErr(t, s.KEKRotationProgress(ctx(t), "rot_9", 1, "", at(0)), store.ErrNotFound, "progress of an unknown rotation")
	got, err := s.LatestKEKRotation(ctx(t))
	must(t, err)
	if got.ID != "rot_2" || got.Rewrapped != 8 || got.LastError != "KMS unreachable" || got.FinishedAt != nil || got.BatchSize != 5 {
		t.Errorf("latest rotation = %+v", got)
	}
	checkTime(t, "HeartbeatAt", got.HeartbeatAt, at(3*time.Hour))

	must(t, s.FinishKEKRotation(ctx(t), "rot_2", at(4*time.Hour)))
	must(t, s.FinishKEKRotation(ctx(t), "rot_2", at(5*time.Hour)))
	all, err := s.ListKEKRotations(ctx(t))
	must(t, err)
	if len(all) != 2 || all[0].ID != "rot_1" || all[0].BatchInterval != 10*time.Millisecond {
		t.Fatalf("ListKEKRotations = %+v", all)
	}
	checkTimePtr(t, "FinishedAt", all[1].FinishedAt, ptr(at(4*time.Hour)))
	if all[1].LastError != "" {
		t.Errorf("a finished rotation keeps error %q", all[1].LastError)
	}
}

func testSnapshot(t *testing.T, newURL func(testing.TB) string) {
	src := Open(t, newURL(t))
	must(t, src.CreateProvider(ctx(t), fullProvider("prv_1", "openai")))
	for v := 1; v <= 2; v++ {
		must(t, src.PutSecretVersion(ctx(t), secretVersion("provider/prv_1", v)))
	}
	must(t, src.PutSecretVersion(ctx(t), secretVersion("system/key-pepper", 1)))
	must(t, src.CreateSecretMeta(ctx(t), store.SecretMeta{Name: "payments/stripe", RecordID: "secret/sec_1", CreatedAt: at(0), UpdatedAt: at(0)}))
	must(t, src.PutSecretVersion(ctx(t), secretVersion("secret/sec_1", 1)))
	must(t, src.CreateGroup(ctx(t), store.Group{Name: "team", Limits: []byte(`{"rpm":5}`), CreatedAt: at(0)}))
	withLimits := fullKey("key_1", "ci")
	withLimits.Limits, withLimits.Group = []byte(`{"tpm":9}`), "team"
	must(t, src.CreateKey(ctx(t), withLimits))
	must(t, src.CreateAdminToken(ctx(t), store.AdminToken{ID: "adm_1", Name: "bootstrap", Hash: hashOf("adm_1"), Role: "admin", CreatedAt: at(0)}))
	must(t, src.PutKEKRecord(ctx(t), store.KEKRecord{ID: "passphrase:aa", Kind: "passphrase", Params: []byte(`{"salt":"AAAA"}`), CreatedAt: at(0)}))
	must(t, src.CreateKEKRotation(ctx(t), store.KEKRotation{ID: "rot_1", FromKEK: "a", ToKEK: "b", BatchSize: 1, StartedAt: at(0), HeartbeatAt: at(0)}))

	snap, err := src.ExportSnapshot(ctx(t))
	must(t, err)
	if len(snap.Providers) != 1 || len(snap.SecretVersions) != 4 || len(snap.Secrets) != 1 || len(snap.Keys) != 1 ||
		len(snap.AdminTokens) != 1 || len(snap.KEKRecords) != 1 || len(snap.KEKRotations) != 1 {
		t.Fatalf("snapshot counts: %d providers, %d versions, %d secrets, %d keys, %d admin tokens, %d KEKs, %d rotations",
			len(snap.Providers), len(snap.SecretVersions), len(snap.Secrets), len(snap.Keys), len(snap.AdminTokens), len(snap.KEKRecords), len(snap.KEKRotations))
	}

	// The target is what a first start leaves: its own pepper and admin token.
	dst := Open(t, newURL(t))
	own := secretVersion("system/key-pepper", 1)
	own.Ciphertext = []byte("the target's own pepper")
	must(t, dst.PutSecretVersion(ctx(t), own))
	must(t, dst.CreateAdminToken(ctx(t), store.AdminToken{ID: "adm_new", Name: "bootstrap", Hash: hashOf("adm_new"), CreatedAt: at(0)}))
	must(t, dst.ImportSnapshot(ctx(t), snap))

	pepper, err := dst.GetSecretVersion(ctx(t), "system/key-pepper", 1)
	must(t, err)
	checkSecret(t, pepper, secretVersion("system/key-pepper", 1))
	for v := 1; v <= 2; v++ {
		got, err := dst.GetSecretVersion(ctx(t), "provider/prv_1", v)
		must(t, err)
		checkSecret(t, got, secretVersion("provider/prv_1", v))
	}
	p, err := dst.GetProvider(ctx(t), "openai")
	must(t, err)
	checkProvider(t, p, fullProvider("prv_1", "openai"))
	k, err := dst.GetKeyByHash(ctx(t), fullKey("key_1", "ci").Hash)
	must(t, err)
	checkKey(t, k, fullKey("key_1", "ci"))
	if string(k.Limits) != `{"tpm":9}` || k.Group != "team" {
		t.Errorf("restored key limits %q group %q", k.Limits, k.Group)
	}
	if g, err := dst.GetGroup(ctx(t), "team"); err != nil || string(g.Limits) != `{"rpm":5}` || g.Keys != 1 {
		t.Errorf("restored group %+v, %v", g, err)
	}
	if _, err := dst.GetAdminTokenByHash(ctx(t), hashOf("adm_new")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the target's own admin token survived the restore: %v", err)
	}
	if _, err := dst.GetAdminTokenByHash(ctx(t), hashOf("adm_1")); err != nil {
		t.Errorf("the backed-up admin token is missing: %v", err)
	}
	m, err := dst.GetSecretMeta(ctx(t), "payments/stripe")
	must(t, err)
	if m.CurrentVersion != 1 {
		t.Errorf("restored secret = %+v", m)
	}
	if r, err := dst.LatestKEKRotation(ctx(t)); err != nil || r.ID != "rot_1" {
		t.Errorf("restored rotation = %+v, %v", r, err)
	}

	// A database that holds anything of the user's is refused, unchanged.
	err = dst.ImportSnapshot(ctx(t), snap)
	wantErr(t, err, store.ErrNotEmpty, "ImportSnapshot into a used database")
	again, err := dst.ExportSnapshot(ctx(t))
	must(t, err)
	if len(again.SecretVersions) != 4 || len(again.Providers) != 1 {
		t.Errorf("a refused restore changed the database: %d versions, %d providers", len(again.SecretVersions), len(again.Providers))
	}
}

// testDeleteSecretRecords: every version of every record under a prefix
// goes, and nothing else: not a record whose id only begins like it, nor
// one where the prefix's characters would be LIKE wildcards.
func testDeleteSecretRecords(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	for _, id := range []string{"mcp-oauth/mcp_1/user/usr_a", "mcp-oauth/mcp_1/user/usr_b", "mcp-oauth/mcp_1/client", "mcp-oauth/mcp_10/client", "mcp-oauth/mcp%1/client", "secret/sec_1"} {
		for v := 1; v <= 2; v++ {
			must(t, s.PutSecretVersion(ctx(t), secretVersion(id, v)))
		}
	}
	n, err := s.DeleteSecretRecords(ctx(t), "mcp-oauth/mcp_1/")
	must(t, err)
	if n != 6 {
		t.Errorf("DeleteSecretRecords removed %d versions, want 6", n)
	}
	for _, id := range []string{"mcp-oauth/mcp_1/user/usr_a", "mcp-oauth/mcp_1/client"} {
		_, err := s.LatestSecretVersion(ctx(t), id)
		wantErr(t, err, store.ErrNotFound, "the latest version of deleted record "+id)
	}
	for _, id := range []string{"mcp-oauth/mcp_10/client", "mcp-oauth/mcp%1/client", "secret/sec_1"} {
		if v, err := s.LatestSecretVersion(ctx(t), id); err != nil || v.Version != 2 {
			t.Errorf("record %s outside the prefix: version %d, %v", id, v.Version, err)
		}
	}
	if _, err := s.DeleteSecretRecords(ctx(t), ""); err == nil {
		t.Error("DeleteSecretRecords with an empty prefix succeeded")
	}
}
