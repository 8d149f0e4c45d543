package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/console"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/lastused"
	"github.com/keygate/keygate/internal/logbuf"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/metrics"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/ready"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/tracing"
	"github.com/keygate/keygate/internal/vault"
)

// Node is one running keygate: every part built from one configuration,
// the two listeners, and the background tasks. Its life has three phases,
// each one method: Build makes every part, Serve serves until its context
// ends, Shutdown drains and closes. Run is the three in a row.
type Node struct {
	cfg    config.Config
	o      runOptions
	stdout io.Writer
	log    *slog.Logger
	logOut *logbuf.Writer
	plan   *plan
	addrs  Listening
	// providers is how many providers the first routing table holds, for the start log.
	providers int

	gwLn, admLn net.Listener
	servers     []*http.Server // gateway, admin

	// stopBG ends the vault's background rewraps at shutdown, after the
	// tasks and before the store closes.
	stopBG context.CancelFunc
	core   *core

	lim   *limits
	tok   *tokens
	trail *auditTrail
	det   *detection
	// keys suspends, resumes, revokes and rotates keys with every side
	// effect, for every part that does (keylife).
	keys   *keylife.Service
	stepUp *otp.Verifier
	used   *lastused.Recorder
	met    *metrics.Metrics
	traces *tracing.Provider // nil unless tracing.endpoint is set
	gw     *gateway.Gateway
	mcp    *mcpgate.Gate // MCP servers served at the gateway's /mcp
	adm    *admin.API
	// mcpAuth signs MCP clients in through keygate; nil without sign-in.
	mcpAuth *mcpauth.Server
	revs    *revocationFollower
	// routing merges the file's routing with the database's and follows
	// the routing generation.
	routing *routingFollower
	chg     *changeFollower
	src     *sourceParts   // references and cloud identity
	mint    *minting       // rotations of the provider keys keygate mints
	ready   *ready.Checker // GET /readyz

	runner *taskRunner // the background tasks (taskTable)

	serving  atomic.Bool
	shutOnce sync.Once
	shutErr  error
}

// Build makes every part of a node from cfg, in this order:
//
//  1. check the whole configuration (checkConfig): a configuration keygate
//     cannot run with is refused here, and nothing has been created;
//  2. bind the gateway and admin ports: a port in use is refused here,
//     still before anything is created, so the next start is still a first
//     start that prints the admin credential;
//  3. create the data directory (and a self-signed certificate if asked);
//  4. open the store, the key-encryption key and the vault (openCore);
//  5. build the parts (buildParts);
//  6. make the first admin credential and print it, last, with nothing
//     left that can fail: a credential stored but never shown would lock
//     the operator out.
//
// On error, whatever was made is closed again. ctx bounds the start only.
func Build(ctx context.Context, cfg config.Config, stdout, stderr io.Writer, opts ...Option) (_ *Node, err error) {
	n := &Node{cfg: cfg, o: applyOptions(opts), stdout: stdout}
	logTo := stderr
	if cfg.Log.Output == "stdout" {
		logTo = stdout
	}
	n.logOut = logbuf.New(logTo, 64<<10, 100*time.Millisecond)
	n.log = newLogger(cfg.Log, n.logOut)
	defer func() {
		if err != nil {
			if rerr := n.release(context.Background()); rerr != nil {
				n.log.Warn("closing what a failed start had opened", "err", rerr)
			}
			_ = n.logOut.Close()
		}
	}()

	if n.plan, err = checkConfig(cfg); err != nil {
		return nil, err
	}
	if n.gwLn, n.admLn, err = bindListeners(n.plan); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	var scheme string
	if n.gwLn, n.admLn, scheme, err = serveTLS(n.plan, n.gwLn, n.admLn); err != nil {
		return nil, err
	}
	n.addrs = Listening{Gateway: scheme + "://" + n.gwLn.Addr().String(), Admin: scheme + "://" + n.admLn.Addr().String()}

	var bg context.Context
	bg, n.stopBG = context.WithCancel(context.Background())
	if n.core, err = openCore(ctx, bg, cfg, n.log, true, n.o); err != nil {
		return nil, err
	}
	if err := n.buildParts(ctx); err != nil {
		return nil, err
	}
	reports, err := n.leakReportHandler()
	if err != nil {
		return nil, err
	}
	// The admin listener serves the API under /api/ and the console,
	// which calls that API in-process, everywhere else.
	con, err := console.New(console.Options{API: n.adm, Log: n.log, Version: n.o.version})
	if err != nil {
		return nil, err
	}
	n.servers = []*http.Server{newServer(withLeakReports(n.gw, reports), cfg.Client, n.log), newServer(withAuthorize(con.Mount(), n.mcpAuth), cfg.Client, n.log)}
	n.runner = newTaskRunner(n.taskTable(), n.log)

	if cfg.BootstrapCredential == "none" {
		if toks, err := n.core.st.ListAdminTokens(ctx); err == nil && len(toks) == 0 {
			n.log.Warn("no admin credential exists and bootstrap_credential is none; issue the first with: keygate admin token create --role owner (run where keygate runs, with its configuration)")
		}
	} else {
		bootstrap, isNew, err := admin.EnsureBootstrapToken(ctx, n.core.st, n.core.hasher, time.Now())
		if err != nil {
			return nil, fmt.Errorf("admin credential: %w", err)
		}
		if isNew {
			printBootstrap(stdout, bootstrap)
		}
	}
	n.warnAboutCredentials(ctx)
	return n, nil
}

func printBootstrap(w io.Writer, cred secret.String) {
	fmt.Fprintf(w, `
keygate admin credential (shown once; keep it safe):

    %s

It is an owner's and expires in %d days. Log the CLI in with:  keygate login
(or export KEYGATE_ADMIN_TOKEN=...), add the first user with
keygate user add NAME --role owner, then revoke it (keygate admin-token revoke).

`, cred.Reveal(), int(admin.BootstrapTTL.Hours()/24))
}

// warnAboutCredentials warns while the bootstrap credential outlives the
// first user, and about credentials from before expiry existed.
func (n *Node) warnAboutCredentials(ctx context.Context) {
	st := n.core.st
	if toks, err := st.ListAdminTokens(ctx); err == nil {
		var ids []string
		for _, t := range toks {
			if t.RevokedAt == nil && t.ExpiresAt == nil {
				ids = append(ids, t.ID)
			}
		}
		if len(ids) > 0 {
			n.log.Warn("admin credentials from before credentials expired never expire; issue replacements (keygate user token create, keygate admin token create) and revoke these with keygate admin-token revoke", "token_ids", strings.Join(ids, ","))
		}
	}
	tok, valid, err := admin.BootstrapStillValid(ctx, st, st, time.Now())
	switch {
	case err != nil:
		n.log.Warn("could not check whether the bootstrap admin credential is still valid", "err", err)
	case valid:
		n.log.Warn("the bootstrap admin credential is still valid though users exist; revoke it: keygate admin-token revoke "+tok.ID, "token_id", tok.ID, "expires_at", tok.ExpiresAt)
		if n.cfg.Log.Output != "stdout" {
			fmt.Fprintf(n.stdout, "warning: the bootstrap admin credential %s is still valid though users exist; revoke it with keygate admin-token revoke %s\n", tok.ID, tok.ID)
		}
	}
}

// Listening returns the URLs the node serves on; the ports are bound from
// Build on.
func (n *Node) Listening() Listening { return n.addrs }

// Serve serves the gateway and admin listeners and runs the background
// tasks until ctx ends or a listener fails; it returns the listener's
// error, or nil. The listeners keep serving and the tasks keep running
// after Serve returns, until Shutdown: in-flight requests finish within
// shutdown_grace, and revocations, refreshes and flushes go on while they
// do. Serve is called at most once.
func (n *Node) Serve(ctx context.Context) error {
	if !n.serving.CompareAndSwap(false, true) {
		return errors.New("server: Serve was called twice on one node")
	}
	errc := make(chan error, len(n.servers))
	for i, ln := range []net.Listener{n.gwLn, n.admLn} {
		go func() { errc <- n.servers[i].Serve(ln) }()
	}
	n.runner.start()
	if n.cfg.Log.Output != "stdout" {
		// With logs on stdout the "keygate started" record below says it.
		fmt.Fprintf(n.stdout, "keygate gateway listening on %s (OpenAI base URL %s/v1)\nkeygate admin API listening on %s\n", n.addrs.Gateway, n.addrs.Gateway, n.addrs.Admin)
	}
	n.log.Info("keygate started", "gateway", n.addrs.Gateway, "admin", n.addrs.Admin, "database", n.core.st.Dialect().String(),
		"providers", n.providers, "kek", n.core.vault.KEKID(), "kek_url", vault.RedactKEKURL(n.cfg.KEKURL()))
	if n.o.ready != nil {
		n.o.ready(n.addrs)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Shutdown stops the node, in this order:
//
//  1. /readyz answers 503 from now on; the listeners stop accepting, and in-flight requests and streams get
//     up to shutdown_grace to finish; those still running then are cut;
//  2. every background task stops, and the flushing ones (last-used,
//     usage, risk histories) run once more to write what the last
//     requests left;
//  3. release: alert actions finish and queued alerts are delivered, the
//     audit trail is written out, Redis and the GeoIP database close, the
//     vault's rewraps stop, and the store closes last.
//
// It returns an error when something recorded could not be written (audit
// events a sink did not take). ctx bounds the last flushes; the drain is
// bounded by shutdown_grace. Calling it again returns the same result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutOnce.Do(func() {
		n.log.Info("keygate shutting down; waiting for in-flight requests", "grace", n.cfg.ShutdownGrace.String())
		if n.ready != nil {
			n.ready.Stop()
		}
		n.drain()
		n.runner.stop(ctx)
		n.shutErr = n.release(ctx)
		_ = n.logOut.Close()
	})
	return n.shutErr
}

// drain stops both listeners at once and waits up to shutdown_grace for
// the requests they are serving.
func (n *Node) drain() {
	gctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range n.servers {
		wg.Go(func() {
			if err := s.Shutdown(gctx); err != nil {
				n.log.Warn("grace period ended with requests still running; closing them", "err", err)
				s.Close()
			}
		})
	}
	wg.Wait()
}

// release closes every part, in the order that keeps each one's users
// ahead of it; parts a failed Build never made are skipped.
func (n *Node) release(ctx context.Context) error {
	var errs []error
	// MCP sessions end, and the stdio servers keygate started with them.
	if n.mcp != nil {
		n.mcp.Close()
	}
	// Alert actions write the store and the audit trail; alerts waiting
	// for delivery are sent.
	n.det.close()
	// Everything that records audit events has stopped: write them all.
	if n.trail != nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := n.trail.w.Close(actx); err != nil {
			n.log.Error("the audit trail could not write everything before shutdown", "err", err)
			errs = append(errs, err)
		}
		cancel()
	}
	if n.traces != nil {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := n.traces.Shutdown(tctx); err != nil {
			n.log.Warn("some traces could not be sent to the collector before shutdown", "err", err)
		}
		cancel()
	}
	n.lim.close()
	n.plan.close()
	if n.stopBG != nil {
		n.stopBG()
	}
	if n.core != nil {
		n.core.rot.Wait()
		n.core.close()
	}
	// Listeners a drain has closed are closed again to no effect; these
	// are the ones no server took (a failed Build, or no Serve).
	for _, ln := range []net.Listener{n.gwLn, n.admLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	return errors.Join(errs...)
}
