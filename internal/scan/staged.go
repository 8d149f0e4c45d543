package scan

import (
	"bytes"
	"context"
	"strconv"
	"strings"
)

// lineRange is a run of lines, [from, to], 1-based.
type lineRange struct{ from, to int }

// stagedChanges returns, for every file with staged changes, the lines
// the staged version adds or changes.
func stagedChanges(ctx context.Context, dir string) (map[string][]lineRange, error) {
	out, err := git(ctx, dir, "diff", "--cached", "-U0", "--no-color", "--no-ext-diff", "--diff-filter=ACMRT", "--no-renames")
	if err != nil {
		return nil, err
	}
	changes := map[string][]lineRange{}
	var file string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "+++ "):
			p := strings.TrimPrefix(l, "+++ ")
			if uq, err := strconv.Unquote(p); err == nil {
				p = uq
			}
			file = strings.TrimPrefix(p, "b/")
			if p == "/dev/null" {
				file = ""
			}
		case strings.HasPrefix(l, "@@ ") && file != "":
			// @@ -a[,b] +c[,d] @@
			f := strings.Fields(l)
			if len(f) < 3 || !strings.HasPrefix(f[2], "+") {
				continue
			}
			start, count := f[2][1:], "1"
			if a, b, ok := strings.Cut(start, ","); ok {
				start, count = a, b
			}
			s, err1 := strconv.Atoi(start)
			n, err2 := strconv.Atoi(count)
			if err1 != nil || err2 != nil || n == 0 {
				continue
			}
			changes[file] = append(changes[file], lineRange{s, s + n - 1})
		}
	}
	return changes, nil
}

// ScanStaged scans what is staged for the next commit in the repository
// at dir, and reports findings on the lines the commit adds or changes:
// the check a pre-commit hook runs.
func (s *Scanner) ScanStaged(ctx context.Context, dir string, emit func(Finding)) (Stats, error) {
	changes, err := stagedChanges(ctx, dir)
	if err != nil || len(changes) == 0 {
		return Stats{}, err
	}
	args := []string{"ls-files", "-s", "-z", "--"}
	for p := range changes {
		args = append(args, ":(literal)"+p)
	}
	out, err := git(ctx, dir, args...)
	if err != nil {
		return Stats{}, err
	}
	var refs []blobRef
	for _, rec := range bytes.Split(out, []byte{0}) {
		// mode sha stage\tpath
		meta, p, ok := bytes.Cut(rec, []byte{'\t'})
		f := strings.Fields(string(meta))
		if !ok || len(f) != 3 || (f[0] != "100644" && f[0] != "100755") {
			continue
		}
		refs = append(refs, blobRef{sha: f[1], path: string(p)})
	}
	keep := func(f Finding) bool {
		for _, r := range changes[f.File] {
			if f.Line <= r.to && f.EndLine >= r.from {
				return true
			}
		}
		return false
	}
	return s.scanBlobs(ctx, dir, refs, keep, emit)
}
