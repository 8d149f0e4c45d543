package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// core is the state every keygate command that opens the data directory needs.
type core struct {
	cfg     config.Config
	o       runOptions
	st      *store.Store
	vault   *vault.Vault
	rot     *vault.Rotator
	hasher  *apikey.Hasher
	mu      sync.Mutex
	closers []func() error
}

// openCore opens the database, the key-encryption key, the vault and the
// key pepper. With create false, a missing master key is an error instead
// of a new key: commands other than serve must never start a second, empty
// vault. A new key (or passphrase KEK) is made only for an empty vault, so a
// mistyped passphrase or a lost key file fails instead of starting over.
// bg bounds background rewraps.
func openCore(ctx, bg context.Context, cfg config.Config, log *slog.Logger, create bool, o runOptions) (*core, error) {
	if !create && cfg.KEK == "" {
		if _, err := os.Stat(cfg.MasterKeyPath()); err != nil {
			return nil, fmt.Errorf("master key %s: %w (point --data-dir or --config at the keygate installation)", cfg.MasterKeyPath(), err)
		}
	}
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	c := &core{cfg: cfg, o: o, st: st}
	c.closers = append(c.closers, st.Close)
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	counts, err := st.CountByKEK(ctx)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	opened, err := vault.OpenKEK(ctx, cfg.KEKURL(), c.kekOptions(create && len(counts) == 0, o.prompt, st))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	c.closers = append(c.closers, opened.Close)
	if opened.Created {
		log.Info("created a new key-encryption key; back it up: without it the vault cannot be opened", "kek", opened.URL, "id", opened.KEK.ID())
	}
	var previous []vault.KEK
	for _, u := range cfg.KEKPrevious {
		k, err := c.openKEK(ctx, u, false)
		if err != nil {
			return nil, fmt.Errorf("kek_previous: %w", err)
		}
		previous = append(previous, k)
	}
	c.vault = vault.New(opened.KEK, st,
		vault.WithPrevious(previous...),
		vault.WithKEKOpener(func(ctx context.Context, url string) (vault.KEK, error) { return c.openKEK(ctx, url, false) }),
		vault.WithReadCache(cfg.Vault.ReadCacheTTL))
	c.vault.SetKEKURL(opened.KEK.ID(), secret.New(cfg.KEKURL()))
	// Nodes sync every provider_refresh; a finished rotation's locators
	// outlive a few syncs so nodes still on the old KEK can follow.
	c.rot = vault.NewRotator(bg, c.vault, st, log, vault.WithFollowGrace(max(vault.DefaultFollowGrace, 3*cfg.ProviderRefresh)))
	if err := c.rot.Sync(ctx); err != nil {
		return nil, err
	}
	pepper, err := c.vault.Ensure(ctx, "system/key-pepper", 32)
	if err != nil {
		return nil, fmt.Errorf("open the vault with KEK %s (%s): %w", vault.RedactKEKURL(cfg.KEKURL()), opened.KEK.ID(), err)
	}
	if c.hasher, err = apikey.NewHasher([]byte(pepper.Reveal())); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func (c *core) kekOptions(create bool, prompt func(string) (secret.String, error), reg vault.KEKRegistry) vault.KEKOptions {
	return vault.KEKOptions{DataDir: c.cfg.DataDir, Create: create, Getenv: c.o.getenv, Prompt: prompt, Registry: reg}
}

// openKEK opens a KEK by URL with no terminal prompt (a rotation or a
// sealed URL cannot ask), keeping it open until the core closes.
func (c *core) openKEK(ctx context.Context, url string, create bool) (vault.KEK, error) {
	opened, err := vault.OpenKEK(ctx, url, c.kekOptions(create, nil, c.st))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.closers = append(c.closers, opened.Close)
	c.mu.Unlock()
	return opened.KEK, nil
}

func (c *core) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.closers) - 1; i >= 0; i-- {
		if c.closers[i] != nil {
			_ = c.closers[i]()
		}
	}
	c.closers = nil
}

// cachedReads lets the provider table read keys through the vault's read
// cache: a refresh every few seconds costs no database or KMS round trip
// per provider, and a rotation through this node is seen at once.
type cachedReads struct{ v *vault.Vault }

func (c cachedReads) Get(ctx context.Context, id string) (secret.String, int, error) {
	return c.v.GetCached(ctx, id)
}
