package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/keygate/keygate/internal/cli"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/memlimit"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/server"
)

// envConfig names the configuration file when --config is not given (a
// file mounted into a container).
const envConfig = "KEYGATE_CONFIG"

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
admin credential. Settings come from --config (YAML; or KEYGATE_CONFIG), then
KEYGATE_* environment variables, then these flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = sio.Getenv(envConfig)
			}
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
			set("kek", func() { cfg.KEK = c.KEK })
			set("redis", func() { cfg.Limits.Redis = c.Limits.Redis })
			// Run checks the whole configuration before it creates anything;
			// the memory limit, which belongs to the process, is set once it
			// is known to be valid.
			if err := cfg.Validate(); err != nil {
				return err
			}
			memlimit.Set(int64(cfg.MemoryLimit), sio.Getenv, "/sys/fs/cgroup")
			return server.Run(cmd.Context(), cfg, sio.Stdout, sio.Stderr, ready, serverOptions(sio)...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file (env "+envConfig+")")
	f.StringVar(&c.DataDir, "data-dir", "", "data directory (default ~/.keygate)")
	f.StringVar(&c.Database, "database", "", "postgres://... or sqlite:///path (default: SQLite in the data directory)")
	f.StringVar(&c.Listen, "listen", "", "gateway address (default 127.0.0.1:8787)")
	f.StringVar(&c.AdminListen, "admin-listen", "", "admin API address (default 127.0.0.1:8788)")
	f.StringVar(&c.TLS.Cert, "tls-cert", "", "PEM certificate for HTTPS on both listeners")
	f.StringVar(&c.TLS.Key, "tls-key", "", "PEM private key for --tls-cert")
	f.BoolVar(&c.TLS.SelfSigned, "tls-self-signed", false, "serve HTTPS with a generated self-signed certificate (for trials)")
	f.BoolVar(&c.AllowPlainHTTP, "allow-plain-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy)")
	f.StringVar(&c.Limits.Redis, "redis", "", "redis:// URL of a Redis that keeps rate limits, quotas and budgets for every keygate node (default: this process's memory)")
	f.StringVar(&c.KEK, "kek", "", "key-encryption key URL: file:///path, passphrase://?env=NAME, awskms://..., gcpkms://..., azurekeyvault://..., hashivault://... (default: the master key file in the data directory)")
	return cmd
}

// serverOptions gives keygate the process's environment, its terminal (to
// ask for a KEK passphrase) and its version.
func serverOptions(sio cli.IO) []server.Option {
	return []server.Option{
		server.WithGetenv(sio.Getenv),
		server.WithPrompt(terminalPrompt(sio.Stdin, sio.Stderr)),
		server.WithVersion(sio.Version),
	}
}

// terminalPrompt asks for a passphrase on the terminal without echoing it.
func terminalPrompt(in io.Reader, out io.Writer) func(string) (secret.String, error) {
	return func(prompt string) (secret.String, error) {
		f, ok := in.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return secret.String{}, errors.New("no terminal to ask for the passphrase on; use passphrase://?env=NAME or passphrase://?file=/path")
		}
		fmt.Fprint(out, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(out)
		defer clear(b)
		if err != nil {
			return secret.String{}, fmt.Errorf("read the passphrase: %w", err)
		}
		return secret.New(string(b)), nil
	}
}
