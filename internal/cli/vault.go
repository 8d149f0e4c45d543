package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

// vaultCmdName is the name VaultCommand looks for.
const vaultCmdName = "vault"

// kekPollInterval is how often `vault rotate-kek --wait` asks for progress.
const kekPollInterval = 500 * time.Millisecond

func (a *app) vaultCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   vaultCmdName,
		Short: "Look after the vault: its key-encryption key and backups",
		Long: `keygate encrypts every secret and provider key with its own data key, and
wraps each data key with a key-encryption key (KEK): a key file, a passphrase
or a key in a KMS. These commands show which KEK wraps what, move everything
to a new KEK, and take encrypted backups.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.vaultStatusCmd(), a.vaultRotateKEKCmd(), a.vaultBackupCmd())
	return cmd
}

func (a *app) vaultStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the key-encryption key, what it wraps, and the latest KEK rotation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			st, err := c.VaultStatus(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("vault status: %w", err), cred)
			}
			if st.Counts == nil {
				st.Counts = []adminapi.KEKCount{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			out := cmd.OutOrStdout()
			if err := fields(out, [][2]string{{"KEK", st.KEKID}, {"KEK kind", st.KEKKind}}); err != nil {
				return err
			}
			fmt.Fprintln(out)
			if len(st.Counts) == 0 {
				fmt.Fprintln(out, "Nothing is stored in the vault yet.")
			} else {
				tw := newTable(out)
				fmt.Fprintln(tw, "KEK\tFORMAT\tVERSIONS")
				for _, n := range st.Counts {
					fmt.Fprintf(tw, "%s\t%d\t%d\n", n.KEKID, n.Format, n.Versions)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			fmt.Fprintln(out)
			if err := printKEKStates(out, st.KEKs); err != nil {
				return err
			}
			if st.Rotation == nil {
				_, err := fmt.Fprintln(out, "No KEK rotation yet.")
				return err
			}
			fmt.Fprintln(out, "Latest KEK rotation:")
			return printRotation(out, *st.Rotation)
		},
	}
}

// printKEKStates prints one line per KEK saying what it still opens, such
// as "Old KEK local:...: opens nothing; it can be destroyed ...". URLs are
// the redacted ones keygate recorded.
func printKEKStates(w io.Writer, keks []adminapi.KEKState) error {
	if len(keks) == 0 {
		return nil
	}
	for _, k := range keks {
		label := "Old KEK"
		if k.Current {
			label = "Current KEK"
		}
		where := k.Kind
		if k.URL != "" {
			where += ", " + k.URL
		}
		if _, err := fmt.Fprintf(w, "%s %s (%s): %s.\n", label, k.KEKID, where, k.Verdict); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// printRotation prints a KEK rotation. It holds KEK ids only, never a KEK URL.
func printRotation(w io.Writer, r adminapi.KEKRotation) error {
	pairs := [][2]string{
		{"ID", r.ID},
		{"From", r.From},
		{"To", r.To},
		{"State", r.State},
		{"Rewrapped", strconv.Itoa(r.Rewrapped)},
		{"Remaining", strconv.Itoa(r.Remaining)},
		{"Started", fmtTime(r.StartedAt)},
		{"Finished", fmtTimePtr(r.FinishedAt, "-")},
	}
	if r.Error != "" {
		pairs = append(pairs, [2]string{"Error", r.Error})
	}
	return fields(w, pairs)
}

// kekURLScheme returns the scheme of a KEK URL, or "" if s does not look like
// one. It never returns any part of s after the scheme.
func kekURLScheme(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || rest == "" {
		return ""
	}
	for i, r := range scheme {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case i > 0 && ('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return ""
		}
	}
	return strings.ToLower(scheme)
}

func (a *app) vaultRotateKEKCmd() *cobra.Command {
	var (
		to, toEnv, interval string
		batchSize           int
		wait                bool
	)
	cmd := &cobra.Command{
		Use:   "rotate-kek (--to URL | --to-env VAR) [--batch-size N] [--batch-interval 10ms] [--wait]",
		Short: "Rewrap every data key under a new key-encryption key",
		Long: `Starts rewrapping every data key under the key-encryption key at URL. The
rotation runs inside keygate, in batches, while it keeps serving; if keygate
stops, it carries on where it left off. Secrets and provider keys are not
re-encrypted: only their data keys are. Configure every keygate with the new
KEK (kek:, KEYGATE_KEK) once the rotation has finished; when "keygate vault
status" says the old KEK opens nothing, it can be destroyed.

keygate never prints or stores a URL that holds key material (base64key://),
only KEK ids: give such a KEK to every keygate before restarting it, or it
will refuse to start. Use --to-env VAR to keep it out of shell history.

  keygate vault rotate-kek --to awskms:///alias/keygate-2025 --wait
  keygate vault rotate-kek --to "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k" --batch-size 50 --batch-interval 10ms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fromEnv := toEnv != ""
			switch {
			case fromEnv && to != "":
				return errors.New("vault rotate-kek: give --to or --to-env, not both")
			case fromEnv:
				to = a.io.Getenv(toEnv)
				if strings.TrimSpace(to) == "" {
					return fmt.Errorf("vault rotate-kek: the environment variable %s is empty or unset", toEnv)
				}
			}
			to = strings.TrimSpace(to)
			if to == "" {
				return errors.New("vault rotate-kek: --to (or --to-env) is required: the URL of the new key-encryption key, as in awskms:///alias/NAME")
			}
			scheme := kekURLScheme(to)
			if scheme == "" {
				// The value is not repeated: it may be key material.
				return errors.New("vault rotate-kek: --to must be a KEK URL such as awskms:///alias/NAME, gcpkms://..., azurekeyvault://..., hashivault://... or base64key://...")
			}
			if batchSize < 0 {
				return errors.New("vault rotate-kek: --batch-size must be 1 or more (leave it out for the default of 100)")
			}
			interval = strings.TrimSpace(interval)
			if interval != "" {
				if d, err := time.ParseDuration(interval); err != nil || d < 0 {
					return fmt.Errorf("vault rotate-kek: --batch-interval %q is not a duration: use one such as 10ms or 1s", interval)
				}
			}
			if scheme == "base64key" && !fromEnv {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: a base64key:// URL holds the key itself, and it is now in your shell history: remove it from there.")
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			rot, err := c.RotateKEK(cmd.Context(), adminapi.RotateKEKRequest{To: to, BatchSize: batchSize, BatchInterval: interval})
			if err != nil {
				return explain(fmt.Errorf("vault rotate-kek: %w", err), cred)
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if !a.json {
				fmt.Fprintf(out, "Started KEK rotation %s.\n", rot.ID)
				if err := printRotation(out, rot); err != nil {
					return err
				}
			}
			if !wait {
				if a.json {
					return writeJSON(out, rot)
				}
				_, err := fmt.Fprintln(errOut, "Follow it with `keygate vault status`, or rerun with --wait.")
				return err
			}
			rot, err = waitRotation(cmd.Context(), errOut, rot, func(ctx context.Context) (adminapi.VaultStatus, error) {
				st, err := c.VaultStatus(ctx)
				return st, explain(err, cred)
			})
			if err != nil {
				return fmt.Errorf("vault rotate-kek: %w", err)
			}
			if a.json {
				return writeJSON(out, rot)
			}
			_, err = fmt.Fprintf(out, "KEK rotation %s finished: %d data keys rewrapped; everything is now wrapped by %s.\n", rot.ID, rot.Rewrapped, rot.To)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "`URL` of the new key-encryption key, as in awskms:///alias/NAME")
	f.StringVar(&toEnv, "to-env", "", "name of the environment `VAR` holding the new KEK's URL (keeps key material out of shell history)")
	f.IntVar(&batchSize, "batch-size", 0, "`N` data keys rewrapped per transaction (default 100)")
	f.StringVar(&interval, "batch-interval", "", "`DURATION` to pause between batches, as in 10ms, to go easy on the database and the KMS")
	f.BoolVar(&wait, "wait", false, "wait for the rotation to finish, printing its progress")
	return cmd
}

// waitRotation polls status until the rotation rot has finished, printing
// progress to w, and returns it as last seen.
func waitRotation(ctx context.Context, w io.Writer, rot adminapi.KEKRotation, status func(context.Context) (adminapi.VaultStatus, error)) (adminapi.KEKRotation, error) {
	const keepsRunning = "the rotation keeps running inside keygate: follow it with `keygate vault status`"
	t := time.NewTicker(kekPollInterval)
	defer t.Stop()
	lastErr, lastState := "", rot.State
	for rot.State != "finished" {
		select {
		case <-ctx.Done():
			return rot, fmt.Errorf("stopped waiting (%w); %s", ctx.Err(), keepsRunning)
		case <-t.C:
		}
		st, err := status(ctx)
		if err != nil {
			return rot, fmt.Errorf("checking progress: %w\n%s", err, keepsRunning)
		}
		if st.Rotation == nil || st.Rotation.ID != rot.ID {
			return rot, fmt.Errorf("keygate no longer reports rotation %s as the latest one: see `keygate vault status`", rot.ID)
		}
		rot = *st.Rotation
		fmt.Fprintf(w, "rewrapped %d, remaining %d\n", rot.Rewrapped, rot.Remaining)
		if rot.Error != "" && rot.Error != lastErr {
			fmt.Fprintf(w, "the rotation is stuck: %s\n", rot.Error)
		}
		if rot.State == "paused" && lastState != "paused" {
			fmt.Fprintln(w, "the rotation is paused: no keygate is working on it; start `keygate serve` to carry on (still waiting; Ctrl-C stops waiting)")
		}
		lastErr, lastState = rot.Error, rot.State
	}
	return rot, nil
}

func (a *app) vaultBackupCmd() *cobra.Command {
	var (
		out   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "backup --out FILE [--force]",
		Short: "Save an encrypted backup of the vault to a file",
		Long: `Saves an encrypted backup of every secret and provider key to FILE, created
with mode 0600. It refuses to overwrite a file unless --force is given, which
replaces it in one step. Only admin credentials may take a backup.

The backup stays encrypted: restoring it needs the same key-encryption key
(KEK), with "keygate vault restore" on the target machine.

  keygate vault backup --out keygate-$(date +%F).kgbak`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(out) == "" {
				return errors.New("vault backup: --out is required: the FILE to write the backup to")
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			n, err := writeBackup(out, force, func(w io.Writer) error { return c.Backup(cmd.Context(), w) })
			if err != nil {
				return explain(fmt.Errorf("vault backup: %w", err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"file": out, "bytes": n})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Wrote %d bytes to %s.\n"+
				"Restoring it needs the same key-encryption key (KEK) this keygate uses: run `keygate vault restore` on the target machine with that KEK.\n", n, out)
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "`FILE` to write the backup to (required)")
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return cmd
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeBackup creates path with mode 0600 and fills it with fill, then
// syncs it to disk. Without force it refuses an existing path; with force it
// writes a temporary file beside path and renames it over path. On any error
// no partial file is left behind.
func writeBackup(path string, force bool, fill func(io.Writer) error) (n int64, err error) {
	var f *os.File
	if force {
		f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	} else {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("%s already exists: choose another --out, or pass --force to replace it", path)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("create the backup file: %w", err)
	}
	written := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(written)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("create the backup file: %w", err)
	}
	cw := &countingWriter{w: f}
	if err := fill(cw); err != nil {
		return cw.n, fmt.Errorf("%w (the partial file was removed)", err)
	}
	if cw.n == 0 {
		return 0, errors.New("keygate sent an empty backup; nothing was saved")
	}
	if err := f.Sync(); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", written, err)
	}
	if err := f.Close(); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", written, err)
	}
	if force {
		if err := os.Rename(written, path); err != nil {
			return cw.n, fmt.Errorf("replace %s: %w", path, err)
		}
	}
	syncDir(filepath.Dir(path))
	return cw.n, nil
}

// syncDir makes a new directory entry durable where the system allows it;
// failing that, the file itself is already on disk.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
