// Package server is keygate's composition root: it builds every part from
// a validated configuration, serves the gateway and admin listeners, and
// shuts down gracefully. cmd/keygate calls it; so do end-to-end tests and the
// benchmark harness, which run keygate in-process.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/lastused"
	"github.com/keygate/keygate/internal/logbuf"
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

// Run builds every part from the configuration, serves until ctx ends,
// then shuts down gracefully: new connections are refused and in-flight
// requests and streams get up to shutdown_grace to finish.
func Run(ctx context.Context, cfg config.Config, stdout, stderr io.Writer, ready func(Listening)) error {
	logOut := logbuf.New(stderr, 64<<10, 100*time.Millisecond)
	defer logOut.Close()
	log := newLogger(cfg.Log, logOut)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}

	c, err := openCore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer c.st.Close()
	kek, st, v, hasher := c.kek, c.st, c.vault, c.hasher
	verifier := apikey.NewVerifier(hasher, st, apikey.WithTTL(cfg.KeyCacheTTL))

	loadTable := func(ctx context.Context) (*route.Table, error) { return route.Load(ctx, st, v) }
	table, err := loadTable(ctx)
	if err != nil {
		return err
	}
	used := lastused.New(st, log)
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
		KeyUsed:        used.Seen,
	}, table)
	adm := admin.New(admin.Options{
		Store: st, Vault: v, Hasher: hasher, Log: log,
		ProvidersChanged: gw.Reload,
		KeyRevoked:       verifier.Invalidate,
	})

	bootstrap, isNew, err := admin.EnsureBootstrapToken(ctx, st, hasher, time.Now())
	if err != nil {
		return fmt.Errorf("admin credential: %w", err)
	}

	tlsCfg, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	gwLn, err := listen(cfg.Listen, tlsCfg)
	if err != nil {
		return fmt.Errorf("gateway listener: %w", err)
	}
	admLn, err := listen(cfg.AdminListen, tlsCfg)
	if err != nil {
		gwLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	addrs := Listening{Gateway: scheme + "://" + gwLn.Addr().String(), Admin: scheme + "://" + admLn.Addr().String()}

	if isNew {
		fmt.Fprintf(stdout, `
keygate admin credential (shown once; keep it safe):

    %s

Log the CLI in with:  keygate login   (or export KEYGATE_ADMIN_TOKEN=...)

`, bootstrap.Reveal())
	}
	fmt.Fprintf(stdout, "keygate gateway listening on %s (OpenAI base URL %s/v1)\nkeygate admin API listening on %s\n", addrs.Gateway, addrs.Gateway, addrs.Admin)
	log.Info("keygate started", "gateway", addrs.Gateway, "admin", addrs.Admin, "database", st.Dialect().String(), "providers", len(table.Upstreams()), "kek", kek.ID())

	servers := []*http.Server{newServer(gw, log), newServer(adm, log)}
	errc := make(chan error, 2)
	for i, ln := range []net.Listener{gwLn, admLn} {
		go func() { errc <- servers[i].Serve(ln) }()
	}
	refreshCtx, stopRefresh := context.WithCancel(context.Background())
	defer stopRefresh()
	go gw.RefreshEvery(refreshCtx, cfg.ProviderRefresh)
	usedDone := make(chan struct{})
	go func() { used.Run(refreshCtx, 5*time.Second); close(usedDone) }()
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
	kek    *vault.LocalKEK
	st     *store.Store
	vault  *vault.Vault
	hasher *apikey.Hasher
}

// openCore opens the master key, the database, the vault and the key pepper.
// With create false, a missing master key is an error instead of a new key:
// commands other than serve must never start a second, empty vault.
func openCore(ctx context.Context, cfg config.Config, log *slog.Logger, create bool) (*core, error) {
	if !create {
		if _, err := os.Stat(cfg.MasterKeyPath()); err != nil {
			return nil, fmt.Errorf("master key %s: %w (point --data-dir or --config at the keygate installation)", cfg.MasterKeyPath(), err)
		}
	}
	kek, created, err := vault.LoadOrCreateKeyFile(cfg.MasterKeyPath())
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if created {
		log.Info("created a new master key; back it up: without it the vault cannot be opened", "path", cfg.MasterKeyPath())
	}
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	v := vault.New(kek, st)
	pepper, err := v.Ensure(ctx, "system/key-pepper", 32)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("key pepper: %w", err)
	}
	hasher, err := apikey.NewHasher([]byte(pepper.Reveal()))
	if err != nil {
		st.Close()
		return nil, err
	}
	return &core{kek: kek, st: st, vault: v, hasher: hasher}, nil
}

// CreateAdminToken issues a new admin credential by opening the data
// directory directly, for an operator who has lost theirs: holding the
// master key and the database already means holding everything keygate
// protects, so this grants nothing new. keygate need not be running.
func CreateAdminToken(ctx context.Context, cfg config.Config, name string, stderr io.Writer) (secret.String, error) {
	c, err := openCore(ctx, cfg, newLogger(cfg.Log, stderr), false)
	if err != nil {
		return secret.String{}, err
	}
	defer c.st.Close()
	return admin.NewToken(ctx, c.st, c.hasher, name, time.Now())
}

func newServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
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

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
