package vault_test

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/vault"
)

// BenchmarkSecretRead reads one secret from a real SQLite vault whose KEK
// is a KMS (hashivault://, over loopback HTTP to a transit server), along
// every path a read can take:
//
//   - warm: the read cache and data-key cache are warm: no database, no KMS;
//   - db,warm-dek: the version is read from the database, the data key
//     comes from the cache (what `secret get` costs);
//   - kms-call: no data-key cache, so every read also unwraps through the
//     KMS: over loopback, and with the 5 ms a KMS in another data centre
//     adds per call.
func BenchmarkSecretRead(b *testing.B) {
	tr := sharedTransit(b)
	ctx := context.Background()
	st := storetest.Open(b, storetest.SQLiteURL(b))
	opened, err := vault.OpenKEK(ctx, "hashivault://keygate-bench", vault.KEKOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { opened.Close() })
	want := secret.New("bench-secret-value-" + time.Now().String())
	if _, err := vault.New(opened.KEK, st).Put(ctx, "secret/bench", want); err != nil {
		b.Fatal(err)
	}
	read := func(b *testing.B, get func() (secret.String, int, error)) {
		b.Helper()
		if got, _, err := get(); err != nil || !got.Equal(want) {
			b.Fatalf("warm-up read: %v", err)
		}
		calls := tr.calls.Load()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, _, err := get(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(tr.calls.Load()-calls)/float64(b.N), "kms-calls/op")
	}
	b.Run("warm", func(b *testing.B) {
		v := vault.New(opened.KEK, st, vault.WithReadCache(time.Hour))
		read(b, func() (secret.String, int, error) { return v.GetCached(ctx, "secret/bench") })
	})
	b.Run("db,warm-dek", func(b *testing.B) {
		v := vault.New(opened.KEK, st)
		read(b, func() (secret.String, int, error) { return v.Get(ctx, "secret/bench") })
	})
	b.Run("kms-call,loopback", func(b *testing.B) {
		v := vault.New(opened.KEK, st, vault.WithDEKCacheSize(0))
		read(b, func() (secret.String, int, error) { return v.Get(ctx, "secret/bench") })
	})
	b.Run("kms-call,5ms-away", func(b *testing.B) {
		tr.latency.Store(int64(5 * time.Millisecond))
		defer tr.latency.Store(0)
		v := vault.New(opened.KEK, st, vault.WithDEKCacheSize(0))
		read(b, func() (secret.String, int, error) { return v.Get(ctx, "secret/bench") })
	})
}
