package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// BenchmarkGetKeyByHash measures the verifier's cache-miss path: one indexed
// lookup of a key record by its HMAC in SQLite.
func BenchmarkGetKeyByHash(b *testing.B) {
	ctx := context.Background()
	st := storetest.Open(b, storetest.SQLiteURL(b))
	const n = 10000
	hashes := make([][]byte, n)
	err := st.InTx(ctx, func(tx *store.Store) error {
		for i := range n {
			h := sha256.Sum256([]byte(fmt.Sprint(i)))
			hashes[i] = h[:]
			exp := time.Now().Add(time.Hour)
			if err := tx.CreateKey(ctx, store.Key{ID: fmt.Sprintf("key_%d", i), Name: fmt.Sprintf("k%d", i), Env: "live", Prefix: "kg_live_abcd",
				Hash: h[:], AllowModels: []string{"gpt-4o*"}, AllowProviders: []string{"openai"}, CreatedAt: time.Now(), ExpiresAt: &exp}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := st.GetKeyByHash(ctx, hashes[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
