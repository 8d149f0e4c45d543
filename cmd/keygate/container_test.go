package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/server"
)

// containerUID is the image's user (Dockerfile: USER 65532).
const containerUID = 65532

// TestBinaryUnderContainerConstraints runs the binary the Dockerfile
// builds (CGO_ENABLED=0) the way the image runs it, without a container
// runtime: as uid 65532, with every file system read-only except the
// data directory (a private mount namespace, when run as root; unshare and
// setpriv exec in turn, so keygate keeps the pid the test signals),
// configured by the image's
// KEYGATE_* variables and a mounted read-only file, listening on all
// interfaces with TLS. It checks that the binary is static, that keygate
// starts and is ready, that `keygate healthcheck` (the image's HEALTHCHECK)
// passes, that logs are JSON, and that SIGTERM lets a stream in flight
// finish before keygate exits 0.
func TestBinaryUnderContainerConstraints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static keygate binary; run without -short")
	}
	root := os.Geteuid() == 0
	unshare, _ := exec.LookPath("unshare")
	setpriv, _ := exec.LookPath("setpriv")
	if root && (unshare == "" || setpriv == "") {
		if os.Getenv("CI") == "true" {
			t.Fatal("unshare and setpriv are needed (apt-get install util-linux); .ci/run installs them")
		}
		t.Skip("install util-linux (unshare, setpriv) to run keygate on a read-only file system as uid 65532")
	}

	base, err := os.MkdirTemp("", "keygate-container-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	noErr(t, os.Chmod(base, 0o755))
	bin := filepath.Join(base, "keygate")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	assertStatic(t, bin)

	data := filepath.Join(base, "data")
	noErr(t, os.Mkdir(data, 0o700))
	etc := filepath.Join(base, "etc")
	noErr(t, os.Mkdir(etc, 0o755))
	conf := filepath.Join(etc, "keygate.yaml")
	noErr(t, os.WriteFile(conf, []byte("shutdown_grace: 20s\nlog: {format: json}\n"), 0o444))
	noErr(t, os.Chmod(etc, 0o555))
	if root {
		noErr(t, os.Chown(data, containerUID, containerUID))
	}
	gwPort, admPort := freePort(t), freePort(t)
	env := []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + data,
		"KEYGATE_DATA_DIR=" + data,
		"KEYGATE_CONFIG=" + conf,
		"KEYGATE_LISTEN=0.0.0.0:" + gwPort,
		"KEYGATE_ADMIN_LISTEN=0.0.0.0:" + admPort,
		"KEYGATE_TLS_SELF_SIGNED=true",
		// As the image sets them: logs on stdout, and no credential in them.
		"KEYGATE_LOG_OUTPUT=stdout",
		"KEYGATE_BOOTSTRAP_CREDENTIAL=none",
	}
	// wrap runs a program as the image runs keygate: as uid 65532, every
	// mount but /proc, /sys and /dev read-only, the data directory a
	// writable bind mount of its own.
	const confine = `data=$1; shift
mount --bind "$data" "$data"
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  case "$m" in /proc*|/sys*|/dev*|"$data") ;; *) mount -o remount,bind,ro "$m" ;; esac
done
exec "$@"`
	wrap := func(prog string, args ...string) *exec.Cmd {
		var cmd *exec.Cmd
		if root {
			cmd = exec.Command(unshare, append([]string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", confine, "sh", data,
				setpriv, "--reuid", strconv.Itoa(containerUID), "--regid", strconv.Itoa(containerUID),
				"--clear-groups", "--no-new-privs", prog}, args...)...)
		} else {
			cmd = exec.Command(prog, args...)
		}
		cmd.Env = env
		cmd.Dir = "/"
		return cmd
	}
	if root {
		// The confinement holds: the data directory is writable, nothing else is.
		if out, err := wrap("/bin/sh", "-c", "touch "+filepath.Join(data, "probe")+" && rm "+filepath.Join(data, "probe")).CombinedOutput(); err != nil {
			t.Fatalf("the data directory is not writable under the confinement: %v\n%s", err, out)
		}
		for _, dir := range []string{base, os.TempDir(), "/dev/shm", "/var/tmp"} {
			if out, err := wrap("/bin/sh", "-c", "touch "+filepath.Join(dir, "keygate-probe")).CombinedOutput(); err == nil {
				os.Remove(filepath.Join(dir, "keygate-probe"))
				if dir != "/dev/shm" { // a tmpfs of the host's; the image has none
					t.Fatalf("%s is writable under the confinement", dir)
				}
			} else if !strings.Contains(string(out), "Read-only") && !strings.Contains(string(out), "Permission denied") {
				t.Fatalf("touch in %s: %v %s", dir, err, out)
			}
		}
	}

	serve := wrap(bin, "serve")
	var stdout, stderr syncBuffer
	serve.Stdout, serve.Stderr = &stdout, &stderr
	noErr(t, serve.Start())
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		if serve.ProcessState == nil {
			_ = serve.Process.Kill()
			<-exited
		}
	})
	waitFor(t, exited, &stderr, func() bool { return strings.Contains(stdout.String(), `"msg":"keygate started"`) })
	if m := regexp.MustCompile(`"gateway":"([^"]+)"`).FindStringSubmatch(stdout.String()); m == nil || !strings.HasPrefix(m[1], "https://") {
		t.Fatalf("keygate does not serve TLS on all interfaces:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "keygate admin token create") {
		t.Fatalf("no word of how to make the first admin credential:\n%s", stdout.String())
	}
	// The first admin credential comes from inside the container, to the
	// operator's terminal, not from the log.
	tokOut, err := wrap(bin, "admin", "token", "create", "--role", "owner").Output()
	admin := regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`).FindString(string(tokOut))
	if err != nil || admin == "" {
		t.Fatalf("keygate admin token create inside the confinement: %v\n%s", err, tokOut)
	}

	// Only the data directory was written, and keygate owns what is in it.
	caFile := filepath.Join(data, "tls", "self-signed.crt")
	for _, name := range []string{"keygate.db", "master.key", "node-id", "tls/self-signed.crt"} {
		fi, err := os.Stat(filepath.Join(data, name))
		if err != nil {
			t.Fatalf("data directory lacks %s: %v", name, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); root && ok && st.Uid != containerUID {
			t.Errorf("%s is owned by uid %d, not %d", name, st.Uid, containerUID)
		}
	}

	// The image's HEALTHCHECK: the same environment, the same constraints.
	hc := wrap(bin, "healthcheck")
	if out, err := hc.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("keygate healthcheck: %v\n%s", err, out)
	}

	// A provider whose stream takes a while, and a key for it.
	upKey := canary("container")
	up := fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: upKey, Chunks: 10, ChunkDelay: 300 * time.Millisecond, ReplyText: "abcdefghij"})
	upSrv := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); upSrv.Close() })
	in := &instance{t: t, admin: admin, stopped: true,
		addrs: server.Listening{Gateway: "https://127.0.0.1:" + gwPort, Admin: "https://127.0.0.1:" + admPort}}
	cliEnv := map[string]string{"KEYGATE_ADMIN_CA": caFile, "UPSTREAM_KEY": upKey}
	if out, errb, err := in.cli(cliEnv, "", "provider", "add", "openai", "--base-url", upSrv.URL+"/v1", "--api-key-env", "UPSTREAM_KEY"); err != nil {
		t.Fatalf("provider add: %v\n%s%s", err, out, errb)
	}
	out, errb, err := in.cli(cliEnv, "", "key", "create", "--name", "app")
	key := regexp.MustCompile(`kg_[a-z0-9]+_[0-9A-Za-z]+`).FindString(out)
	if err != nil || key == "" {
		t.Fatalf("key create: %v\n%s%s", err, out, errb)
	}

	pem, err := os.ReadFile(caFile)
	noErr(t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodPost, in.addrs.Gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "data: ") {
		t.Fatalf("first event: %q %v", first, err)
	}

	// SIGTERM while the stream is in flight, as `docker stop` or the kubelet sends it.
	noErr(t, serve.Process.Signal(syscall.SIGTERM))
	rest, err := readAll(rd)
	if err != nil {
		t.Fatalf("the stream in flight was cut at SIGTERM: %v (got %q)", err, rest)
	}
	if !strings.Contains(rest, "data: [DONE]") {
		t.Fatalf("the stream did not finish after SIGTERM: %q", rest)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("keygate exited with %v after SIGTERM:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("keygate did not exit within its 20s grace and a margin")
	}

	// Every line on stdout is one JSON log object; no secret is among them.
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("a line on stdout is not a JSON log record: %q", line)
		}
		lines++
	}
	if lines == 0 || !strings.Contains(stdout.String(), `"msg":"keygate shutting down; waiting for in-flight requests"`) {
		t.Fatalf("no shutdown in the JSON log:\n%s", stdout.String())
	}
	for _, out := range []string{stdout.String(), stderr.String()} {
		if strings.Contains(out, "kg_admin_") || strings.Contains(out, key) || strings.Contains(out, upKey) {
			t.Fatalf("a credential reached the container's output:\n%s", out)
		}
	}
}

// assertStatic fails unless bin needs no dynamic loader or shared
// library, so it runs on an empty base image.
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the CGO_ENABLED=0 binary asks for a dynamic loader; it would not start on a scratch image")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary needs shared libraries %v", libs)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitFor(t *testing.T, exited chan error, stderr *syncBuffer, ok func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for !ok() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("keygate exited (%v):\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("keygate did not start within 60s:\n%s", stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func readAll(rd *bufio.Reader) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(rd)
	return b.String(), err
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
