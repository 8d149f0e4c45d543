//go:build unix

package cli

import (
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// isTerminalFile reports whether r is a terminal.
func isTerminalFile(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// startOnTerminal starts child on a pseudo-terminal of the size of in,
// puts in into raw mode so every key reaches the command as typed (^C
// included, which the command's terminal turns into SIGINT), copies in to
// the command and the command's output, masked, to out. The returned
// function, called once the command has ended, restores the terminal.
func startOnTerminal(child *exec.Cmd, in *os.File, out io.Writer, masks *maskSet) (func(), error) {
	ptmx, err := pty.Start(child)
	if err != nil {
		return nil, err
	}
	_ = pty.InheritSize(in, ptmx)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			_ = pty.InheritSize(in, ptmx)
		}
	}()
	old, rawErr := term.MakeRaw(int(in.Fd()))
	go func() { _, _ = io.Copy(ptmx, in) }() // ends with keygate; the command may be gone before the next key
	m := newMasker(out, masks)
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(m, ptmx) // ends with EIO once no process holds the terminal
		close(copied)
	}()
	return func() {
		select {
		case <-copied:
		case <-time.After(childWaitDelay):
		}
		m.Close()
		signal.Stop(winch)
		close(winch)
		if rawErr == nil {
			_ = term.Restore(int(in.Fd()), old)
		}
		_ = ptmx.Close()
	}, nil
}
