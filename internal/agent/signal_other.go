//go:build !unix

package agent

import (
	"errors"
	"os"
)

// parseSignal refuses signals where the system has none to send; use
// on_change.command instead.
func parseSignal(string) (os.Signal, error) {
	return nil, errors.New("signals cannot be sent on this system; use on_change.command")
}
