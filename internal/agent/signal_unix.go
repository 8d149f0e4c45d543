//go:build unix

package agent

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// parseSignal reads a signal's name, with or without SIG.
func parseSignal(name string) (os.Signal, error) {
	switch strings.TrimPrefix(strings.ToUpper(name), "SIG") {
	case "HUP":
		return syscall.SIGHUP, nil
	case "INT":
		return syscall.SIGINT, nil
	case "TERM":
		return syscall.SIGTERM, nil
	case "USR1":
		return syscall.SIGUSR1, nil
	case "USR2":
		return syscall.SIGUSR2, nil
	case "QUIT":
		return syscall.SIGQUIT, nil
	}
	return nil, fmt.Errorf("%q must be HUP, INT, TERM, USR1, USR2 or QUIT", name)
}
