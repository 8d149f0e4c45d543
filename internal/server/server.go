// Package server is keygate's composition root: it builds every part from
// a validated configuration, serves the gateway and admin listeners, and
// shuts down gracefully. cmd/keygate calls it; so do end-to-end tests and the
// benchmark harness, which run keygate in-process.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/buildinfo"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/secret"
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
	ready   func(Listening)
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

// WithReady sets a function Serve calls with the listening addresses once
// the listeners serve and the background tasks run (tests use port 0 and
// learn the ports this way).
func WithReady(ready func(Listening)) Option { return func(o *runOptions) { o.ready = ready } }

func applyOptions(opts []Option) runOptions {
	o := runOptions{getenv: os.Getenv, version: buildinfo.Read("").String()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Run is a node's whole life: Build, Serve until ctx ends, then Shutdown.
// New connections are refused then, and in-flight requests and streams get
// up to shutdown_grace to finish. ready, when not nil, is told the
// listening addresses once keygate serves.
func Run(ctx context.Context, cfg config.Config, stdout, stderr io.Writer, ready func(Listening), opts ...Option) error {
	if ready != nil {
		opts = append(slices.Clip(opts), WithReady(ready))
	}
	n, err := Build(ctx, cfg, stdout, stderr, opts...)
	if err != nil {
		return err
	}
	serveErr := n.Serve(ctx)
	return errors.Join(serveErr, n.Shutdown(context.Background()))
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

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
