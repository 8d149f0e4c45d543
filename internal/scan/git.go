package scan

// History is read with the git binary's plumbing rather than a Go
// implementation of git (go-git): git is on every machine that has a
// repository to scan (the pre-commit hook runs inside git anyway), it
// reads packs, deltas, alternates, partial clones and every repository
// format version itself, and `git cat-file --batch` streams blobs faster
// than any library could decode them. A Go implementation would be a
// large dependency that lags behind git's formats.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// commitInfo is who made a commit, and when.
type commitInfo struct {
	hash, author, email string
	date                time.Time
}

// blobRef is the first commit and path a blob appeared at.
type blobRef struct {
	sha    string
	path   string
	commit *commitInfo
}

// git runs git in dir and returns its standard output.
func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir, "-c", "core.quotePath=false"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if errors.Is(err, exec.ErrNotFound) {
			return nil, errors.New("scan: git is not installed or not on PATH; --git and --staged need it")
		}
		return nil, fmt.Errorf("scan: git %s: %v: %s", args[0], err, msg)
	}
	return out, nil
}

// historyBlobs lists every blob reachable from any ref, once, with the
// earliest commit that added it.
func historyBlobs(ctx context.Context, dir string) ([]blobRef, error) {
	out, err := git(ctx, dir, "log", "--all", "--reverse", "--format=%x1e%H%x1f%an%x1f%ae%x1f%aI",
		"--raw", "--no-abbrev", "-m", "--no-renames", "-z", "--no-ext-diff")
	if err != nil {
		return nil, err
	}
	var refs []blobRef
	seen := map[string]bool{}
	var cur *commitInfo
	toks := bytes.Split(out, []byte{0})
	for i := 0; i < len(toks); i++ {
		t := bytes.TrimLeft(toks[i], "\n")
		switch {
		case len(t) > 0 && t[0] == 0x1e:
			f := strings.Split(string(t[1:]), "\x1f")
			if len(f) != 4 {
				return nil, fmt.Errorf("scan: unexpected git log output")
			}
			d, _ := time.Parse(time.RFC3339, f[3])
			cur = &commitInfo{hash: f[0], author: f[1], email: f[2], date: d}
		case len(t) > 0 && t[0] == ':':
			// :old_mode new_mode old_sha new_sha status, then the path.
			meta := strings.Fields(string(t[1:]))
			if i+1 >= len(toks) || len(meta) < 5 {
				return nil, fmt.Errorf("scan: unexpected git log --raw output")
			}
			i++
			path := string(toks[i])
			mode, sha, status := meta[1], meta[3], meta[4]
			if status == "D" || (mode != "100644" && mode != "100755") || seen[sha] || cur == nil {
				continue
			}
			seen[sha] = true
			refs = append(refs, blobRef{sha: sha, path: path, commit: cur})
		}
	}
	return refs, nil
}

// blobSizes asks git for the size of each blob.
func blobSizes(ctx context.Context, dir string, refs []blobRef) (map[string]int64, error) {
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "cat-file", "--batch-check=%(objectname) %(objectsize)")
	var in bytes.Buffer
	for _, r := range refs {
		in.WriteString(r.sha + "\n")
	}
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("scan: git cat-file --batch-check: %w", err)
	}
	sizes := make(map[string]int64, len(refs))
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		sha, n, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(n, 10, 64)
		if err == nil {
			sizes[sha] = v
		}
	}
	return sizes, nil
}

// catBlobs streams the content of refs through `git cat-file --batch` and
// calls fn with each, in order.
func catBlobs(ctx context.Context, dir string, refs []blobRef, fn func(blobRef, []byte) error) error {
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "cat-file", "--batch")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("scan: git cat-file --batch: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := bufio.NewWriter(stdin)
		for _, r := range refs {
			if _, err := w.WriteString(r.sha + "\n"); err != nil {
				break
			}
		}
		w.Flush()
		stdin.Close()
	}()
	rd := bufio.NewReaderSize(stdout, 1<<16)
	var ferr error
	for _, r := range refs {
		hdr, err := rd.ReadString('\n')
		if err != nil {
			ferr = fmt.Errorf("scan: reading blob %s: %w", r.sha, err)
			break
		}
		f := strings.Fields(hdr)
		if len(f) < 3 || f[1] != "blob" {
			ferr = fmt.Errorf("scan: git cat-file: unexpected answer for %s", r.sha)
			break
		}
		n, _ := strconv.Atoi(f[2])
		data := make([]byte, n+1) // the content and its trailing newline
		if _, err := io.ReadFull(rd, data); err != nil {
			ferr = fmt.Errorf("scan: reading blob %s: %w", r.sha, err)
			break
		}
		if err := fn(r, data[:n]); err != nil {
			ferr = err
			break
		}
	}
	if ferr != nil {
		_ = cmd.Process.Kill()
	}
	io.Copy(io.Discard, stdout)
	wg.Wait()
	if err := cmd.Wait(); err != nil && ferr == nil && ctx.Err() == nil {
		ferr = fmt.Errorf("scan: git cat-file --batch: %w", err)
	}
	if ferr == nil {
		ferr = ctx.Err()
	}
	return ferr
}

// ScanGit scans every blob reachable in the repository at dir, each once.
// A finding names the earliest commit that added its blob; a secret kept
// in later versions of the same file is reported once.
func (s *Scanner) ScanGit(ctx context.Context, dir string, emit func(Finding)) (Stats, error) {
	refs, err := historyBlobs(ctx, dir)
	if err != nil {
		return Stats{}, err
	}
	return s.scanBlobs(ctx, dir, refs, nil, dedupe(emit))
}

// dedupe passes on the first finding of each fingerprint only.
func dedupe(emit func(Finding)) func(Finding) {
	seen := map[string]bool{}
	return func(f Finding) {
		if !seen[f.Fingerprint] {
			seen[f.Fingerprint] = true
			emit(f)
		}
	}
}

func (s *Scanner) scanBlobs(ctx context.Context, dir string, refs []blobRef, keep func(Finding) bool, emit func(Finding)) (Stats, error) {
	var st Stats
	sizes, err := blobSizes(ctx, dir, refs)
	if err != nil {
		return st, err
	}
	small := refs[:0:0]
	for _, r := range refs {
		if sizes[r.sha] > s.opts.MaxFileSize || binaryExts[strings.ToLower(pathExt(r.path))] || s.opts.Allow.SkipsPath(r.path) {
			st.Skipped++
			continue
		}
		small = append(small, r)
	}
	jobs := make(chan job, s.opts.Workers*2)
	var catErr error
	go func() {
		defer close(jobs)
		catErr = catBlobs(ctx, dir, small, func(r blobRef, data []byte) error {
			if isBinary(data) {
				st.Skipped++
				return nil
			}
			j := job{file: r.path, data: data, keep: keep}
			if c := r.commit; c != nil {
				j.meta = func(f *Finding) { f.Commit, f.Author, f.Email, f.Date = c.hash, c.author, c.email, c.date }
			}
			select {
			case jobs <- j:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	s.run(ctx, jobs, &st, emit)
	return st, catErr
}

func pathExt(p string) string {
	i := strings.LastIndexByte(p, '.')
	if i < 0 || strings.IndexByte(p[i:], '/') >= 0 {
		return ""
	}
	return p[i:]
}
