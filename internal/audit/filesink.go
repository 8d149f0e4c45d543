package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FileOptions tunes a FileSink.
type FileOptions struct {
	// MaxSize is the size in bytes after which the file is rotated (default 64 MiB).
	// A batch is never split, so a file can exceed it by one batch.
	MaxSize int64
	// Keep is how many rotated files (name.1 ... name.Keep) are kept (default 10).
	Keep int
}

// FileSink writes events as JSON lines, one event per line, to a file that
// only keygate's user can read (mode 0600). Each batch is synced to disk
// before Write returns. When the file passes MaxSize it is renamed to
// name.1 (older files move up to name.2 ... and the oldest beyond Keep is
// removed) and a new file is started.
type FileSink struct {
	path string
	opts FileOptions
	mu   sync.Mutex
	f    *os.File
	size int64
	buf  bytes.Buffer
}

// OpenFile opens (or creates) the audit file at path for appending.
func OpenFile(path string, opts FileOptions) (*FileSink, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = 64 << 20
	}
	if opts.Keep <= 0 {
		opts.Keep = 10
	}
	s := &FileSink{path: path, opts: opts}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *FileSink) open() error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: opening audit file: %w; check that keygate's data directory exists and is writable", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("audit: restricting audit file %s to mode 0600: %w", s.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: reading the size of audit file %s: %w", s.path, err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// Write appends the batch, one line per event, and syncs the file. On
// failure the file is cut back to where it was, so a retried batch does not
// leave a torn or doubled line.
func (s *FileSink) Write(ctx context.Context, batch []Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	for i := range batch {
		b := batch[i].AppendJSON(s.buf.AvailableBuffer())
		s.buf.Write(append(b, '\n'))
	}
	if err := s.append(); err != nil {
		return fmt.Errorf("audit: writing %d events to %s: %w", len(batch), s.path, err)
	}
	return nil
}

// WriteCheckpoint appends cp as a {"checkpoint":...} line and syncs the
// file, so the file is a copy of the trail that verify --against can hold
// the database to.
func (s *FileSink) WriteCheckpoint(ctx context.Context, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	s.buf.Write(append(AppendCheckpointLine(s.buf.AvailableBuffer(), cp), '\n'))
	if err := s.append(); err != nil {
		return fmt.Errorf("audit: writing checkpoint %d to %s: %w", cp.Seq, s.path, err)
	}
	return nil
}

// append writes s.buf at the end of the file, rotating first when it would
// pass MaxSize, and syncs. The caller holds s.mu.
func (s *FileSink) append() error {
	if s.f == nil {
		return errors.New("the file sink is closed; open a new one with OpenFile")
	}
	if s.size > 0 && s.size+int64(s.buf.Len()) > s.opts.MaxSize {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(s.buf.Bytes())
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		if n > 0 {
			_ = s.f.Truncate(s.size)
		}
		return fmt.Errorf("%w; check free disk space and permissions", err)
	}
	s.size += int64(n)
	return nil
}

// rotate moves name.i to name.i+1, name to name.1, and starts a new file.
func (s *FileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("closing %s before rotation: %w", s.path, err)
	}
	s.f = nil
	_ = os.Remove(s.path + "." + strconv.Itoa(s.opts.Keep))
	for i := s.opts.Keep - 1; i >= 1; i-- {
		from := s.path + "." + strconv.Itoa(i)
		if err := os.Rename(from, s.path+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating %s: %w", from, err)
		}
	}
	if err := os.Rename(s.path, s.path+".1"); err != nil {
		return fmt.Errorf("rotating %s: %w; check permissions on its directory", s.path, err)
	}
	if err := s.open(); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil { // make the renames durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Close syncs and closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fmt.Errorf("audit: closing %s: %w", s.path, err)
	}
	return nil
}

// ReadFile reads back every event a FileSink wrote to path, oldest first:
// the rotated files from the highest number down to path.1, then path
// itself. Checkpoint lines are skipped (ReadCopyFile returns them too). A
// line that is not a well-formed event or checkpoint (including one with
// fields the schema does not have) is an error naming the file and line.
func ReadFile(path string) ([]Event, error) {
	c, err := ReadCopyFile(path)
	if err != nil {
		return nil, err
	}
	return c.Events, nil
}

// ReadCopyFile reads the external copy a FileSink (or a webhook receiver
// writing the same lines) keeps at path: its rotated files from the
// highest number down to path.1, then path itself. See ReadCopy.
func ReadCopyFile(path string) (*Copy, error) {
	rotated, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, fmt.Errorf("audit: listing rotated files of %s: %w", path, err)
	}
	type numbered struct {
		n    int
		name string
	}
	var files []numbered
	for _, name := range rotated {
		n, err := strconv.Atoi(strings.TrimPrefix(name, path+"."))
		if err == nil && n > 0 {
			files = append(files, numbered{n, name})
		}
	}
	slices.SortFunc(files, func(a, b numbered) int { return b.n - a.n })
	files = append(files, numbered{0, path})

	c := &Copy{}
	for _, f := range files {
		fh, err := os.Open(f.name)
		if err != nil {
			if f.n == 0 && errors.Is(err, fs.ErrNotExist) && len(files) > 1 {
				continue // rotated just now; no current file yet
			}
			return nil, fmt.Errorf("audit: reading audit file: %w", err)
		}
		err = c.read(fh, f.name)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// globEscape quotes the glob metacharacters in a literal path.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
