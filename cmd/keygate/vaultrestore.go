package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/cli"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/server"
)

// vaultRestoreCommand builds `keygate vault restore`, which works on the
// data directory directly: it sets up a new keygate from a backup before
// keygate runs there.
func vaultRestoreCommand(sio cli.IO) *cobra.Command {
	var configPath, dataDir, database, kek, in string
	cmd := &cobra.Command{
		Use:   "restore --in FILE",
		Short: "Restore an encrypted backup into a new keygate database (keygate stopped)",
		Long: `Restore a backup made by "keygate vault backup" into this machine's keygate
database, which must hold no providers, keys or secrets yet. Stop keygate first.

The backup opens only with the key-encryption key it was made under:
  - a master key file: copy it from the source machine to the data directory
    (or point --kek file:///path at it);
  - a passphrase: give the same passphrase (the backup carries its salt);
  - a KMS key: configure the same key URL, with credentials that may use it.
Every record is opened before anything is written, so a backup that this
keygate could not use is refused and changes nothing. Afterwards the admin
credentials, keygate keys and provider keys of the source work here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath, sio.HomeDir, sio.Getenv)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("data-dir") {
				cfg.DataDir = dataDir
			}
			if f.Changed("database") {
				cfg.Database = database
			}
			if f.Changed("kek") {
				cfg.KEK = kek
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
			}
			file, err := os.Open(in)
			if err != nil {
				return fmt.Errorf("open the backup: %w", err)
			}
			defer file.Close()
			sum, err := server.Restore(cmd.Context(), cfg, file, serverOptions(sio)...)
			if err != nil {
				return err
			}
			fmt.Fprintf(sio.Stdout, "Restored %d providers, %d keys, %d secrets (%d encrypted versions) and %d admin credentials, sealed under KEK %s.\n",
				sum.Providers, sum.Keys, sum.Secrets, sum.SecretVersions, sum.AdminTokens, sum.KEKID)
			fmt.Fprintln(sio.Stderr, "Start keygate with `keygate serve`; log in with an admin credential of the source installation.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "the backup file (required)")
	f.StringVar(&configPath, "config", "", "YAML configuration file")
	f.StringVar(&dataDir, "data-dir", "", "data directory (default ~/.keygate)")
	f.StringVar(&database, "database", "", "postgres://... or sqlite:///path (default: SQLite in the data directory)")
	f.StringVar(&kek, "kek", "", "key-encryption key URL (default: the master key file in the data directory)")
	_ = cmd.MarkFlagRequired("in")
	return cmd
}
