package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// RotationStore is what a KEK rotation needs from keygate's database.
type RotationStore interface {
	Storage
	KEKRegistry
	RewrapCandidates(ctx context.Context, kekID, exclude, afterID string, afterVersion, limit int) ([]store.SecretVersion, error)
	CountNotWrappedBy(ctx context.Context, kekID, exclude string) (int, error)
	CountByKEK(ctx context.Context) ([]store.KEKCount, error)
	Rewrap(ctx context.Context, old store.SecretVersion, kekID string, wrapped []byte) (bool, error)
	ListSecretVersionsLike(ctx context.Context, pattern string) ([]store.SecretVersion, error)
	DeleteSecretVersion(ctx context.Context, sv store.SecretVersion) (bool, error)
	CreateKEKRotation(ctx context.Context, r store.KEKRotation) error
	LatestKEKRotation(ctx context.Context) (store.KEKRotation, error)
	ListKEKRotations(ctx context.Context) ([]store.KEKRotation, error)
	KEKRotationProgress(ctx context.Context, id string, rewrapped int, lastErr string, at time.Time) error
	FinishKEKRotation(ctx context.Context, id string, at time.Time) error
}

// Rotation defaults and bounds.
const (
	DefaultBatchSize = 100
	MaxBatchSize     = 10000
	maxBatchInterval = time.Minute
	// retryAfterFailure is how long a pass that left data keys behind waits
	// before trying them again.
	retryAfterFailure = 5 * time.Second
	// DefaultFollowGrace is how long after a rotation finishes its locators
	// are kept, so keygate nodes still running with the old KEK can follow.
	DefaultFollowGrace = time.Minute
)

// ErrRotationRunning is returned when a KEK rotation is asked for while
// another has not finished.
var ErrRotationRunning = errors.New("a key-encryption key rotation is already running")

// ErrSameKEK is returned when a rotation names the KEK already current.
var ErrSameKEK = errors.New("the key-encryption key is already current")

// Rotator rewraps every data key under a new KEK, online and in batches,
// while keygate keeps serving. Progress lives in the database: a rotation
// interrupted by a crash resumes when any keygate node starts (or syncs),
// and nodes working at once cannot harm each other, because each rewrap is
// a conditional update of one version's wrapped data key. Ciphertexts are
// not touched, so no plaintext is handled.
//
// While a rotation runs, each KEK whose URL holds no key material has a
// locator record sealed under the other (see locator.go), so nodes can
// follow; once it has settled the locators are deleted and the old KEK
// opens nothing.
type Rotator struct {
	v     *Vault
	st    RotationStore
	log   *slog.Logger
	base  context.Context
	now   func() time.Time
	grace time.Duration

	mu         sync.Mutex
	working    map[string]bool // rotation ids with a worker in this process
	warned     map[string]bool // stored keys already warned about
	registered bool            // whether the configured KEKs are in the registry
	settled    string          // the rotation ("" for none) found settled, with no locator left
	settledSet bool            // whether settled is set
	wg         sync.WaitGroup
}

// RotatorOption tunes a Rotator.
type RotatorOption func(*Rotator)

// WithFollowGrace sets how long a finished rotation's locators are kept so
// that nodes still on the old KEK can follow it (default
// DefaultFollowGrace). keygate sets it above the interval at which nodes
// sync. Zero deletes them as soon as the rotation finishes.
func WithFollowGrace(d time.Duration) RotatorOption {
	return func(r *Rotator) { r.grace = max(d, 0) }
}

// NewRotator returns a Rotator for v over st. Workers it starts stop when
// base ends; Wait waits for them.
func NewRotator(base context.Context, v *Vault, st RotationStore, log *slog.Logger, opts ...RotatorOption) *Rotator {
	r := &Rotator{v: v, st: st, log: log, base: base, now: time.Now, grace: DefaultFollowGrace,
		working: map[string]bool{}, warned: map[string]bool{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Wait blocks until every rewrap worker of this process has stopped.
func (r *Rotator) Wait() { r.wg.Wait() }

// Start begins rotating to kek, which the caller opened (and probed) from
// url. New data keys are wrapped by kek from now on; existing ones are
// rewrapped in batches of batch (0 means DefaultBatchSize) with interval
// between batches.
func (r *Rotator) Start(ctx context.Context, kek KEK, url secret.String, batch int, interval time.Duration) (store.KEKRotation, error) {
	switch {
	case batch == 0:
		batch = DefaultBatchSize
	case batch < 1 || batch > MaxBatchSize:
		return store.KEKRotation{}, fmt.Errorf("vault: batch size must be 1 to %d, got %d", MaxBatchSize, batch)
	}
	if interval < 0 || interval > maxBatchInterval {
		return store.KEKRotation{}, fmt.Errorf("vault: batch interval must be 0 to %s, got %s", maxBatchInterval, interval)
	}
	if latest, err := r.st.LatestKEKRotation(ctx); err == nil && latest.FinishedAt == nil {
		return store.KEKRotation{}, fmt.Errorf("vault: the rotation to KEK %s started at %s has not finished; wait for it (keygate vault status): %w",
			latest.ToKEK, latest.StartedAt.Format(time.RFC3339), ErrRotationRunning)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.KEKRotation{}, fmt.Errorf("vault: read the last rotation: %w", err)
	}
	cur := r.v.Current()
	if r.v.held() {
		return store.KEKRotation{}, fmt.Errorf("vault: this keygate cannot open the vault's current KEK %s, so it cannot rotate away from it: %w", cur.ID(), cur.(unavailableKEK).err)
	}
	if kek.ID() == cur.ID() {
		return store.KEKRotation{}, fmt.Errorf("vault: KEK %s is already the current key-encryption key; name a different key: %w", kek.ID(), ErrSameKEK)
	}
	curURL, curKnown := r.v.kekURL(cur.ID())
	if err := r.register(ctx, kek.ID(), url.Reveal()); err != nil {
		return store.KEKRotation{}, err
	}
	if curKnown {
		if err := r.register(ctx, cur.ID(), curURL.Reveal()); err != nil {
			return store.KEKRotation{}, err
		}
	}
	findable, err := r.v.recordKEKURL(ctx, kek.ID(), url, cur)
	if err != nil {
		return store.KEKRotation{}, err
	}
	if curKnown {
		if _, err := r.v.recordKEKURL(ctx, cur.ID(), curURL, kek); err != nil {
			return store.KEKRotation{}, err
		}
	}
	now := r.now().UTC()
	rot := store.KEKRotation{
		ID: "rot_" + strings.ToLower(rand.Text()[:16]), FromKEK: cur.ID(), ToKEK: kek.ID(),
		BatchSize: batch, BatchInterval: interval, StartedAt: now, HeartbeatAt: now,
	}
	if err := r.st.CreateKEKRotation(ctx, rot); err != nil {
		return store.KEKRotation{}, fmt.Errorf("vault: record the rotation: %w", err)
	}
	r.v.SetKEKURL(kek.ID(), url)
	r.v.SetCurrent(kek)
	r.log.Info("key-encryption key rotation started", "rotation", rot.ID, "from", rot.FromKEK, "to", rot.ToKEK, "batch_size", batch)
	if !findable {
		r.log.Warn("the new KEK's URL holds key material, which keygate never stores: set kek (KEYGATE_KEK) to it on every keygate before restarting one; "+
			"a keygate started with only the old KEK will refuse to start", "kek", kek.ID(), "kek_url", RedactKEKURL(url.Reveal()))
	}
	r.spawn(rot)
	return rot, nil
}

// Sync brings this node in line with the latest rotation: it makes the
// rotation's target the current KEK (finding it through its locator if
// this node was configured with the old one), resumes rewrapping if any
// data key is left under another KEK, and deletes the locators nothing
// needs any more. keygate calls it at start and then periodically. It
// returns an error when the target cannot be opened; the vault then seals
// nothing new until it can, rather than leave new data keys for the old
// KEK to open.
func (r *Rotator) Sync(ctx context.Context) error {
	if err := r.registerSupplied(ctx); err != nil {
		return err
	}
	rot, err := r.st.LatestKEKRotation(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return r.pruneSettled(ctx, "")
	}
	if err != nil {
		return fmt.Errorf("vault: read the last rotation: %w", err)
	}
	if k, ok := r.v.KEK(rot.ToKEK); ok {
		if r.v.KEKID() != k.ID() {
			r.v.SetCurrent(k) // configured as kek_previous, or a hold ended
		}
	} else {
		k, err := r.v.Resolve(ctx, rot.ToKEK)
		if err != nil {
			err = r.needKEK(ctx, rot, err)
			r.v.holdWrites(rot.ToKEK, err)
			return err
		}
		r.v.SetCurrent(k)
		r.log.Warn("the vault was rotated to another key-encryption key; keygate follows it. Set kek in the configuration to its URL: once the rotation has settled, keygate will not start with only the old one",
			"kek", rot.ToKEK, "configured", rot.FromKEK)
	}
	if r.isSettled(rot.ID) {
		return nil
	}
	remaining := 0
	if rot.FinishedAt == nil {
		r.spawn(rot)
	} else {
		// A node that had not yet followed may have sealed under the old
		// KEK after the rotation finished: rewrap those too.
		if remaining, err = r.st.CountNotWrappedBy(ctx, rot.ToKEK, kekURLPattern); err != nil {
			return fmt.Errorf("vault: count data keys to rewrap: %w", err)
		}
		if remaining > 0 {
			r.spawn(rot)
		}
	}
	if rot.FinishedAt != nil && remaining == 0 && !r.now().Before(rot.FinishedAt.Add(r.grace)) {
		return r.pruneSettled(ctx, rot.ID)
	}
	_, err = r.prune(ctx, false)
	return err
}

// pruneSettled prunes after the rotation with the given ID ("" for none)
// has settled. Once nothing is left to delete, later syncs skip the work
// until another rotation starts: after the grace no node is left to
// follow, or to seal under the old KEK.
func (r *Rotator) pruneSettled(ctx context.Context, id string) error {
	if r.isSettled(id) {
		return nil
	}
	kept, err := r.prune(ctx, true)
	if err == nil && kept == 0 {
		r.mu.Lock()
		r.settled = id
		r.settledSet = true
		r.mu.Unlock()
	}
	return err
}

// isSettled reports whether the rotation with the given ID ("" for none)
// was found settled, with nothing left to delete.
func (r *Rotator) isSettled(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.settledSet && r.settled == id
}

// registerSupplied records, once per process, the configured KEKs whose URL
// this vault knows in the KEK registry (redacted, never a key).
func (r *Rotator) registerSupplied(ctx context.Context) error {
	r.mu.Lock()
	done := r.registered
	r.mu.Unlock()
	if done {
		return nil
	}
	r.v.mu.RLock()
	urls := map[string]secret.String{}
	for id := range r.v.supplied {
		if u, ok := r.v.urls[id]; ok {
			urls[id] = u
		}
	}
	r.v.mu.RUnlock()
	for id, u := range urls {
		if err := r.register(ctx, id, u.Reveal()); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.registered = true
	r.mu.Unlock()
	return nil
}

func (r *Rotator) spawn(rot store.KEKRotation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.working[rot.ID] || r.base.Err() != nil {
		return
	}
	r.working[rot.ID] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.working, rot.ID)
			r.mu.Unlock()
		}()
		r.work(r.base, rot)
	}()
}

// work rewraps until nothing is left under another KEK, or ctx ends.
func (r *Rotator) work(ctx context.Context, rot store.KEKRotation) {
	for ctx.Err() == nil {
		failures, err := r.pass(ctx, rot)
		if ctx.Err() != nil {
			return
		}
		if err == nil && failures == nil {
			remaining, cerr := r.st.CountNotWrappedBy(ctx, rot.ToKEK, kekURLPattern)
			if cerr == nil && remaining == 0 {
				if ferr := r.st.FinishKEKRotation(ctx, rot.ID, r.now()); ferr != nil {
					err = ferr
				} else {
					if rot.FinishedAt == nil {
						r.log.Info("key-encryption key rotation finished", "rotation", rot.ID, "to", rot.ToKEK)
					} else {
						r.log.Info("rewrapped data keys sealed under an old KEK after the rotation had finished", "rotation", rot.ID, "to", rot.ToKEK)
					}
					if _, perr := r.prune(ctx, r.grace == 0); perr != nil {
						r.log.Error("vault: could not delete the KEK locators; will retry", "err", perr)
					}
					return
				}
			} else if cerr != nil {
				err = cerr
			}
			// Versions written under the old KEK by a node that has not
			// synced yet: go round again.
		}
		msg := ""
		switch {
		case err != nil:
			msg = err.Error()
		case failures != nil:
			msg = failures.Error()
		}
		if msg != "" {
			r.log.Error("key-encryption key rotation could not rewrap every data key; retrying", "rotation", rot.ID, "err", msg)
			_ = r.st.KEKRotationProgress(ctx, rot.ID, 0, msg, r.now())
			sleep(ctx, retryAfterFailure)
		} else {
			sleep(ctx, rot.BatchInterval)
		}
	}
}

// pass makes one sweep over every version not under the target KEK. err is
// a database failure that stopped the pass; failures are versions that
// could not be rewrapped (the pass went on without them).
func (r *Rotator) pass(ctx context.Context, rot store.KEKRotation) (failures error, err error) {
	to, ok := r.v.KEK(rot.ToKEK)
	if !ok {
		if to, err = r.v.Resolve(ctx, rot.ToKEK); err != nil {
			return nil, fmt.Errorf("open the target KEK %s: %w", rot.ToKEK, err)
		}
	}
	afterID, afterVersion, failed := "", 0, 0
	var first error
	for {
		batch, err := r.st.RewrapCandidates(ctx, rot.ToKEK, kekURLPattern, afterID, afterVersion, rot.BatchSize)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		done := 0
		for _, sv := range batch {
			ok, err := r.rewrap(ctx, sv, to)
			switch {
			case err != nil:
				failed++
				if first == nil {
					first = err
				}
			case ok:
				done++
			}
		}
		last := batch[len(batch)-1]
		afterID, afterVersion = last.ID, last.Version
		if err := r.st.KEKRotationProgress(ctx, rot.ID, done, "", r.now()); err != nil {
			return nil, err
		}
		if len(batch) < rot.BatchSize {
			break
		}
		if !sleep(ctx, rot.BatchInterval) {
			return nil, ctx.Err()
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d data keys could not be rewrapped; the first: %w", failed, first), nil
	}
	return nil, nil
}

// rewrap moves one version's data key under to.
func (r *Rotator) rewrap(ctx context.Context, sv store.SecretVersion, to KEK) (bool, error) {
	from, err := r.v.kekFor(ctx, sv)
	if err != nil {
		return false, err
	}
	dek, err := from.Unwrap(ctx, sv.WrappedDEK)
	defer clear(dek)
	if err != nil {
		return false, fmt.Errorf("vault: record %q version %d: unwrap its data key with KEK %s: %w", sv.ID, sv.Version, from.ID(), err)
	}
	if len(dek) != dekSize {
		return false, fmt.Errorf("vault: record %q version %d: unwrapped data key has the wrong length: %w", sv.ID, sv.Version, ErrTampered)
	}
	wrapped, err := to.Wrap(ctx, dek)
	if err != nil {
		return false, fmt.Errorf("vault: record %q version %d: wrap its data key with KEK %s: %w", sv.ID, sv.Version, to.ID(), err)
	}
	ok, err := r.st.Rewrap(ctx, sv, to.ID(), wrapped)
	if ok {
		r.v.Forget(sv.ID)
	}
	return ok, err
}

// staleAfter is how long without a heartbeat before a rotation counts as
// paused: no node is working on it (every node was stopped mid-way).
func staleAfter(rot store.KEKRotation) time.Duration {
	return 3*rot.BatchInterval + 2*retryAfterFailure + 10*time.Second
}

// sleep waits d or until ctx ends, reporting whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// KEKKind names the kind of KEK an ID belongs to: "file", "passphrase" or
// "kms".
func KEKKind(id string) string {
	switch {
	case strings.HasPrefix(id, "local:"):
		return "file"
	case strings.HasPrefix(id, "passphrase:"):
		return "passphrase"
	case strings.HasPrefix(id, "kms:"):
		return "kms"
	}
	return "unknown"
}
