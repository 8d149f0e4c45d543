//go:build unix

package cli

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunOnTerminal: when keygate runs on a terminal, the command gets a
// terminal of its own (interactive agents keep working), what it prints
// is masked, what is typed reaches it, and keygate's terminal is restored
// afterwards.
func TestRunOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	before, err := term.GetState(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	const secretValue = "kgl_terminal-test-secret-value"
	set := &maskSet{}
	set.add(secretValue)
	cmd := &cobra.Command{}
	cmd.SetIn(tty)
	cmd.SetOut(tty)
	cmd.SetErr(tty)
	out := &lockedBuffer{}
	go func() { _, _ = io.Copy(out, ptmx) }()
	go func() {
		time.Sleep(200 * time.Millisecond)
		ptmx.Write([]byte("typed line\r"))
	}()
	script := `test -t 0 && test -t 1 && echo "on a terminal: $SECRET"; read line; echo "got: $line"`
	err = runChild(cmd, []string{"/bin/sh", "-c", script}, []string{"SECRET=" + secretValue, "PATH=/usr/bin:/bin"}, set)
	if err != nil {
		t.Fatalf("runChild: %v", err)
	}
	after, _ := term.GetState(int(tty.Fd()))
	if *after != *before {
		t.Error("keygate's terminal was left in raw mode")
	}
	got := out.String()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(got, "got: ") && time.Now().Before(deadline); got = out.String() {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(got, "on a terminal: "+maskText) || !strings.Contains(got, "got: typed line") {
		t.Errorf("terminal output %q: want the command on a terminal, its secret masked, the typed line read", got)
	}
	if strings.Contains(got, secretValue) {
		t.Error("the secret reached the terminal")
	}
}
