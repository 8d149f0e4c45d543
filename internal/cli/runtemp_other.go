//go:build !unix

package cli

import "os"

// processAlive reports whether a process with the id exists.
func processAlive(pid int) bool {
	_, err := os.FindProcess(pid)
	return err == nil
}

// ownedByMe cannot tell here; the directory's mode is checked.
func ownedByMe(os.FileInfo) bool { return true }
