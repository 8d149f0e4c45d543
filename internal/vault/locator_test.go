package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// newBase64Key returns a base64key:// URL with a key made at run time, the
// key's bytes, and its KEK.
func newBase64Key(t *testing.T) (string, []byte, KEK) {
	t.Helper()
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	url := "base64key://" + base64.RawURLEncoding.EncodeToString(key)
	opened, err := OpenKEK(t.Context(), url, KEKOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return url, key, opened.KEK
}

// add makes the KEK at url reachable through the test opener, as a KMS key
// (or a key file on this machine) would be.
func (k *keks) add(url string, kek KEK) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.byURL[url] = kek
}

// keyForms is every way key material could be written into the database.
func keyForms(key []byte) [][]byte {
	forms := [][]byte{key}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		forms = append(forms, []byte(enc.EncodeToString(key)))
	}
	return append(forms, []byte(hex.EncodeToString(key)))
}

// assertKeyNowhere fails if any stored version, in its stored bytes or
// opened with any of the given KEKs, holds key.
func assertKeyNowhere(t *testing.T, st *store.Store, key []byte, keks ...KEK) {
	t.Helper()
	snap, err := st.ExportSnapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, sv := range snap.SecretVersions {
		texts := [][]byte{sv.WrappedDEK, sv.Ciphertext, []byte(sv.ID)}
		for _, k := range keks {
			if sv.KEKID == k.ID() {
				if pt, err := OpenVersion(t.Context(), k, sv); err == nil {
					texts = append(texts, pt)
				}
			}
		}
		for _, text := range texts {
			for _, f := range keyForms(key) {
				if bytes.Contains(text, f) {
					t.Fatalf("record %s version %d (under KEK %s) holds the new KEK's key material", sv.ID, sv.Version, sv.KEKID)
				}
			}
		}
	}
}

// assertOpensNothing fails if a keygate holding only old, and able to open
// any KEK URL it finds, opens any stored version.
func assertOpensNothing(t *testing.T, st *store.Store, old KEK, k *keks) {
	t.Helper()
	snap, err := st.ExportSnapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v := New(old, st, WithKEKOpener(k.open))
	for _, sv := range snap.SecretVersions {
		if pt, err := v.Open(t.Context(), sv); err == nil {
			clear(pt)
			t.Fatalf("a keygate holding only the old KEK opened record %s version %d", sv.ID, sv.Version)
		}
	}
}

func stateOf(t *testing.T, st RotationStatus, id string) KEKState {
	t.Helper()
	for _, s := range st.KEKs {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("vault status does not list KEK %s: %+v", id, st.KEKs)
	return KEKState{}
}

// TestFinishedRotationLeavesTheOldKEKNothing is the property a KEK rotation
// exists for: once it has finished (and settled), a keygate holding only
// the old KEK, with a copy of the database and the power to open any KEK
// URL it finds there, opens nothing, and the new KEK's key material is
// nowhere in the database, sealed or not.
func TestFinishedRotationLeavesTheOldKEKNothing(t *testing.T) {
	databases(t, func(t *testing.T, newURL func(testing.TB) string) {
		for _, target := range []string{"base64key", "kms"} {
			t.Run(target, func(t *testing.T) {
				url := newURL(t)
				k := newKEKs(t, "test://old", "test://new")
				toURL, key := "test://new", []byte(nil)
				if target == "base64key" {
					var kek KEK
					toURL, key, kek = newBase64Key(t)
					k.add(toURL, kek)
				}
				n := newNode(t, url, k, "test://old")
				n.rot.grace = 0
				want := fill(t, n.v, 25)
				old, to := k.get("test://old"), k.get(toURL)
				if _, err := n.rot.Start(t.Context(), to, secret.New(toURL), 4, 0); err != nil {
					t.Fatal(err)
				}
				st := waitFinished(t, n.rot)
				if err := n.rot.Sync(t.Context()); err != nil {
					t.Fatal(err)
				}
				if st, err := n.rot.Status(t.Context()); err != nil {
					t.Fatal(err)
				} else if s := stateOf(t, st, old.ID()); s.Versions != 0 || s.Current {
					t.Fatalf("after the rotation the old KEK still opens %d versions (%d locators): %+v", s.Versions, s.Locators, st.KEKs)
				} else if s := stateOf(t, st, to.ID()); !s.Current || s.Versions < 25 {
					t.Fatalf("the new KEK: %+v", s)
				}
				_ = st

				assertOpensNothing(t, n.st, old, k)
				if key != nil {
					assertKeyNowhere(t, n.st, key, old, to)
				}

				// A keygate started with only the old KEK refuses, naming
				// the KEK it needs, and seals nothing under the old one.
				stale := newNode(t, url, k, "test://old")
				err := stale.rot.Sync(t.Context())
				if err == nil || !strings.Contains(err.Error(), "needs KEK "+to.ID()) || !strings.Contains(err.Error(), "point kek") {
					t.Fatalf("Sync with only the old KEK: %v", err)
				}
				if key != nil && !strings.Contains(err.Error(), "base64key://REDACTED") {
					t.Fatalf("the refusal does not say the KEK's URL is its key: %v", err)
				}
				if _, err := stale.v.Put(t.Context(), "secret/late", testSecret(t)); err == nil {
					t.Fatal("a keygate that cannot open the current KEK sealed a new secret")
				}
				if _, _, err := stale.v.Get(t.Context(), "secret/s001"); !errors.Is(err, ErrWrongKEK) {
					t.Fatalf("Get with only the old KEK: %v", err)
				}

				// The new KEK alone opens everything.
				fresh := newNode(t, url, k, toURL)
				if err := fresh.rot.Sync(t.Context()); err != nil {
					t.Fatal(err)
				}
				checkAll(t, fresh.v, want)
			})
		}
	})
}

// TestLocatorsKeptForTheGrace: nodes still configured with the old KEK
// follow a rotation to a KMS key for a grace after it finished; then the
// locators go, and a node started with the old KEK refuses.
func TestLocatorsKeptForTheGrace(t *testing.T) {
	url := storetest.SQLiteURL(t)
	k := newKEKs(t, "test://old", "test://new")
	a := newNode(t, url, k, "test://old")
	now := time.Now()
	a.rot.now = func() time.Time { return now }
	want := fill(t, a.v, 10)
	old, to := k.get("test://old"), k.get("test://new")
	if _, err := a.rot.Start(t.Context(), to, secret.New("test://new"), 0, 0); err != nil {
		t.Fatal(err)
	}
	waitFinished(t, a.rot)
	a.rot.Wait() // the worker, which reads the clock, has stopped
	if err := a.rot.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := a.rot.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, st, old.ID()); s.Versions != 1 || s.Locators != 1 || s.StoredKeys != 0 {
		t.Fatalf("within the grace the old KEK should open only the new KEK's locator: %+v", s)
	}
	if s := stateOf(t, st, to.ID()); s.URL != "test://new" {
		t.Fatalf("the new KEK's recorded URL: %+v", s)
	}

	b := newNode(t, url, k, "test://old")
	if err := b.rot.Sync(t.Context()); err != nil {
		t.Fatalf("a node on the old KEK within the grace: %v", err)
	}
	checkAll(t, b.v, want)

	now = now.Add(DefaultFollowGrace + time.Second)
	if err := a.rot.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ls, err := a.st.ListSecretVersionsLike(t.Context(), kekURLPattern); err != nil || len(ls) != 0 {
		t.Fatalf("after the grace %d locators remain (%v)", len(ls), err)
	}
	st, err = a.rot.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s := stateOf(t, st, old.ID()); s.Versions != 0 {
		t.Fatalf("after the grace the old KEK still opens %d versions", s.Versions)
	}
	// b followed in time and keeps working; a node started now does not.
	checkAll(t, b.v, want)
	c := newNode(t, url, k, "test://old")
	if err := c.rot.Sync(t.Context()); err == nil || !strings.Contains(err.Error(), "test://new") {
		t.Fatalf("a node started on the old KEK after the grace: %v", err)
	}
	assertOpensNothing(t, a.st, old, k)
}

// TestStoredKEKKeyFromOlderKeygateRemoved: a database from an older
// keygate holds each KEK's base64key:// URL, key included, sealed under the
// other. keygate still follows it (an upgrade never locks anyone out) and
// says the old KEK opens it; started with the new KEK configured, keygate
// deletes every stored key, after which the old KEK opens nothing.
func TestStoredKEKKeyFromOlderKeygateRemoved(t *testing.T) {
	databases(t, func(t *testing.T, newURL func(testing.TB) string) {
		url := newURL(t)
		k := newKEKs(t)
		oldURL, _, old := newBase64Key(t)
		newURLKey, newKey, to := newBase64Key(t)
		k.add(oldURL, old)
		k.add(newURLKey, to)
		a := newNode(t, url, k, oldURL)
		a.rot.grace = 0
		want := fill(t, a.v, 12)
		if _, err := a.rot.Start(t.Context(), to, secret.New(newURLKey), 5, 0); err != nil {
			t.Fatal(err)
		}
		waitFinished(t, a.rot)
		// What an older keygate left behind: each URL sealed under the other.
		if _, err := a.v.putUnder(t.Context(), old, kekURLRecord(to.ID()), secret.New(newURLKey), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.v.putUnder(t.Context(), to, kekURLRecord(old.ID()), secret.New(oldURL), nil); err != nil {
			t.Fatal(err)
		}

		// Started with only the old KEK, keygate follows the stored key and
		// says so; the old KEK's own stored key (which nothing needs) goes.
		b := newNode(t, url, k, oldURL)
		b.rot.grace = 0
		if err := b.rot.Sync(t.Context()); err != nil {
			t.Fatalf("an upgraded keygate on the old KEK: %v", err)
		}
		checkAll(t, b.v, want)
		st, err := b.rot.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s := stateOf(t, st, old.ID()); s.Versions != 1 || s.StoredKeys != 1 {
			t.Fatalf("the old KEK should still open the stored key of the new one: %+v", s)
		}
		if s := stateOf(t, st, to.ID()); s.Locators != 0 {
			t.Fatalf("the old KEK's stored key, which nothing needs, was kept: %+v", s)
		}

		// Started with the new KEK configured, keygate deletes the stored key.
		c := newNode(t, url, k, newURLKey)
		if err := c.rot.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ls, err := c.st.ListSecretVersionsLike(t.Context(), kekURLPattern); err != nil || len(ls) != 0 {
			t.Fatalf("%d locators remain (%v)", len(ls), err)
		}
		checkAll(t, c.v, want)
		st, err = c.rot.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s := stateOf(t, st, old.ID()); s.Versions != 0 {
			t.Fatalf("the old KEK still opens %d versions", s.Versions)
		}
		assertKeyNowhere(t, c.st, newKey, old, to)
		assertOpensNothing(t, c.st, old, k)
	})
}

// TestRotationStoresNoKeyMaterial: a rotation to or from a KEK whose URL is
// its key records neither URL, so even while it runs nothing sealed in the
// database holds a KEK's key; the KEK registry holds the redacted URL.
func TestRotationStoresNoKeyMaterial(t *testing.T) {
	url := storetest.SQLiteURL(t)
	k := newKEKs(t)
	oldURL, oldKey, old := newBase64Key(t)
	toURL, toKey, to := newBase64Key(t)
	k.add(oldURL, old)
	k.add(toURL, to)
	n := newNode(t, url, k, oldURL)
	fill(t, n.v, 30)
	if _, err := n.rot.Start(t.Context(), to, secret.New(toURL), 1, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if ls, err := n.st.ListSecretVersionsLike(t.Context(), kekURLPattern); err != nil || len(ls) != 0 {
		t.Fatalf("the rotation stored %d KEK URLs (%v)", len(ls), err)
	}
	assertKeyNowhere(t, n.st, oldKey, old, to)
	assertKeyNowhere(t, n.st, toKey, old, to)
	recs, err := n.st.ListKEKRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := recordedURL(recs, to.ID()); got != "base64key://REDACTED" {
		t.Fatalf("the registry records the new KEK as %q", got)
	}
	if got := recordedURL(recs, old.ID()); got != "base64key://REDACTED" {
		t.Fatalf("the registry records the old KEK as %q", got)
	}
}

func TestStorableKEKURL(t *testing.T) {
	for url, want := range map[string]bool{
		"":                         false,
		"base64key://AAAA":         false,
		"secrets+base64key://AAAA": false,
		"awskms:///alias/keygate?region=eu-west-1": true,
		"hashivault://keygate":                     true,
		"hashivault://keygate?token=fake":          false,
		"hashivault://u:fake@vault/keygate":        false,
		"file:///var/lib/keygate/master.key":       true,
		"/var/lib/keygate/master.key":              true,
		"passphrase://?env=KEYGATE_PASSPHRASE":     true,
		"passphrase://not-a-real-passphrase":       false,
		"not a url":                                false,
	} {
		if got := storableKEKURL(url); got != want {
			t.Errorf("storableKEKURL(%s) = %v, want %v", RedactKEKURL(url), got, want)
		}
	}
}
