//go:build !unix

package cli

import (
	"errors"
	"io"
	"os"
	"os/exec"
)

// isTerminalFile is false where keygate run has no pseudo-terminals: the
// command's output is masked through pipes.
func isTerminalFile(any) bool { return false }

func startOnTerminal(*exec.Cmd, *os.File, io.Writer, *maskSet) (func(), error) {
	return nil, errors.New("no pseudo-terminals on this system")
}
