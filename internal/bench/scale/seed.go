// Package scale checks how keygate behaves with very many keygate keys in
// its database: how long `keygate serve` takes to start, how much memory it
// holds, and whether verifying a key costs the same with a million keys as
// with a handful.
//
// Seed fills a data directory with keys exactly as `keygate serve` would
// read it; Measure then runs a real keygate process on that directory and
// times verification through its gateway. The package opens keygate's store
// but never registers a database driver: the program that uses it must
// import _ "modernc.org/sqlite", as cmd/keygate does.
package scale

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// PepperRecord is the vault record holding the pepper keygate hashes keys
// with; Seed uses the same record as `keygate serve`.
const PepperRecord = "system/key-pepper"

// seedBatch is how many keys Seed inserts per transaction.
const seedBatch = 10_000

// progressEvery is how often, in keys, Seed reports progress.
const progressEvery = 100_000

// paths returns the master key file and database URL `keygate serve
// --data-dir dataDir` uses with no other configuration.
func paths(dataDir string) (masterKey, database string) {
	cfg := config.Default(dataDir)
	cfg.DataDir = dataDir
	return cfg.MasterKeyPath(), cfg.DatabaseURL()
}

// Seed prepares dataDir as `keygate serve --data-dir dataDir` reads it (the
// master key file, the SQLite database <dataDir>/keygate.db and the key
// pepper in the vault, each created if missing) and adds n active keygate
// keys of environment "live", with no expiry and no model or provider
// limits. It returns the raw keys, in insertion order; keygate itself keeps
// only their HMACs.
//
// Keys are generated and hashed on every CPU and inserted by one writer, in
// transactions of 10,000. When progress is not nil, Seed writes a line to it
// every 100,000 keys and a summary with its timings at the end. Seeding an
// existing directory adds n more keys next to those already there.
func Seed(ctx context.Context, dataDir string, n int, progress io.Writer) ([]string, error) {
	if n < 0 {
		return nil, fmt.Errorf("scale: cannot seed %d keys", n)
	}
	if progress == nil {
		progress = io.Discard
	}
	began := time.Now()
	st, hasher, err := open(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			st.Close()
		}
	}()
	opened := time.Since(began)

	raw := make([]string, n)
	batches := make(chan []store.Key, 2*runtime.GOMAXPROCS(0))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Workers generate and hash disjoint ranges of keys; one writer inserts
	// them, as keygate's SQLite store has a single writer connection.
	var genErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { genErr = err; cancel() }) }
	tag := randomHex(3)
	now := time.Now().UTC()
	next := make(chan int)
	var wg sync.WaitGroup
	var genBusy time.Duration
	var genMu sync.Mutex
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var busy time.Duration
			defer func() { genMu.Lock(); genBusy += busy; genMu.Unlock() }()
			for lo := range next {
				t0 := time.Now()
				hi := min(lo+seedBatch, n)
				ks, err := generate(hasher, tag, lo, raw[lo:hi], now)
				busy += time.Since(t0)
				if err != nil {
					fail(err)
					return
				}
				select {
				case batches <- ks:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		defer close(next)
		for lo := 0; lo < n; lo += seedBatch {
			select {
			case next <- lo:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(batches) }()

	inserted := 0
	var insertBusy time.Duration
	reported := 0
	for ks := range batches {
		t0 := time.Now()
		err := st.InTx(ctx, func(tx *store.Store) error {
			for _, k := range ks {
				if err := tx.CreateKey(ctx, k); err != nil {
					return err
				}
			}
			return nil
		})
		insertBusy += time.Since(t0)
		if err != nil {
			fail(fmt.Errorf("scale: insert keys: %w", err))
			break
		}
		inserted += len(ks)
		if inserted-reported >= progressEvery || inserted == n {
			reported = inserted
			fmt.Fprintf(progress, "seeded %d/%d keys (%s)\n", inserted, n, time.Since(began).Round(time.Millisecond))
		}
	}
	for range batches {
		// Let blocked workers finish after a failure.
	}
	if genErr != nil {
		return nil, genErr
	}
	if err := ctx.Err(); err != nil && inserted < n {
		return nil, fmt.Errorf("scale: seeding stopped after %d of %d keys: %w", inserted, n, err)
	}
	// Closing checkpoints the write-ahead log into the database file, so
	// keygate starts on the database as a long-running install leaves it.
	closed = true
	if err := st.Close(); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "seeded %d keys into %s in %s (open %s; generate+hash %s of CPU on %d workers; insert %s)\n",
		n, dataDir, time.Since(began).Round(time.Millisecond), opened.Round(time.Millisecond),
		genBusy.Round(time.Millisecond), runtime.GOMAXPROCS(0), insertBusy.Round(time.Millisecond))
	return raw, nil
}

// open opens dataDir's master key, store and pepper the way `keygate serve`
// does, and returns the store with a Hasher under that pepper.
func open(ctx context.Context, dataDir string) (*store.Store, *apikey.Hasher, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("scale: create data directory %s: %w", dataDir, err)
	}
	keyPath, dbURL := paths(dataDir)
	kek, _, err := vault.LoadOrCreateKeyFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("scale: master key: %w", err)
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return nil, nil, fmt.Errorf("scale: database: %w", err)
	}
	pepper, err := vault.New(kek, st).Ensure(ctx, PepperRecord, 32)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("scale: key pepper: %w", err)
	}
	hasher, err := apikey.NewHasher([]byte(pepper.Reveal()))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, hasher, nil
}

// OpenVerifier opens a data directory prepared by Seed (or used by `keygate
// serve`) and returns a key source over its store, built as keygate builds
// it but with the given cache TTL; a TTL of zero makes every verification
// read the store. Close the returned store when done.
func OpenVerifier(ctx context.Context, dataDir string, ttl time.Duration) (*keysource.Source, *store.Store, error) {
	st, hasher, err := open(ctx, dataDir)
	if err != nil {
		return nil, nil, err
	}
	return keysource.New(hasher, st, keysource.WithTTL(ttl)), st, nil
}

// generate fills raw with new keys and returns their records, named
// scale-<tag>-<index>.
func generate(h *apikey.Hasher, tag string, first int, raw []string, now time.Time) ([]store.Key, error) {
	ks := make([]store.Key, len(raw))
	for i := range raw {
		s, err := apikey.Generate("live")
		if err != nil {
			return nil, err
		}
		r := s.Reveal()
		p, err := apikey.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("scale: a generated key does not parse: %w", err)
		}
		sum := h.Hash(r)
		raw[i] = r
		ks[i] = store.Key{
			ID:        "key_" + randomHex(12),
			Name:      fmt.Sprintf("scale-%s-%08d", tag, first+i),
			Env:       p.Env,
			Prefix:    p.Prefix,
			Hash:      sum[:],
			CreatedAt: now,
		}
	}
	return ks, nil
}

// randomHex returns n random bytes in hex, as keygate's record IDs are made.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b)
}
