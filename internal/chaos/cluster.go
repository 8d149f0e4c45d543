package chaos

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// database is a PostgreSQL database of the suite's own, on the server the
// caller named, dropped at the end.
type database struct {
	admin string // URL of the server's maintenance database
	name  string
	host  string // host:port of the server
	url   *url.URL
}

func createDatabase(ctx context.Context, base string) (*database, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return nil, fmt.Errorf("the PostgreSQL URL must be postgres://user@host:port/db, not %q", redactURL(base))
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	d := &database{admin: base, name: "keygate_chaos_" + hex.EncodeToString(b), host: u.Host, url: u}
	if err := d.exec(ctx, "CREATE DATABASE "+d.name); err != nil {
		return nil, fmt.Errorf("create database %s on %s: %w (the suite needs a PostgreSQL role that may create databases)", d.name, u.Host, err)
	}
	return d, nil
}

func (d *database) exec(ctx context.Context, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// urlVia is the database's URL reached through addr instead of the server.
func (d *database) urlVia(addr string) string {
	u := *d.url
	u.Host = addr
	u.Path = "/" + d.name
	return u.String()
}

// terminateBackends ends every server process connected to the suite's
// database, as a PostgreSQL restart does to its clients.
func (d *database) terminateBackends(ctx context.Context) error {
	return d.exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", d.name)
}

func (d *database) drop() error {
	return d.exec(context.Background(), "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)")
}

// redactURL drops the password from a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// redisServer is a redis-server process of the suite's own, on a free
// port, appending every write to a file so a restart keeps the counters.
type redisServer struct {
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not installed (Debian: apt-get install redis-server); the suite runs a Redis of its own")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{bin: bin, dir: filepath.Join(dir, "redis"), port: port}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, err
	}
	return r, r.start()
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) start() error {
	log, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	r.cmd = exec.Command(r.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes")
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(r.cmd, r.done)
	return waitTCP(r.addr(), 10*time.Second, r.done)
}

// stop shuts Redis down cleanly (SIGTERM: it flushes its append-only file).
func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// sigterm and sigkill are the signals a node is stopped with.
const (
	sigterm = syscall.SIGTERM
	sigkill = syscall.SIGKILL
)

// node is one `keygate serve` child process and its links to Redis and
// PostgreSQL.
type node struct {
	idx        int
	name       string
	dir        string
	gateway    string // host:port
	admin      string // host:port
	env        []string
	redisLink  *link
	pgLink     *link
	logPath    string
	bin        string
	credential string     // the bootstrap admin credential, first node's first start only
	disk       *auditDisk // where its audit file lives, when the suite could mount one

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	prefix string // request ids this process issues start with it
}

var (
	credentialRe = regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`)
	adminRe      = regexp.MustCompile(`keygate admin API listening on (\S+)`)
)

// start runs the node and waits until its admin API listens.
func (n *node) start(ctx context.Context) error {
	log, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, "serve", "--data-dir", n.dir, "--listen", n.gateway, "--admin-listen", n.admin)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer log.Close()
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if m := credentialRe.FindString(line); m != "" {
				n.mu.Lock()
				n.credential = m
				n.mu.Unlock()
				line = credentialRe.ReplaceAllString(line, "kg_admin_(redacted)")
			}
			fmt.Fprintln(log, line)
			if !signalled && adminRe.MatchString(line) {
				signalled = true
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	select {
	case <-ready:
	case <-done:
		return fmt.Errorf("%s exited at start; its log is %s", n.name, n.logPath)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("%s did not start within 60s; its log is %s", n.name, n.logPath)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return ctx.Err()
	}
	return nil
}

// running reports whether the node's process is alive.
func (n *node) running() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// pid is the node's process id, 0 when it is not running.
func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// signal sends sig and waits up to wait for the process to end.
func (n *node) signal(sig syscall.Signal, wait time.Duration) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %v of %v; killed", n.name, wait, sig)
	}
}

// waitReady polls the node's /readyz until it answers 200.
func (n *node) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		if ready(c, n.gateway) {
			return nil
		}
		if !n.running() {
			return fmt.Errorf("%s exited; its log is %s", n.name, n.logPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within %v; its log is %s", n.name, within, n.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// learnPrefix reads the request-id prefix this process uses from a probe.
func (n *node) learnPrefix(c *http.Client) {
	resp, err := c.Get("http://" + n.gateway + "/healthz")
	if err != nil {
		return
	}
	resp.Body.Close()
	if p := requestIDPrefix(resp.Header.Get("X-Request-Id")); p != "" {
		n.mu.Lock()
		n.prefix = p
		n.mu.Unlock()
	}
}

// processPrefix is the request-id prefix of the node's current process.
func (n *node) processPrefix() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.prefix
}

// requestIDPrefix is the part of a keygate request id (req_<process>_<n>)
// that names the process which answered.
func requestIDPrefix(id string) string {
	i := strings.LastIndexByte(id, '_')
	if i <= 0 {
		return ""
	}
	return id[:i]
}

// ready asks the node at addr whether it is ready.
func ready(c *http.Client, addr string) bool {
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// haproxy is the load balancer in front of the nodes.
type haproxy struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startHAProxy(dir string, nodes []*node) (*haproxy, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, errors.New("haproxy is not installed (Debian: apt-get install haproxy); the suite puts a real load balancer in front of the nodes")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 30s
    # A node that dies with the request, or refuses the connection, is
    # retried on another: the retry a production load balancer makes.
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response

frontend gateway
    bind 127.0.0.1:%d
    option forwardfor
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2
`, port)
	for _, n := range nodes {
		fmt.Fprintf(&b, "    server %s %s check\n", n.name, n.gateway)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy refused the generated configuration %s: %v\n%s", cfg, err, out)
	}
	log, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	h := &haproxy{addr: "127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	h.cmd = exec.Command(bin, "-db", "-f", cfg)
	h.cmd.Stdout, h.cmd.Stderr = log, log
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start haproxy: %w", err)
	}
	go func() { _ = h.cmd.Wait(); close(h.done) }()
	if err := waitTCP(h.addr, 10*time.Second, h.done); err != nil {
		return nil, fmt.Errorf("haproxy: %w (its log is %s)", err, log.Name())
	}
	return h, nil
}

func (h *haproxy) stop() {
	if h == nil || h.cmd.Process == nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

// freePort asks the kernel for a free loopback port. A process started
// later binds it; on a busy machine another may take it first, and that
// start then fails with a clear message.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts a connection, or the process whose
// done channel is given exits.
func waitTCP(addr string, within time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("the process meant to listen on %s exited", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v", addr, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
