package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/scan"
)

// Exit codes of `keygate scan`.
const (
	scanExitFound = 1 // credentials were found
	scanExitError = 2 // the scan could not run
)

// defaultAllowList is read from the scanned directory when --allowlist is
// not given.
const defaultAllowList = ".keygate-scan.yaml"

// scanFlags are the flags of `keygate scan`.
type scanFlags struct {
	git, staged                     bool
	format, output, baseline, allow string
	maxSize                         int64
	workers                         int
	doImport, rewrite, revokeFound  bool
	importPrefix, grace             string
}

func (a *app) scanCmd() *cobra.Command {
	f := &scanFlags{}
	cmd := &cobra.Command{
		Use:   "scan [PATH... | -] [--git | --staged] [--format text|json|sarif] [--output FILE]",
		Short: "Find credentials in files, standard input or git history",
		Long: `Finds credentials written where they should not be: provider API keys
(OpenAI, Anthropic, Google, Groq, xAI, Mistral, AWS, Azure, GitHub, GitLab,
Slack, Stripe and over a hundred more formats), private keys, JWTs, database
URLs with passwords, keygate's own keys (checksum checked) and high-entropy
values assigned to names like password, secret, token or api_key.

  keygate scan .                       scan a directory (the default)
  keygate scan - < prompt.txt          scan standard input
  keygate scan --git .                 scan every commit reachable from any
                                       ref, each blob once; findings name the
                                       commit that added them
  keygate scan --staged                scan what the next commit adds (the
                                       pre-commit hook runs this)

The secret is never printed: text and JSON show its first characters and
length, SARIF (for GitHub code scanning) the rule and location, with paths
relative to the scanned directory or repository.

Findings are left out when the line (or the line above) holds
"keygate:allow", when the allow-list (--allowlist, default
.keygate-scan.yaml in the scanned directory) allows them by path glob, rule,
fingerprint or secret pattern, and, with --baseline FILE (the JSON output of
an earlier scan), when they were already there.

Exit code: 0 when nothing is found, 1 when something is, 2 when the scan
could not run.

--import moves what was found into keygate's vault through the admin API: a
key for a provider keygate knows (OpenAI, Anthropic, Gemini, Groq, ...)
becomes that provider, or a new version of its key; anything else becomes a
secret named PREFIX/FILE/NAME (--import-prefix, default imported). The files
are left as they are unless --rewrite is given: then each value is replaced
by a reference, keygate://secret/NAME or keygate://provider/NAME, which
"keygate run --env-file FILE" resolves. --revoke-found revokes every kg_ key
found. Values never reach the terminal, the logs or the audit trail.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := a.runScan(cmd, f, args)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "keygate scan:", err)
				return &ExitCodeError{Code: scanExitError}
			}
			if code != 0 {
				return &ExitCodeError{Code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.git, "git", false, "scan the git history of the repository at PATH (default .): every blob reachable from any ref, once")
	fl.BoolVar(&f.staged, "staged", false, "scan the changes staged for the next commit in the repository at PATH (default .)")
	fl.StringVar(&f.format, "format", "text", "output `FORMAT`: text, json or sarif")
	fl.StringVarP(&f.output, "output", "o", "", "write the report to `FILE` instead of standard output")
	fl.StringVar(&f.baseline, "baseline", "", "report only findings not in `FILE`, the JSON output of an earlier scan")
	fl.StringVar(&f.allow, "allowlist", "", "allow-list `FILE` (default: "+defaultAllowList+" in the scanned directory, if there)")
	fl.Int64Var(&f.maxSize, "max-size", scan.DefaultMaxFileSize, "skip files larger than `BYTES`")
	fl.IntVar(&f.workers, "workers", 0, "files scanned at once (default: the number of CPUs)")
	fl.BoolVar(&f.doImport, "import", false, "move what is found into keygate's vault (needs the admin API)")
	fl.BoolVar(&f.rewrite, "rewrite", false, "with --import, replace each imported value in its file by a keygate:// reference")
	fl.BoolVar(&f.revokeFound, "revoke-found", false, "revoke every keygate key found (needs the admin API)")
	fl.StringVar(&f.importPrefix, "import-prefix", "imported", "with --import, the `PREFIX` of the secrets' names")
	fl.StringVar(&f.grace, "grace", "", "with --import, how long a provider's previous key keeps working (default: keygate's, 24h)")
	cmd.AddCommand(a.scanInstallHookCmd())
	return cmd
}

// runScan scans and reports, and returns the exit code.
func (a *app) runScan(cmd *cobra.Command, f *scanFlags, args []string) (int, error) {
	switch {
	case f.git && f.staged:
		return 0, errors.New("--git and --staged do not go together: --git scans the history, --staged the next commit")
	case f.rewrite && !f.doImport:
		return 0, errors.New("--rewrite goes with --import: the values are replaced by references to what was imported")
	case f.rewrite && (f.git || f.staged):
		return 0, errors.New("--rewrite changes the files on disk; it cannot go with --git or --staged")
	case f.format != scan.FormatText && f.format != scan.FormatJSON && f.format != scan.FormatSARIF:
		return 0, fmt.Errorf("--format %q is not known: use text, json or sarif", f.format)
	}
	if len(args) == 0 {
		args = []string{"."}
	}
	stdin := len(args) == 1 && args[0] == "-"
	if (f.git || f.staged) && (len(args) != 1 || stdin) {
		return 0, errors.New("--git and --staged take one PATH: the repository")
	}
	for _, p := range args {
		if p == "-" && !stdin {
			return 0, errors.New("- (standard input) cannot be mixed with paths")
		}
	}
	root, err := scanRoot(args, stdin)
	if err != nil {
		return 0, err
	}
	opts := scan.Options{Root: root, MaxFileSize: f.maxSize, Workers: f.workers}
	allow := f.allow
	if allow == "" && !stdin {
		if _, err := os.Stat(filepath.Join(root, defaultAllowList)); err == nil {
			allow = filepath.Join(root, defaultAllowList)
		}
	}
	if allow != "" {
		if opts.Allow, err = scan.LoadAllowList(allow); err != nil {
			return 0, err
		}
	}
	if f.baseline != "" {
		if opts.Baseline, err = scan.LoadBaseline(f.baseline); err != nil {
			return 0, err
		}
	}
	s, err := scan.New(opts)
	if err != nil {
		return 0, err
	}
	var found []scan.Finding
	emit := func(fd scan.Finding) { found = append(found, fd) }
	ctx := cmd.Context()
	var st scan.Stats
	switch {
	case stdin:
		st, err = s.ScanReader(ctx, "-", cmd.InOrStdin(), emit)
	case f.git:
		st, err = s.ScanGit(ctx, root, emit)
	case f.staged:
		st, err = s.ScanStaged(ctx, root, emit)
	default:
		st, err = s.ScanPaths(ctx, args, emit)
	}
	if err != nil {
		return 0, err
	}
	scan.Sort(found)
	if f.doImport || f.revokeFound {
		if err := a.importFound(cmd, f, root, found); err != nil {
			return 0, err
		}
	}
	var out io.Writer = cmd.OutOrStdout()
	var buf bytes.Buffer
	if f.output != "" {
		out = &buf
	}
	if err := scan.WriteReport(out, f.format, scan.Report{Findings: found, Stats: st, Rules: s.Matcher().Rules(), Version: a.io.Version}); err != nil {
		return 0, err
	}
	if f.output != "" {
		if err := os.WriteFile(f.output, buf.Bytes(), 0o644); err != nil {
			return 0, fmt.Errorf("--output: %w", err)
		}
	}
	if len(found) > 0 {
		return scanExitFound, nil
	}
	return 0, nil
}

// scanRoot is the directory finding paths are relative to: the scanned
// directory or repository when there is one, else the working directory.
func scanRoot(args []string, stdin bool) (string, error) {
	if !stdin && len(args) == 1 {
		if fi, err := os.Stat(args[0]); err == nil && fi.IsDir() {
			return filepath.Abs(args[0])
		} else if err != nil {
			return "", fmt.Errorf("%s: %w", args[0], err)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	return wd, nil
}

// hookScript is the pre-commit hook `keygate scan install-hook` writes.
const hookScript = `#!/bin/sh
# keygate: refuse a commit that adds a credential.
# Installed by "keygate scan install-hook". Skip once with: git commit --no-verify
exec keygate scan --staged "$(git rev-parse --show-toplevel)"
`

func (a *app) scanInstallHookCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "install-hook [REPO]",
		Short: "Install a git pre-commit hook that refuses commits adding credentials",
		Long: `Writes .git/hooks/pre-commit (or the hooks directory git is configured
with) in the repository at REPO (default .), running "keygate scan --staged"
before every commit. An existing hook is kept unless --force is given.

With the pre-commit framework, use this repository's hook instead:

  - repo: https://github.com/keygate/keygate
    rev: vX.Y.Z
    hooks:
      - id: keygate-scan`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo := "."
			if len(args) == 1 {
				repo = args[0]
			}
			dir, err := hooksDir(cmd, repo)
			if err != nil {
				return fmt.Errorf("scan install-hook: %w", err)
			}
			p := filepath.Join(dir, "pre-commit")
			if old, err := os.ReadFile(p); err == nil && !force && !bytes.Equal(old, []byte(hookScript)) {
				return fmt.Errorf("scan install-hook: %s already exists; add `keygate scan --staged` to it, or pass --force to replace it", p)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("scan install-hook: %w", err)
			}
			if err := os.WriteFile(p, []byte(hookScript), 0o755); err != nil {
				return fmt.Errorf("scan install-hook: %w", err)
			}
			_ = os.Chmod(p, 0o755)
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "installed %s: every commit is scanned for credentials\n", p)
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing pre-commit hook")
	return cmd
}

// hooksDir asks git where the repository's hooks live.
func hooksDir(cmd *cobra.Command, repo string) (string, error) {
	out, err := gitOutput(cmd, repo, "rev-parse", "--git-path", "hooks")
	if err != nil {
		return "", fmt.Errorf("%s is not a git repository (or git is not installed): %w", repo, err)
	}
	dir := strings.TrimSpace(out)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repo, dir)
	}
	return dir, nil
}
