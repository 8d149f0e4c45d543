package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

var errAbort = errors.New("abort")

func testTxCommit(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	p := fullProvider("prv_1", "openai")
	err := s.InTx(ctx(t), func(tx *store.Store) error {
		if err := tx.PutSecretVersion(ctx(t), secretVersion(p.SecretID, 1)); err != nil {
			return err
		}
		if err := tx.CreateProvider(ctx(t), p); err != nil {
			return err
		}
		// Reads inside the transaction see its own writes.
		if _, err := tx.GetProvider(ctx(t), p.Name); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		return nil
	})
	must(t, err)
	got, err := s.GetProvider(ctx(t), p.Name)
	must(t, err)
	checkProvider(t, got, p)
	if _, err := s.LatestSecretVersion(ctx(t), p.SecretID); err != nil {
		t.Fatalf("secret written in a committed transaction is missing: %v", err)
	}
}

// checkNothingWritten asserts that the writes of a rolled-back transaction
// are absent and that the store still accepts writes.
func checkNothingWritten(t *testing.T, s *store.Store) {
	t.Helper()
	_, err := s.GetKey(ctx(t), "key_tx")
	wantErr(t, err, store.ErrNotFound, "GetKey of a key created in a rolled-back transaction")
	_, err = s.LatestSecretVersion(ctx(t), "provider/tx")
	wantErr(t, err, store.ErrNotFound, "LatestSecretVersion of a secret put in a rolled-back transaction")
	must(t, s.CreateKey(ctx(t), bareKey("key_after", "after")))
}

func writeInTx(tx *store.Store, t *testing.T) error {
	if err := tx.CreateKey(ctx(t), bareKey("key_tx", "tx")); err != nil {
		return err
	}
	return tx.PutSecretVersion(ctx(t), secretVersion("provider/tx", 1))
}

func testTxRollbackOnError(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	err := s.InTx(ctx(t), func(tx *store.Store) error {
		if err := writeInTx(tx, t); err != nil {
			return err
		}
		return errAbort
	})
	wantErr(t, err, errAbort, "InTx whose function failed")
	checkNothingWritten(t, s)
}

func testTxRollbackOnPanic(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		s.InTx(ctx(t), func(tx *store.Store) error {
			if err := writeInTx(tx, t); err != nil {
				t.Errorf("write in transaction: %v", err)
			}
			panic("boom")
		})
	}()
	if recovered != "boom" {
		t.Fatalf("InTx recovered %v, want the panic re-raised as \"boom\"", recovered)
	}
	checkNothingWritten(t, s)
}

func testTxNested(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	err := s.InTx(ctx(t), func(tx *store.Store) error {
		err := tx.InTx(ctx(t), func(inner *store.Store) error { return writeInTx(inner, t) })
		if err != nil {
			return err
		}
		// The inner call did not commit on its own: the outer rollback undoes it.
		return errAbort
	})
	wantErr(t, err, errAbort, "outer InTx")
	checkNothingWritten(t, s)

	err = s.InTx(ctx(t), func(tx *store.Store) error {
		return tx.InTx(ctx(t), func(inner *store.Store) error {
			return inner.CreateKey(ctx(t), bareKey("key_nested", "nested"))
		})
	})
	must(t, err)
	if _, err := s.GetKey(ctx(t), "key_nested"); err != nil {
		t.Fatalf("key written by a nested InTx is missing after commit: %v", err)
	}
}

func testTxConflict(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.CreateKey(ctx(t), bareKey("key_1", "one")))
	err := s.InTx(ctx(t), func(tx *store.Store) error {
		if err := tx.CreateKey(ctx(t), bareKey("key_2", "two")); err != nil {
			return err
		}
		return tx.CreateKey(ctx(t), bareKey("key_3", "one"))
	})
	wantErr(t, err, store.ErrConflict, "InTx with a duplicate key name")
	_, err = s.GetKey(ctx(t), "key_2")
	wantErr(t, err, store.ErrNotFound, "key from a transaction that hit a conflict")
}

func testConcurrentCreateKeys(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateKey(ctx(t), bareKey(fmt.Sprintf("key_%02d", i), fmt.Sprintf("k%02d", i)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent CreateKey %d: %v", i, err)
		}
	}
	list, err := s.ListKeys(ctx(t))
	must(t, err)
	if len(list) != n {
		t.Errorf("ListKeys after %d concurrent creates returned %d keys", n, len(list))
	}
}

func testConcurrentPutSameSecretVersion(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	const n = 20
	var wg sync.WaitGroup
	var ok, conflict atomic.Int32
	for range n {
		wg.Go(func() {
			err := s.PutSecretVersion(ctx(t), secretVersion("system/pepper", 1))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflict.Add(1)
			default:
				t.Errorf("concurrent PutSecretVersion: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != n-1 {
		t.Errorf("%d concurrent puts of one version: %d succeeded and %d conflicted, want 1 and %d",
			n, ok.Load(), conflict.Load(), n-1)
	}
}

// testConcurrentStoresOneDatabase writes through two Stores on one database
// at once, as two keygate processes sharing it would.
func testConcurrentStoresOneDatabase(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	stores := []*store.Store{Open(t, url), Open(t, url)}
	const perStore = 20
	var wg sync.WaitGroup
	for si, s := range stores {
		for i := range perStore {
			wg.Go(func() {
				id := fmt.Sprintf("key_%d_%02d", si, i)
				err := s.InTx(ctx(t), func(tx *store.Store) error {
					if err := tx.CreateKey(ctx(t), bareKey(id, id)); err != nil {
						return err
					}
					return tx.TouchKey(ctx(t), id, at(time.Duration(i)*time.Second))
				})
				if err != nil {
					t.Errorf("store %d: write %s: %v", si, id, err)
				}
			})
		}
	}
	wg.Wait()
	list, err := stores[0].ListKeys(ctx(t))
	must(t, err)
	if len(list) != 2*perStore {
		t.Errorf("ListKeys returned %d keys, want %d", len(list), 2*perStore)
	}
}

func testConcurrentReadsDuringWrites(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := bareKey("key_hot", "hot")
	must(t, s.CreateKey(ctx(t), k))
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			for j := range 10 {
				if err := s.TouchKey(ctx(t), k.ID, at(time.Duration(i*10+j)*time.Second)); err != nil {
					t.Errorf("TouchKey: %v", err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 10 {
				if _, err := s.GetKeyByHash(ctx(t), k.Hash); err != nil {
					t.Errorf("GetKeyByHash during writes: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := s.GetKey(ctx(t), k.ID)
	must(t, err)
	checkTimePtr(t, "LastUsedAt after concurrent touches", got.LastUsedAt, ptr(at(99*time.Second)))
}
