package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

// auditDisk is a small file system of its own (a tmpfs) holding one node's
// audit file, which the suite fills to fault the file sink with ENOSPC.
// Mounting needs root (CAP_SYS_ADMIN); without it the fault is not run.
type auditDisk struct {
	dir    string // the mount point
	filler string // the file that fills it
}

// auditDiskSize bounds the file system: room for the audit file of a long
// run (node-3's share of an hour at the default rate is about 30 MB), and
// what the filler takes of the machine's memory while the fault is held.
const auditDiskSize = "128m"

// mountAuditDisk mounts a tmpfs at dir, or says why it cannot.
func mountAuditDisk(dir string) (*auditDisk, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+auditDiskSize+",mode=0700"); err != nil {
		return nil, fmt.Errorf("mount a tmpfs for the audit file: %w", err)
	}
	return &auditDisk{dir: dir, filler: filepath.Join(dir, "filler")}, nil
}

// file is the audit file's path.
func (d *auditDisk) file() string { return filepath.Join(d.dir, "audit.jsonl") }

// fill writes the filler until the file system is full.
func (d *auditDisk) fill() error {
	f, err := os.OpenFile(d.filler, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill the audit file system: %w", err)
		}
	}
}

// free removes the filler.
func (d *auditDisk) free() error { return os.Remove(d.filler) }

// unmount lets go of the file system (lazily, should a node still hold
// the file open).
func (d *auditDisk) unmount() error { return syscall.Unmount(d.dir, syscall.MNT_DETACH) }

// checkAuditFile checks the node's audit file holds every event of that
// node's trail in the database: a full disk must delay the file sink, not
// lose events from it. The node's chains are found by the events they
// share with the file; every event of those chains must be in the file.
func (s *suite) checkAuditFile(ctx context.Context, ac *adminclient.Client, n *node) Check {
	c := Check{Name: "the audit file on the full file system holds every event of " + n.name}
	inFile, err := readAuditCopy(n.disk.file())
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	// Per node: its events in the file, those missing from it, the first missing.
	type tally struct {
		mine, lacking int
		first         string
	}
	byNode := map[string]*tally{}
	var order []string
	err = eachAuditRow(ctx, ac, func(node string, row adminapi.AuditRow) {
		k, ok := eventIdentity([]byte(row.Data))
		if !ok {
			return
		}
		t := byNode[node]
		if t == nil {
			t = &tally{}
			byNode[node] = t
			order = append(order, node)
		}
		if inFile[k] {
			t.mine++
		} else {
			t.lacking++
			if t.first == "" {
				t.first = k
			}
		}
	})
	if err != nil {
		c.Detail = "could not read the trail: " + err.Error()
		return c
	}
	var matched, missing int
	var first string
	for _, node := range order {
		if t := byNode[node]; t.mine > 0 { // a chain of this node's
			matched += t.mine
			missing += t.lacking
			if first == "" {
				first = t.first
			}
		}
	}
	c.OK = matched > 0 && missing == 0
	c.Detail = fmt.Sprintf("%d events of the node's trail in the file, %d missing from it (%d lines in the file)", matched, missing, len(inFile))
	if first != "" {
		c.Detail += "; first missing: " + first
	}
	return c
}

// readAuditCopy reads an audit file and its rotated copies (FILE.1, ...)
// and returns the identities of the events they hold.
func readAuditCopy(path string) (map[string]bool, error) {
	out := map[string]bool{}
	paths, _ := filepath.Glob(path + ".*")
	for _, p := range append(paths, path) {
		if strings.HasSuffix(p, ".tmp") {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("read the audit file: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			if k, ok := eventIdentity(sc.Bytes()); ok {
				out[k] = true
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
	}
	return out, nil
}

// eventIdentity names an event by its sequence number and time; a
// checkpoint line has none.
func eventIdentity(line []byte) (string, bool) {
	if bytes.HasPrefix(bytes.TrimSpace(line), []byte(`{"checkpoint"`)) {
		return "", false
	}
	var ev struct {
		Seq  uint64 `json:"seq"`
		Time string `json:"time"`
	}
	if json.Unmarshal(line, &ev) != nil || ev.Seq == 0 || ev.Time == "" {
		return "", false
	}
	return fmt.Sprintf("%d@%s", ev.Seq, ev.Time), true
}
