package main

import (
	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/cli"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/server"
)

// serveCommand builds `keygate serve`. ready, when not nil, is told the
// listening addresses (tests use port 0 and learn the ports this way).
func serveCommand(sio cli.IO, ready func(server.Listening)) *cobra.Command {
	var configPath string
	var c config.Config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the keygate gateway and admin API",
		Long: `Run keygate. With no configuration it keeps everything in ~/.keygate: a SQLite
database, a local master key (0600) and, on the first start, prints a one-time
admin credential. Settings come from --config (YAML), then KEYGATE_* environment
variables, then these flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath, sio.HomeDir, sio.Getenv)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			set := func(name string, apply func()) {
				if f.Changed(name) {
					apply()
				}
			}
			set("data-dir", func() { cfg.DataDir = c.DataDir })
			set("database", func() { cfg.Database = c.Database })
			set("listen", func() { cfg.Listen = c.Listen })
			set("admin-listen", func() { cfg.AdminListen = c.AdminListen })
			set("tls-cert", func() { cfg.TLS.Cert = c.TLS.Cert })
			set("tls-key", func() { cfg.TLS.Key = c.TLS.Key })
			set("tls-self-signed", func() { cfg.TLS.SelfSigned = c.TLS.SelfSigned })
			set("allow-plain-http", func() { cfg.AllowPlainHTTP = c.AllowPlainHTTP })
			if err := cfg.Validate(); err != nil {
				return err
			}
			return server.Run(cmd.Context(), cfg, sio.Stdout, sio.Stderr, ready)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file")
	f.StringVar(&c.DataDir, "data-dir", "", "data directory (default ~/.keygate)")
	f.StringVar(&c.Database, "database", "", "postgres://... or sqlite:///path (default: SQLite in the data directory)")
	f.StringVar(&c.Listen, "listen", "", "gateway address (default 127.0.0.1:8787)")
	f.StringVar(&c.AdminListen, "admin-listen", "", "admin API address (default 127.0.0.1:8788)")
	f.StringVar(&c.TLS.Cert, "tls-cert", "", "PEM certificate for HTTPS on both listeners")
	f.StringVar(&c.TLS.Key, "tls-key", "", "PEM private key for --tls-cert")
	f.BoolVar(&c.TLS.SelfSigned, "tls-self-signed", false, "serve HTTPS with a generated self-signed certificate (for trials)")
	f.BoolVar(&c.AllowPlainHTTP, "allow-plain-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy)")
	return cmd
}
