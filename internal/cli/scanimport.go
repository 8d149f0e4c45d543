package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/scan"
)

// References `keygate scan --rewrite` writes and `keygate run` resolves.
const (
	refSecret   = "keygate://secret/"
	refProvider = "keygate://provider/"
)

// gitOutput runs git in dir and returns its standard output.
func gitOutput(cmd *cobra.Command, dir string, args ...string) (string, error) {
	c := exec.CommandContext(cmd.Context(), "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// slugSegment makes s a valid secret-name segment: letters, digits, '.',
// '_' and '-', starting with a letter or digit.
func slugSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnumByte(c), c == '.', c == '_', c == '-':
			b.WriteByte(c)
		case c == '/':
			b.WriteByte('.')
		default:
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), "._-")
	if out == "" {
		return "x"
	}
	return out
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// imported is what one found value became.
type imported struct {
	ref  string // the reference that replaces it, or ""
	what string // for the summary
}

// importFound moves findings into the vault (--import), revokes found
// keygate keys (--revoke-found) and, with --rewrite, replaces imported
// values in their files by references. It prints a summary to standard
// error; it never prints a value.
func (a *app) importFound(cmd *cobra.Command, f *scanFlags, root string, found []scan.Finding) error {
	if len(found) == 0 {
		return nil
	}
	c, cred, err := a.client(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	w := cmd.ErrOrStderr()
	done := map[string]imported{} // by value
	var providers []adminapi.Provider
	if f.doImport {
		if providers, err = c.ListProviders(ctx); err != nil {
			return explain(fmt.Errorf("--import: listing providers: %w", err), cred)
		}
	}
	for _, fd := range found {
		where := fmt.Sprintf("%s:%d", fd.File, fd.Line)
		if fd.Commit != "" {
			where += " (commit " + fd.Commit[:min(12, len(fd.Commit))] + ")"
		}
		val := fd.Secret.Reveal()
		if prev, ok := done[val]; ok {
			fmt.Fprintf(w, "%s: %s, %s\n", where, fd.RuleID, prev.what)
			continue
		}
		var res imported
		switch {
		case fd.Keygate:
			if !f.revokeFound {
				res.what = "a keygate key: not imported (pass --revoke-found to revoke it)"
				break
			}
			out, err := c.ReportLeak(ctx, fd.Secret, where)
			if err != nil {
				return explain(fmt.Errorf("--revoke-found: %s: %w", where, err), cred)
			}
			switch {
			case out.TruePositive:
				res.what = fmt.Sprintf("keygate key %s (%s) %s", out.KeyName, out.Prefix, out.Action)
			default:
				res.what = "a keygate key this keygate did not issue: nothing to revoke"
			}
		case !f.doImport:
			continue
		case fd.Provider != "":
			name, err := a.importProvider(cmd, c, f, providers, fd)
			if err != nil {
				return explain(fmt.Errorf("--import: %s: %w", where, err), cred)
			}
			res = imported{ref: refProvider + name.name, what: name.what}
		default:
			name := f.importPrefix + "/" + slugSegment(fd.File) + "/" + slugSegment(firstNonEmpty(fd.Name, fd.RuleID))
			if fd.File == "-" {
				name = f.importPrefix + "/stdin/" + slugSegment(firstNonEmpty(fd.Name, fd.RuleID))
			}
			if err := adminapi.ValidSecretName(name); err != nil {
				return fmt.Errorf("--import: %s: %w; choose another --import-prefix", where, err)
			}
			s, err := c.PutSecret(ctx, name, fd.Secret)
			if err != nil {
				return explain(fmt.Errorf("--import: %s: storing secret %s: %w", where, name, err), cred)
			}
			res = imported{ref: refSecret + name, what: fmt.Sprintf("imported as secret %s (version %d)", name, s.CurrentVersion)}
		}
		done[val] = res
		fmt.Fprintf(w, "%s: %s, %s\n", where, fd.RuleID, res.what)
	}
	if f.rewrite {
		return rewriteFiles(root, found, done, w)
	}
	return nil
}

type providerResult struct{ name, what string }

// importProvider makes a found provider key the key of the provider its
// preset names: a new version of an existing provider's key, or a new
// provider with the preset's base URL.
func (a *app) importProvider(cmd *cobra.Command, c *adminclient.Client, f *scanFlags, existing []adminapi.Provider, fd scan.Finding) (providerResult, error) {
	ctx := cmd.Context()
	name := fd.Provider
	for _, p := range existing {
		if p.Name == name || (p.Preset == fd.Provider && p.Name != "") {
			name = p.Name
			rot, err := c.RotateProvider(ctx, name, fd.Secret, f.grace)
			if err != nil {
				return providerResult{}, fmt.Errorf("rotating provider %s to the found key: %w", name, err)
			}
			return providerResult{name, fmt.Sprintf("imported as key version %d of provider %s (version %d is destroyed at %s)", rot.Version, name, rot.PreviousVersion, fmtTime(rot.PreviousDestroyAt))}, nil
		}
	}
	pre, ok := provider.LookupPreset(fd.Provider)
	if !ok {
		return providerResult{}, fmt.Errorf("keygate has no provider preset %q", fd.Provider)
	}
	if _, err := c.CreateProvider(ctx, adminapi.CreateProviderRequest{Name: name, Preset: pre.Name, APIKey: fd.Secret.Reveal()}); err != nil {
		return providerResult{}, fmt.Errorf("adding provider %s with the found key: %w", name, err)
	}
	return providerResult{name, fmt.Sprintf("imported as provider %s (%s)", name, pre.BaseURL)}, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// rewriteFiles replaces imported values in their files by references,
// each file written whole to a temporary file and renamed over the old.
func rewriteFiles(root string, found []scan.Finding, done map[string]imported, w interface{ Write([]byte) (int, error) }) error {
	byFile := map[string][]scan.Finding{}
	for _, fd := range found {
		if r := done[fd.Secret.Reveal()]; r.ref != "" && fd.File != "-" {
			byFile[fd.File] = append(byFile[fd.File], fd)
		}
	}
	files := make([]string, 0, len(byFile))
	for f := range byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, file := range files {
		p := filepath.Join(root, filepath.FromSlash(file))
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--rewrite: %w", err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("--rewrite: %w", err)
		}
		fs := byFile[file]
		sort.Slice(fs, func(i, j int) bool { return fs[i].Offset > fs[j].Offset })
		for _, fd := range fs {
			if fd.End > len(data) || string(data[fd.Offset:fd.End]) != fd.Secret.Reveal() {
				return fmt.Errorf("--rewrite: %s changed while it was scanned; scan it again", file)
			}
			ref := done[fd.Secret.Reveal()].ref
			data = append(data[:fd.Offset:fd.Offset], append([]byte(ref), data[fd.End:]...)...)
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), ".keygate-rewrite-*")
		if err != nil {
			return fmt.Errorf("--rewrite: %w", err)
		}
		_, werr := tmp.Write(data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), fi.Mode().Perm())); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("--rewrite: %s: %w", file, err)
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("--rewrite: %s: %w", file, err)
		}
		fmt.Fprintf(w, "%s: %d value(s) replaced by keygate:// references\n", file, len(fs))
	}
	return nil
}
