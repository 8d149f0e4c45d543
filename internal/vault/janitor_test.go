package vault

import (
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

func TestSweep(t *testing.T) {
	databases(t, func(t *testing.T, newURL func(testing.TB) string) {
		st := storetest.Open(t, newURL(t))
		v := New(testKEK(t), st)
		ctx := t.Context()
		now := time.Now().UTC()
		old, cur := testSecret(t), testSecret(t)
		if _, err := v.Put(ctx, "provider/p", old); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Put(ctx, "provider/p", cur); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ScheduleDestroy(ctx, "provider/p", 2, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		m := store.SecretMeta{Name: "app/token", RecordID: "secret/sec_t", CreatedAt: now, UpdatedAt: now}
		if err := st.CreateSecretMeta(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Put(ctx, m.RecordID, testSecret(t)); err != nil {
			t.Fatal(err)
		}
		if err := st.SoftDeleteSecret(ctx, m.Name, now, now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}

		// Before any deadline nothing goes.
		d, p, err := Sweep(ctx, st, v, now.Add(59*time.Minute))
		if err != nil || d != 0 || p != 0 {
			t.Fatalf("early sweep: destroyed %d, purged %d, %v", d, p, err)
		}
		if got, err := v.GetVersion(ctx, "provider/p", 1); err != nil || !got.Equal(old) {
			t.Fatalf("the previous key is gone before its grace ended: %v", err)
		}
		// After the grace the previous key is destroyed, the current kept.
		d, p, err = Sweep(ctx, st, v, now.Add(time.Hour))
		if err != nil || d != 1 || p != 0 {
			t.Fatalf("sweep after the grace: destroyed %d, purged %d, %v", d, p, err)
		}
		if _, err := v.GetVersion(ctx, "provider/p", 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("previous key after its grace: err = %v, want not found", err)
		}
		if got, _, err := v.Get(ctx, "provider/p"); err != nil || !got.Equal(cur) {
			t.Fatalf("current key: %v", err)
		}
		// After the recovery window the deleted secret is purged, versions and all.
		d, p, err = Sweep(ctx, st, v, now.Add(3*time.Hour))
		if err != nil || p != 1 {
			t.Fatalf("sweep after the recovery window: destroyed %d, purged %d, %v", d, p, err)
		}
		if _, err := st.GetSecretMeta(ctx, m.Name); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("purged secret still listed: %v", err)
		}
		if vs, _ := st.ListSecretVersions(ctx, m.RecordID); len(vs) != 0 {
			t.Fatalf("purged secret left %d versions", len(vs))
		}
	})
}
