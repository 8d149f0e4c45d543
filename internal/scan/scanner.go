package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// DefaultMaxFileSize is the largest file scanned unless Options says
// otherwise: bigger files are data, archives or builds, not code.
const DefaultMaxFileSize = 10 << 20

// Options configure a Scanner.
type Options struct {
	// Rules to run; nil means Rules().
	Rules []Rule
	// MaxFileSize skips larger files and blobs; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// Workers is how many files are scanned at once; 0 means GOMAXPROCS.
	Workers int
	// Root is the directory finding paths are relative to; empty means
	// the working directory.
	Root string
	// Allow and Baseline take findings out; both may be nil.
	Allow    *AllowList
	Baseline *Baseline
}

// Scanner finds credentials in files, standard input and git history.
type Scanner struct {
	m    *Matcher
	opts Options
}

// Stats counts what a scan read.
type Stats struct {
	Files   int   // files or blobs scanned
	Bytes   int64 // bytes scanned
	Skipped int   // files or blobs skipped as binary or too large
	Allowed int   // findings taken out by the allow-list, inline markers or the baseline
}

// New builds a Scanner.
func New(o Options) (*Scanner, error) {
	if o.Rules == nil {
		o.Rules = Rules()
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("scan: working directory: %w", err)
		}
		o.Root = wd
	}
	m, err := NewMatcher(o.Rules)
	if err != nil {
		return nil, err
	}
	return &Scanner{m: m, opts: o}, nil
}

// Matcher returns the scanner's matcher.
func (s *Scanner) Matcher() *Matcher { return s.m }

// binaryExts are extensions of files that hold no text worth scanning.
var binaryExts = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".ico": true, ".webp": true, ".bmp": true, ".tiff": true,
	".pdf": true, ".zip": true, ".gz": true, ".tgz": true, ".bz2": true, ".xz": true, ".zst": true, ".7z": true, ".rar": true,
	".jar": true, ".war": true, ".class": true, ".exe": true, ".dll": true, ".so": true, ".dylib": true, ".a": true, ".o": true,
	".wasm": true, ".woff": true, ".woff2": true, ".ttf": true, ".otf": true, ".eot": true, ".mp3": true, ".mp4": true,
	".mov": true, ".avi": true, ".webm": true, ".wav": true, ".flac": true, ".ogg": true, ".psd": true, ".sqlite": true,
	".db": true, ".parquet": true, ".onnx": true, ".pt": true, ".safetensors": true, ".pyc": true,
}

// isBinary reports content git would call binary: a NUL byte in its first
// 8000 bytes.
func isBinary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0
}

// job is one piece of content to scan.
type job struct {
	file string
	data []byte
	meta func(*Finding) // fills in commit details, or nil
	keep func(Finding) bool
}

// run scans jobs with the scanner's workers and hands findings to emit, one
// at a time, in no particular order.
func (s *Scanner) run(ctx context.Context, jobs <-chan job, st *Stats, emit func(Finding)) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				fs, dropped := findings(j.file, j.data, s.m.Find(j.data))
				mu.Lock()
				st.Allowed += dropped
				st.Files++
				st.Bytes += int64(len(j.data))
				for _, f := range fs {
					if j.meta != nil {
						j.meta(&f)
					}
					if (j.keep != nil && !j.keep(f)) || s.opts.Allow.Allows(f) || s.opts.Baseline.Has(f) {
						st.Allowed++
						continue
					}
					emit(f)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// rel returns p relative to the scan root, slash-separated, or p itself
// (slash-separated) when it lies outside the root.
func (s *Scanner) rel(p string) string {
	abs, err := filepath.Abs(p)
	if err == nil {
		if r, err := filepath.Rel(s.opts.Root, abs); err == nil && !strings.HasPrefix(r, "..") {
			return filepath.ToSlash(r)
		}
	}
	return filepath.ToSlash(p)
}

// ScanPaths scans files and directories (recursively, skipping .git),
// each file read once, files in parallel. emit is called from one
// goroutine at a time.
func (s *Scanner) ScanPaths(ctx context.Context, paths []string, emit func(Finding)) (Stats, error) {
	var st Stats
	jobs := make(chan job, s.opts.Workers*2)
	var walkErr error
	go func() {
		defer close(jobs)
		for _, p := range paths {
			err := filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				rel := s.rel(fp)
				if d.IsDir() {
					if d.Name() == ".git" || (fp != p && s.opts.Allow.SkipsPath(rel+"/")) {
						return filepath.SkipDir
					}
					return nil
				}
				if !d.Type().IsRegular() {
					return nil
				}
				if s.opts.Allow.SkipsPath(rel) || binaryExts[strings.ToLower(path.Ext(fp))] {
					st.Skipped++ // only the walker writes Skipped
					return nil
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				if info.Size() > s.opts.MaxFileSize {
					st.Skipped++
					return nil
				}
				data, err := os.ReadFile(fp)
				if err != nil {
					return err
				}
				if isBinary(data) {
					st.Skipped++
					return nil
				}
				jobs <- job{file: rel, data: data}
				return nil
			})
			if err != nil {
				walkErr = fmt.Errorf("scan %s: %w", p, err)
				return
			}
		}
	}()
	s.run(ctx, jobs, &st, emit)
	if walkErr == nil {
		walkErr = ctx.Err()
	}
	return st, walkErr
}

// ScanReader scans everything r holds, named name in findings ("-" for
// standard input).
func (s *Scanner) ScanReader(ctx context.Context, name string, r io.Reader, emit func(Finding)) (Stats, error) {
	data, err := io.ReadAll(io.LimitReader(r, s.opts.MaxFileSize*10+1))
	if err != nil {
		return Stats{}, fmt.Errorf("scan %s: %w", name, err)
	}
	if int64(len(data)) > s.opts.MaxFileSize*10 {
		return Stats{}, errors.New("scan: standard input is larger than ten times --max-size; scan it as a file instead")
	}
	var st Stats
	jobs := make(chan job, 1)
	jobs <- job{file: name, data: data}
	close(jobs)
	s.run(ctx, jobs, &st, emit)
	return st, ctx.Err()
}
