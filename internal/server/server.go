// Package server is keygate's composition root: it builds every part from
// a validated configuration, serves the gateway and admin listeners, and
// shuts down gracefully. cmd/keygate calls it; so do end-to-end tests and the
// benchmark harness, which run keygate in-process.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/buildinfo"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/lastused"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/logbuf"
	"github.com/keygate/keygate/internal/metrics"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/web"
)

// Listening reports the addresses keygate serves on, once both listeners are open.
type Listening struct {
	Gateway, Admin string // URLs, such as http://127.0.0.1:8787
}

// Option adjusts how Run, CreateAdminToken and Restore reach their
// surroundings.
type Option func(*runOptions)

type runOptions struct {
	getenv  func(string) string
	prompt  func(string) (secret.String, error)
	version string
}

// WithGetenv sets how passphrase://?env=NAME KEK URLs read the environment
// (default os.Getenv).
func WithGetenv(getenv func(string) string) Option { return func(o *runOptions) { o.getenv = getenv } }

// WithPrompt sets how a passphrase:// KEK asks for its passphrase on the
// terminal (default: there is no terminal).
func WithPrompt(prompt func(string) (secret.String, error)) Option {
	return func(o *runOptions) { o.prompt = prompt }
}

// WithVersion sets the version the admin API reports (default: the
// running binary's, from buildinfo).
func WithVersion(v string) Option { return func(o *runOptions) { o.version = v } }

func applyOptions(opts []Option) runOptions {
	o := runOptions{getenv: os.Getenv, version: buildinfo.Read("").String()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Run builds every part from the configuration, serves until ctx ends,
// then shuts down gracefully: new connections are refused and in-flight
// requests and streams get up to shutdown_grace to finish.
func Run(ctx context.Context, cfg config.Config, stdout, stderr io.Writer, ready func(Listening), opts ...Option) error {
	o := applyOptions(opts)
	logOut := logbuf.New(stderr, 64<<10, 100*time.Millisecond)
	defer logOut.Close()
	log := newLogger(cfg.Log, logOut)
	// Both ports are bound before the master key, the database or the
	// admin credential exists: a start that cannot have its ports (one in
	// use) creates nothing, and the next start is still a first start that
	// prints the admin credential.
	tlsCfg, gwLn, admLn, err := bindListeners(cfg)
	if err != nil {
		return err
	}
	defer gwLn.Close() // a no-op once the servers have shut down
	defer admLn.Close()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}

	// Background work (KEK rewraps, vault sync, the janitor) runs until
	// shutdown, after the listeners have drained.
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	c, err := openCore(ctx, bg, cfg, log, true, o)
	if err != nil {
		return err
	}
	var bgWG sync.WaitGroup
	defer c.close()
	defer c.rot.Wait()
	defer bgWG.Wait()
	defer stopBG()
	st, v, hasher := c.st, c.vault, c.hasher
	verifier := apikey.NewVerifier(hasher, st, apikey.WithTTL(cfg.KeyCacheTTL))

	if err := route.ValidateRouting(cfg.Routing); err != nil {
		return err
	}
	lim, err := newLimits(ctx, cfg, st, log)
	if err != nil {
		return err
	}
	services, err := route.ParseServices(cfg.Services)
	if err != nil {
		return err
	}
	loadTable := func(ctx context.Context) (*route.Table, error) {
		t, err := route.Load(ctx, st, cachedReads{v})
		if err != nil {
			return nil, err
		}
		svcs, err := route.OpenServices(ctx, services, cfg.Services, st, cachedReads{v})
		if err != nil {
			return nil, err
		}
		return t.WithRouting(cfg.Routing, lim.gateway.Prices).WithServices(svcs), nil
	}
	table, err := loadTable(ctx)
	if err != nil {
		return err
	}
	for name := range services {
		if svc, _ := table.Service(name); svc.Unavailable != "" {
			log.Warn("a passthrough service cannot be used until its credential is stored", "service", name, "reason", svc.Unavailable)
		}
	}
	for _, a := range table.Aliases() {
		if len(a.Unavailable) > 0 {
			log.Warn("a model alias has deployments whose provider is not registered; they are left out until it is", "alias", a.Name, "unavailable", a.Unavailable)
		}
	}
	used := lastused.New(st, log)
	defer lim.close()
	tok, err := newTokens(ctx, cfg, st, v)
	if err != nil {
		return err
	}
	risk, closeRisk, err := newRisk(cfg)
	if err != nil {
		return err
	}
	defer closeRisk()
	risk.History = st
	met := metrics.New(metrics.Options{KeyLabels: cfg.Metrics.KeyLabels})
	trail, err := newAudit(ctx, cfg, st, v, log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := trail.w.Close(cctx); err != nil {
			log.Error("the audit trail could not write everything before shutdown", "err", err)
		}
	}()
	var forgetKey func(string) // set once the gateway exists
	det, err := newDetection(ctx, cfg, st, v, trail, met, func(id string) { forgetKey(id) }, log)
	if err != nil {
		return err
	}
	defer det.close()
	verifyTOTP, stepUp, err := newStepUp(cfg, st, v, det, trail, log)
	if err != nil {
		return err
	}
	tok.gateway.VerifyTOTP = verifyTOTP
	gw := gateway.New(gateway.Options{
		Keys:         verifier,
		Log:          log,
		MaxBodyBytes: int64(cfg.MaxBodyBytes),
		Transport: gateway.NewTransport(gateway.TransportOptions{
			DialTimeout:           cfg.Upstream.DialTimeout,
			ResponseHeaderTimeout: cfg.Upstream.ResponseHeaderTimeout,
			MaxIdleConnsPerHost:   cfg.Upstream.MaxIdleConnsPerHost,
		}),
		TrustedProxies: cfg.TrustedProxyPrefixes(),
		AccessLog:      cfg.Log.Requests,
		LoadTable:      loadTable,
		PassthroughTransport: passthrough.NewTransport(passthrough.TransportOptions{
			DialTimeout: cfg.Upstream.DialTimeout, ResponseHeaderTimeout: cfg.Upstream.ResponseHeaderTimeout, MaxIdleConnsPerHost: cfg.Upstream.MaxIdleConnsPerHost,
		}),
		Breaker:         balance.BreakerConfig{Failures: cfg.Routing.Breaker.Failures, Cooldown: cfg.Routing.Breaker.Cooldown},
		KeyUsed:         used.Seen,
		Limits:          lim.gateway,
		Tokens:          tok.gateway,
		Risk:            risk,
		Metrics:         met,
		Audit:           trail.w,
		AuditFailClosed: cfg.Audit.FailClosed,
		Detect:          det.engine,

		MaxInflightBodyBytes: int64(cfg.Client.MaxInflightBodyBytes),
	}, table)
	forgetKey = gw.ForgetKey
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	addrs := Listening{Gateway: scheme + "://" + gwLn.Addr().String(), Admin: scheme + "://" + admLn.Addr().String()}
	roles, err := cfg.RoleTable()
	if err != nil {
		return err
	}
	adm := admin.New(admin.Options{
		Store: st, Vault: v, Hasher: hasher, Log: log,
		People: st, Credentials: st, Approvals: st,
		Roles:            roles,
		Approval:         admin.ApprovalPolicy{RequiredFor: cfg.ApprovalPermissions(), TTL: cfg.Approvals.TTL},
		TrustedProxies:   cfg.TrustedProxyPrefixes(),
		AuthFailures:     &admin.AuthFailureLimits{Limiter: limit.NewMemory(), Max: cfg.Limits.AuthFailures, Window: cfg.Limits.AuthFailureWindow},
		ProvidersChanged: gw.Reload,
		KeyRevoked:       gw.ForgetKey,
		GroupsChanged:    lim.groupsChanged,
		Metrics:          met.Handler(),
		Audit:            trail.w,
		AuditStore:       st,
		AuditKey:         trail.pub,
		AuditFailClosed:  cfg.Audit.FailClosed,
		UsageLocation:    cfg.Limits.Location(),
		Rotator:          c.rot,
		OpenKEK: func(ctx context.Context, url string) (vault.KEK, error) {
			return c.openKEK(ctx, url, true)
		},
		Backup: func(ctx context.Context, w io.Writer) error {
			snap, err := st.ExportSnapshot(ctx)
			if err != nil {
				return err
			}
			return vault.WriteBackup(ctx, w, v.Current(), snap, time.Now())
		},
		Egress:               cfg.EgressPolicy(),
		Version:              o.version,
		GatewayURL:           addrs.Gateway,
		ProviderKeyGrace:     cfg.Vault.ProviderKeyGrace,
		SecretRecoveryWindow: cfg.Vault.SecretRecoveryWindow,
	})

	// Made only now, with nothing left that can fail before it is shown:
	// a credential stored but never printed would lock the operator out.
	bootstrap, isNew, err := admin.EnsureBootstrapToken(ctx, st, hasher, time.Now())
	if err != nil {
		return fmt.Errorf("admin credential: %w", err)
	}
	if isNew {
		fmt.Fprintf(stdout, `
keygate admin credential (shown once; keep it safe):

    %s

It is an owner's and expires in %d days. Log the CLI in with:  keygate login
(or export KEYGATE_ADMIN_TOKEN=...), add the first user with
keygate user add NAME --role owner, then revoke it (keygate admin-token revoke).

`, bootstrap.Reveal(), int(admin.BootstrapTTL.Hours()/24))
	}
	if toks, err := st.ListAdminTokens(ctx); err == nil {
		var ids []string
		for _, t := range toks {
			if t.RevokedAt == nil && t.ExpiresAt == nil {
				ids = append(ids, t.ID)
			}
		}
		if len(ids) > 0 {
			log.Warn("admin credentials from before credentials expired never expire; issue replacements (keygate user token create, keygate admin token create) and revoke these with keygate admin-token revoke", "token_ids", strings.Join(ids, ","))
		}
	}
	if tok, valid, err := admin.BootstrapStillValid(ctx, st, st, time.Now()); err != nil {
		log.Warn("could not check whether the bootstrap admin credential is still valid", "err", err)
	} else if valid {
		log.Warn("the bootstrap admin credential is still valid though users exist; revoke it: keygate admin-token revoke "+tok.ID, "token_id", tok.ID, "expires_at", tok.ExpiresAt)
		fmt.Fprintf(stdout, "warning: the bootstrap admin credential %s is still valid though users exist; revoke it with keygate admin-token revoke %s\n", tok.ID, tok.ID)
	}
	fmt.Fprintf(stdout, "keygate gateway listening on %s (OpenAI base URL %s/v1)\nkeygate admin API listening on %s\n", addrs.Gateway, addrs.Gateway, addrs.Admin)
	log.Info("keygate started", "gateway", addrs.Gateway, "admin", addrs.Admin, "database", st.Dialect().String(), "providers", len(table.Upstreams()), "kek", v.KEKID(), "kek_url", vault.RedactKEKURL(cfg.KEKURL()))

	servers := []*http.Server{newServer(gw, cfg.Client, log), newServer(adm, cfg.Client, log)}
	errc := make(chan error, 2)
	for i, ln := range []net.Listener{gwLn, admLn} {
		go func() { errc <- servers[i].Serve(ln) }()
	}
	refreshCtx, stopRefresh := context.WithCancel(context.Background())
	defer stopRefresh()
	go gw.RefreshEvery(refreshCtx, cfg.ProviderRefresh)
	usedDone := make(chan struct{})
	go func() { used.Run(refreshCtx, 5*time.Second); close(usedDone) }()
	bgWG.Add(11)
	go every(bg, &bgWG, 5*time.Second, func() { met.AuditLag(trail.w.Lag()) })
	go func() { defer bgWG.Done(); det.run(bg) }()
	go func() {
		defer bgWG.Done()
		var loop sync.WaitGroup
		loop.Add(1)
		// Histories are read when a key is first used on a node, so saving
		// them often buys little; every busy key is rewritten each time.
		every(bg, &loop, time.Minute, func() { gw.FlushHistories(bg) })
		// What the last requests taught is kept across the restart.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		gw.FlushHistories(fctx)
		cancel()
	}()
	go every(bg, &bgWG, cfg.Vault.JanitorInterval, func() { adm.RunRotations(bg) })
	go func() {
		defer bgWG.Done()
		followRevocations(bg, st, gw.Revoked, log)
	}()
	go every(bg, &bgWG, 5*time.Minute, func() {
		if err := tok.ring.Rotate(bg, time.Now()); err != nil {
			log.Error("token signing key rotation failed; will retry", "err", err)
		}
	})
	go every(bg, &bgWG, cfg.ProviderRefresh, func() {
		if err := tok.ring.Refresh(bg); err != nil {
			log.Warn("token signing key refresh failed; will retry", "err", err)
		}
	})
	go func() { defer bgWG.Done(); lim.usage.Run(refreshCtx, 5*time.Second) }()
	go every(bg, &bgWG, cfg.ProviderRefresh, func() {
		if err := lim.groups.reload(bg); err != nil {
			log.Warn("key group refresh failed; keeping the previous limits", "err", err)
		}
	})
	go every(bg, &bgWG, cfg.ProviderRefresh, func() {
		if err := c.rot.Sync(bg); err != nil {
			log.Error("vault: could not follow the key-encryption key rotation; keygate seals no new secret until it can open the vault's current KEK", "err", err)
		}
	})
	go every(bg, &bgWG, cfg.Vault.JanitorInterval, func() {
		if _, err := st.PruneRevocations(bg, time.Now()); err != nil {
			log.Warn("could not prune the revocation log; will retry", "err", err)
		}
		if _, err := stepUp.Prune(bg, time.Now()); err != nil {
			log.Warn("could not prune the one-time-password counts; will retry", "err", err)
		}
		destroyed, purged, err := vault.Sweep(bg, st, v, time.Now())
		if err != nil {
			log.Error("vault: could not destroy expired secret versions; will retry", "err", err)
		}
		if destroyed+purged > 0 {
			log.Info("vault: destroyed expired secrets", "superseded_versions", destroyed, "deleted_secrets", purged)
		}
	})
	if ready != nil {
		ready(addrs)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("keygate shutting down; waiting for in-flight requests", "grace", cfg.ShutdownGrace.String())
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(shutCtx); err != nil {
			log.Warn("grace period ended with requests still running; closing them", "err", err)
			s.Close()
		}
	}
	stopRefresh() // last-use times of the final requests are written before keygate exits
	<-usedDone
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

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

// every runs fn each interval until ctx ends, then marks wg done.
func every(ctx context.Context, wg *sync.WaitGroup, interval time.Duration, fn func()) {
	defer wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// CreateAdminToken issues a new admin credential of no user, with role,
// living ttl, by opening the data directory directly, for an operator who
// has lost theirs: holding the key-encryption key and the database already
// means holding everything keygate protects, so this grants nothing new.
// keygate need not be running.
func CreateAdminToken(ctx context.Context, cfg config.Config, name, role string, ttl time.Duration, stderr io.Writer, opts ...Option) (secret.String, error) {
	roles, err := cfg.RoleTable()
	if err != nil {
		return secret.String{}, err
	}
	if err := roles.CheckRole(role); err != nil {
		return secret.String{}, fmt.Errorf("--role: %w", err)
	}
	if r, _ := roles.Role(role); r.Team {
		return secret.String{}, fmt.Errorf("--role: %s applies only within a team, and a credential of no user belongs to none; give a role that applies everywhere, such as owner or admin", role)
	}
	if ttl <= 0 || ttl > admin.MaxTokenTTL {
		return secret.String{}, fmt.Errorf("--ttl: give a lifetime from 1s to %d days", int(admin.MaxTokenTTL.Hours()/24))
	}
	bg, stop := context.WithCancel(ctx)
	defer stop()
	c, err := openCore(ctx, bg, cfg, newLogger(cfg.Log, stderr), false, applyOptions(opts))
	if err != nil {
		return secret.String{}, err
	}
	defer c.close()
	defer c.rot.Wait()
	defer stop()
	tok, _, err := admin.NewToken(ctx, c.st, c.hasher, admin.TokenSpec{Name: name, Role: role, TTL: ttl}, time.Now())
	return tok, err
}

// newServer serves h with the client bounds: headers and bodies must
// arrive in time (the body deadline wraps the handler outermost, on the
// server's own ResponseWriter), and idle connections are closed.
func newServer(h http.Handler, c config.Client, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           web.BodyDeadline(c.ReadBodyTimeout)(h),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// bindListeners loads the TLS configuration and binds the gateway and
// admin ports; it returns the admin listeners' TLS configuration (nil for
// plain HTTP). On error nothing stays bound.
func bindListeners(cfg config.Config) (*tls.Config, net.Listener, net.Listener, error) {
	tlsCfg, err := serverTLS(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	gwTLS := tlsCfg
	if tlsCfg != nil && cfg.TLS.ClientCA != "" {
		if gwTLS, err = withClientCA(tlsCfg, cfg.TLS.ClientCA); err != nil {
			return nil, nil, nil, err
		}
	}
	gwLn, err := listen(cfg.Listen, gwTLS)
	if err != nil {
		return nil, nil, nil, listenError("gateway", cfg.Listen, "--listen (listen: in the config file)", err)
	}
	admLn, err := listen(cfg.AdminListen, tlsCfg)
	if err != nil {
		gwLn.Close()
		return nil, nil, nil, listenError("admin", cfg.AdminListen, "--admin-listen (admin_listen: in the config file)", err)
	}
	return tlsCfg, gwLn, admLn, nil
}

// listenError says which listener could not bind and what to do about it.
func listenError(which, addr, setting string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s listener: %s is in use by another program (perhaps another keygate): stop it, or give keygate another address with %s (%w)", which, addr, setting, err)
	}
	return fmt.Errorf("%s listener on %s: %w (check the address given with %s)", which, addr, err, setting)
}

func listen(addr string, tlsCfg *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		return tls.NewListener(ln, tlsCfg), nil
	}
	return ln, nil
}

// serverTLS loads or makes the certificate both listeners serve, or nil for plain HTTP.
func serverTLS(cfg config.Config) (*tls.Config, error) {
	switch {
	case cfg.TLS.Cert != "":
		cert, err := web.LoadCertificate(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return nil, err
		}
		return web.TLSConfig(cert), nil
	case cfg.TLS.SelfSigned:
		var hosts []string
		for _, a := range []string{cfg.Listen, cfg.AdminListen} {
			if h, _, err := net.SplitHostPort(a); err == nil {
				hosts = append(hosts, h)
			}
		}
		certPath := filepath.Join(cfg.DataDir, "tls", "self-signed.crt")
		cert, err := web.SelfSigned(certPath, hosts, time.Now())
		if err != nil {
			return nil, err
		}
		return web.TLSConfig(cert), nil
	}
	return nil, nil
}

// withClientCA asks gateway clients for a certificate from the CAs in
// caFile and verifies any they present; presenting none stays allowed (keys
// that require one are refused at the key check).
func withClientCA(base *tls.Config, caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls.client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.client_ca: %s holds no PEM certificate", caFile)
	}
	c := base.Clone()
	c.ClientAuth = tls.VerifyClientCertIfGiven
	c.ClientCAs = pool
	return c, nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
