package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/cli"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/server"
)

// adminCommand builds `keygate admin token create`, the way back in for an
// operator who lost the admin credential.
func adminCommand(sio cli.IO) *cobra.Command {
	var configPath, dataDir, database, name, role, ttl string
	create := &cobra.Command{
		Use:   "create",
		Short: "Issue a new admin credential by opening the data directory directly",
		Long: `Issue a new admin credential without the admin API, for an operator who has
lost theirs. It opens keygate's master key and database directly (keygate may be
running or not), so it needs the same access to the data directory as keygate
itself. The credential is printed once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath, sio.HomeDir, sio.Getenv)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("data-dir") {
				cfg.DataDir = dataDir
			}
			if cmd.Flags().Changed("database") {
				cfg.Database = database
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			life, err := adminapi.ParseDuration(ttl)
			if err != nil {
				return fmt.Errorf("--ttl: %w", err)
			}
			tok, err := server.CreateAdminToken(cmd.Context(), cfg, name, role, life, sio.Stderr, serverOptions(sio)...)
			if err != nil {
				return err
			}
			fmt.Fprintln(sio.Stdout, tok.Reveal())
			fmt.Fprintf(sio.Stderr, "Issued admin credential %q (role %s, expires in %s). This is the only time keygate shows it: copy it now.\n", name, role, ttl)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file")
	f.StringVar(&dataDir, "data-dir", "", "data directory (default ~/.keygate)")
	f.StringVar(&database, "database", "", "postgres://... or sqlite:///path (default: SQLite in the data directory)")
	f.StringVar(&name, "name", "recovered", "a name for the credential")
	f.StringVar(&role, "role", "owner", "the credential's role: owner (everything), admin, operator, or any role that applies everywhere (keygate roles lists them)")
	f.StringVar(&ttl, "ttl", "30d", "how long the credential works, such as 30d (at most 365d)")
	token := &cobra.Command{Use: "token", Short: "Manage admin credentials"}
	token.AddCommand(create)
	admin := &cobra.Command{Use: "admin", Short: "Operator commands that work on the data directory directly"}
	admin.AddCommand(token)
	return admin
}
