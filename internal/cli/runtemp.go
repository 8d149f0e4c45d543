package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// runDirPrefix names the directory each `keygate run` keeps the files of
// its agent profile in (settings, a CODEX_HOME, the token file). The
// directory holds an "owner" file with keygate's process id, so the next
// `keygate run` removes the directories of runs whose keygate was killed
// before it could.
const runDirPrefix = "keygate-run-"

// runTempRoot is where run directories go: $XDG_RUNTIME_DIR (a per-user
// tmpfs on most Linux systems) or else $TMPDIR, or /tmp, in a per-user
// subdirectory made 0700.
func (a *app) runTempRoot() (string, error) {
	base := a.io.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = a.io.Getenv("TMPDIR")
	}
	if base == "" {
		base = "/tmp"
	}
	root := filepath.Join(base, "keygate-run."+strconv.Itoa(os.Getuid()))
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("making %s for the agent's temporary files: %w", root, err)
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ownedByMe(fi) {
		return "", fmt.Errorf("%s must be a directory only you can read (0700, yours): remove it and run again", root)
	}
	return root, nil
}

// newRunDir sweeps run directories left by keygate processes that no
// longer exist, then makes one for this run.
func (a *app) newRunDir() (string, error) {
	root, err := a.runTempRoot()
	if err != nil {
		return "", err
	}
	sweepRunDirs(root)
	dir, err := os.MkdirTemp(root, runDirPrefix)
	if err != nil {
		return "", fmt.Errorf("making a directory for the agent's temporary files: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepRunDirs removes the run directories under root whose owner process
// has gone. A directory without a readable owner is left alone for a
// minute (its run may be starting); a sweep never fails a run.
func sweepRunDirs(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), runDirPrefix) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || !processAlive(pid) {
			_ = os.RemoveAll(dir)
		}
	}
}
