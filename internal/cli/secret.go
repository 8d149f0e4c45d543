package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// maxSecretValue is the most a secret may hold, as the admin API accepts it.
const maxSecretValue = 64 << 10

// valueFlagMsg is the answer to --value. It never repeats the value given.
const valueFlagMsg = ("--value is not accepted: a secret typed on the command line lands in shell history and process listings.\n" +
	"Pass it with --from-env VAR (the name of an environment variable that holds it), --from-file PATH or --stdin.\n" +
	"If you typed a real secret, remove it from your shell history")

// valueArgMsg is the answer to a second argument to `secret put`, most
// likely the value. It never repeats it.
const valueArgMsg = ("secret put takes only the secret's NAME: a value typed on the command line lands in shell history and process listings.\n" +
	"Pass it with --from-env VAR, --from-file PATH or --stdin. If you typed a real secret, remove it from your shell history")

// checkSecretName validates a secret's name before any request, for the command what.
func checkSecretName(what, name string) error {
	if err := adminapi.ValidSecretName(name); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (a *app) secretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Keep secrets in keygate's encrypted vault and read them back",
		Long: `Secrets are named values, such as database passwords, that keygate keeps
encrypted. Names are paths like payments/stripe. Every put stores a new
version; older versions are kept for a while so a bad change can be rolled
back. Hand secrets to a program with "keygate run" rather than printing them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.secretPutCmd(), a.secretGetCmd(), a.secretListCmd(), a.secretVersionsCmd(),
		a.secretRollbackCmd(), a.secretDeleteCmd(), a.secretRestoreCmd())
	return cmd
}

func (a *app) secretPutCmd() *cobra.Command {
	var (
		fromEnv, fromFile, valueFlag string
		ref, refRefresh, refGrace    string
		fromStdin                    bool
	)
	cmd := &cobra.Command{
		Use:   "put NAME (--from-env VAR | --from-file PATH | --stdin | --ref REF)",
		Short: "Store a new version of a secret",
		Long: `Stores a new version of the secret NAME, creating it if needed. The value is
read from an environment variable, a file or standard input, never from the
command line, where it would land in shell history. One trailing newline is
removed from a file or standard input. A value holds at most 64 KiB of text.

  DB_PASSWORD=... keygate secret put db/password --from-env DB_PASSWORD
  keygate secret put payments/stripe --from-file ./stripe.txt
  keygate secret put ci/token --stdin

With --ref the secret stays in its source and keygate follows it: it reads
it now with its own identity, seals what it read, re-reads it every
--ref-refresh, and serves the last value read for --ref-grace once the
source cannot be read (then refuses it, and alerts):

  keygate secret put payments/stripe --ref awssm://prod/stripe
  keygate secret put db/password --ref vault://kv/team/db#password --ref-refresh 1m`,
		Args: func(cmd *cobra.Command, args []string) error {
			// Checked before the argument count, so the advice wins over any other error.
			if cmd.Flags().Changed("value") {
				return errors.New(valueFlagMsg)
			}
			if len(args) > 1 {
				return errors.New(valueArgMsg)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkSecretName("secret put", name); err != nil {
				return err
			}
			if ref != "" {
				if fromEnv != "" || fromFile != "" || fromStdin {
					return fmt.Errorf("secret put %s: --ref keeps the value in its source; give no --from-env, --from-file or --stdin with it", name)
				}
				return a.putSecretRef(cmd, name, ref, refRefresh, refGrace)
			}
			if refRefresh != "" || refGrace != "" {
				return fmt.Errorf("secret put %s: --ref-refresh and --ref-grace go with --ref", name)
			}
			value, err := a.secretInput(cmd, name, fromEnv, fromFile, fromStdin)
			if err != nil {
				return fmt.Errorf("secret put %s: %w", name, err)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.PutSecret(cmd.Context(), name, value)
			if err != nil {
				return explain(fmt.Errorf("secret put %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Stored %s version %d.\n", s.Name, s.CurrentVersion)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&fromEnv, "from-env", "", "name of the environment variable (`VAR`) holding the value")
	f.StringVar(&fromFile, "from-file", "", "read the value from the file at `PATH`")
	f.BoolVar(&fromStdin, "stdin", false, "read the value from standard input (a hidden prompt on a terminal)")
	f.StringVar(&valueFlag, "value", "", "not accepted: use --from-env, --from-file or --stdin")
	_ = f.MarkHidden("value")
	refFlags(cmd, "ref", &ref, &refRefresh, &refGrace, "the secret")
	return cmd
}

// secretInput reads a secret's value from exactly one of its sources, never
// repeating it in an error.
func (a *app) secretInput(cmd *cobra.Command, name, fromEnv, fromFile string, fromStdin bool) (secret.String, error) {
	n := 0
	for _, set := range []bool{fromEnv != "", fromFile != "", fromStdin} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return secret.String{}, errors.New("the value is required: pass --from-env VAR (an environment variable that holds it), --from-file PATH or --stdin")
	case n > 1:
		return secret.String{}, errors.New("use only one of --from-env, --from-file and --stdin")
	}
	var (
		v    string
		from string
	)
	switch {
	case fromEnv != "":
		if !validEnvName(fromEnv) {
			// Not echoed: a value pasted here by mistake must not reach the terminal or logs.
			return secret.String{}, errors.New("--from-env takes the NAME of an environment variable that holds the value (like DB_PASSWORD), not the value itself")
		}
		v = a.io.Getenv(fromEnv)
		if v == "" {
			return secret.String{}, fmt.Errorf("environment variable %s is empty or not set: export the value in %s, or use --from-file or --stdin", fromEnv, fromEnv)
		}
		from = "environment variable " + fromEnv
	case fromFile != "":
		f, err := os.Open(fromFile)
		if err != nil {
			return secret.String{}, fmt.Errorf("--from-file: %w", err)
		}
		defer f.Close()
		if v, err = readValue(f); err != nil {
			return secret.String{}, fmt.Errorf("--from-file %s: %w", fromFile, err)
		}
		from = fromFile
	default:
		in := cmd.InOrStdin()
		if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprintf(cmd.ErrOrStderr(), "Value for secret %s: ", name)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return secret.String{}, fmt.Errorf("read from the terminal: %w", err)
			}
			v = string(b)
		} else {
			var err error
			if v, err = readValue(in); err != nil {
				return secret.String{}, fmt.Errorf("standard input: %w", err)
			}
		}
		from = "standard input"
	}
	switch {
	case v == "":
		return secret.String{}, fmt.Errorf("the value read from %s is empty: a secret needs a value", from)
	case len(v) > maxSecretValue:
		return secret.String{}, fmt.Errorf("the value read from %s is larger than %d KiB, the most a secret holds", from, maxSecretValue>>10)
	case !utf8.ValidString(v):
		return secret.String{}, fmt.Errorf("the value read from %s is not UTF-8 text: keygate stores text, so encode binary data first (as with base64)", from)
	}
	return secret.New(v), nil
}

// readValue reads a value of at most maxSecretValue bytes from r and removes
// one trailing newline ("\n" or "\r\n"). A longer value comes back longer
// than maxSecretValue, for the caller to refuse.
func readValue(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("nothing to read from")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretValue+3))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretValue+2 {
		return string(b), nil
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	return s, nil
}

func (a *app) secretGetCmd() *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "get NAME [--version N]",
		Short: "Print a secret's value on standard output",
		Long: `Prints the value of the secret NAME, followed by a newline, on standard
output. Only admin credentials may read values, and keygate records every read.
Prefer "keygate run", which hands secrets to a program without printing them.

  keygate secret get db/password
  keygate secret get db/password --version 3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkSecretName("secret get", name); err != nil {
				return err
			}
			if version < 0 {
				return fmt.Errorf("secret get %s: --version must be 1 or more (leave it out for the current version)", name)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			v, got, err := c.SecretValue(cmd.Context(), name, version)
			if err != nil {
				return explain(fmt.Errorf("secret get %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.SecretValue{Name: name, Version: got, Value: v.Reveal()})
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), v.Reveal())
			return err
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "the `VERSION` to read (default: the current one)")
	return cmd
}

func (a *app) secretListCmd() *cobra.Command {
	var deleted bool
	cmd := &cobra.Command{
		Use:     "list [--deleted]",
		Aliases: []string{"ls"},
		Short:   "List secrets (never their values)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			ss, err := c.ListSecrets(cmd.Context(), deleted)
			if err != nil {
				return explain(fmt.Errorf("secret list: %w", err), cred)
			}
			if ss == nil {
				ss = []adminapi.Secret{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.SecretList{Secrets: ss})
			}
			if len(ss) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "No secrets yet. Store one with `keygate secret put NAME --stdin`.")
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			if deleted {
				fmt.Fprintln(tw, "NAME\tCURRENT\tVERSIONS\tUPDATED\tDELETED")
			} else {
				fmt.Fprintln(tw, "NAME\tCURRENT\tVERSIONS\tUPDATED")
			}
			for _, s := range ss {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s", s.Name, s.CurrentVersion, s.Versions, fmtTime(s.UpdatedAt))
				if deleted {
					fmt.Fprintf(tw, "\t%s", fmtTimePtr(s.DeletedAt, "-"))
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&deleted, "deleted", false, "include deleted secrets that can still be restored")
	return cmd
}

func (a *app) secretVersionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List the stored versions of a secret (never their values)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkSecretName("secret versions", name); err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			vs, err := c.SecretVersions(cmd.Context(), name)
			if err != nil {
				return explain(fmt.Errorf("secret versions %s: %w", name, err), cred)
			}
			if vs == nil {
				vs = []adminapi.SecretVersion{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.SecretVersionList{Name: name, Versions: vs})
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "VERSION\tCURRENT\tKEK\tFORMAT\tCREATED\tDESTROY-AT")
			for _, v := range vs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", v.Version, yesNo(v.Current), v.KEKID, v.Format,
					fmtTime(v.CreatedAt), fmtTimePtr(v.DestroyAt, "-"))
			}
			return tw.Flush()
		},
	}
}

func (a *app) secretRollbackCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME VERSION",
		Short: "Make an earlier version of a secret current again",
		Long: `Makes VERSION the current value of the secret NAME again, by storing its
value as a new version; no version is lost.

  keygate secret rollback db/password 3`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkSecretName("secret rollback", name); err != nil {
				return err
			}
			version, err := strconv.Atoi(args[1])
			if err != nil || version < 1 {
				return fmt.Errorf("secret rollback %s: the version must be a whole number of 1 or more, as `keygate secret versions %s` lists them", name, name)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.RollbackSecret(cmd.Context(), name, version)
			if err != nil {
				return explain(fmt.Errorf("secret rollback %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Rolled %s back to version %d's value, now current as version %d.\n",
				s.Name, version, s.CurrentVersion)
			return err
		},
	}
}

func (a *app) secretDeleteCmd() *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:     "delete NAME [--purge]",
		Aliases: []string{"rm"},
		Short:   "Delete a secret; it can be restored until it is purged",
		Long: `Deletes the secret NAME. keygate keeps it for a while, during which
"keygate secret restore NAME" brings it back, and then destroys it.

With --purge every version is destroyed at once, without confirmation, and
cannot be restored.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkSecretName("secret delete", name); err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.DeleteSecret(cmd.Context(), name, purge)
			if err != nil {
				return explain(fmt.Errorf("secret delete %s: %w", name, err), cred)
			}
			if purge {
				out := cmd.OutOrStdout()
				if a.json {
					out = cmd.ErrOrStderr() // with --json, stdout carries only JSON
				}
				_, err = fmt.Fprintf(out, "Destroyed secret %s and every version of it; it cannot be restored.\n", name)
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Deleted secret %s. keygate destroys it at %s; until then `keygate secret restore %s` brings it back.\n",
				name, fmtTimePtr(s.PurgeAt, "a time it did not report"), name)
			return err
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "destroy every version at once, with no confirmation and no way back")
	return cmd
}

func (a *app) secretRestoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore NAME",
		Short: "Bring back a deleted secret before it is purged",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkSecretName("secret restore", name); err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.RestoreSecret(cmd.Context(), name)
			if err != nil {
				return explain(fmt.Errorf("secret restore %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Restored secret %s at version %d.\n", s.Name, s.CurrentVersion)
			return err
		},
	}
}
