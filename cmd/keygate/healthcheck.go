package main

import (
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/cli"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/ready"
)

// healthcheckCommand builds `keygate healthcheck`: the container image's
// HEALTHCHECK, which has no curl. It reads the same configuration as
// `keygate serve` (--config, KEYGATE_* variables) to find the gateway.
func healthcheckCommand(sio cli.IO) *cobra.Command {
	var configPath, url string
	var live bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the local keygate is ready (a container HEALTHCHECK)",
		Long: `Ask the keygate running on this machine whether it is ready (GET /readyz on
its gateway; with --live, whether it is alive: GET /healthz). Exit 0 when it
answers 200, 1 otherwise, saying why. The gateway is found from the same
configuration as keygate serve (--config, KEYGATE_LISTEN, ...): an address
on all interfaces is asked on loopback. With TLS the gateway must present
exactly the configured certificate (tls.cert, or the self-signed one).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = sio.Getenv(envConfig)
			}
			cfg, err := config.Load(configPath, sio.HomeDir, sio.Getenv)
			if err != nil {
				return err
			}
			path := "/readyz"
			if live {
				path = "/healthz"
			}
			target, pinned, err := healthcheckTarget(cfg)
			if err != nil {
				return err
			}
			if url != "" {
				target = url
			} else {
				target += path
			}
			if err := ready.Get(cmd.Context(), target, pinned, timeout); err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			fmt.Fprintln(sio.Stdout, "ok")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file, as given to keygate serve")
	f.StringVar(&url, "url", "", "ask this URL instead of the configured gateway's /readyz")
	f.BoolVar(&live, "live", false, "ask /healthz (alive) instead of /readyz (ready to serve)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// healthcheckTarget returns the configured gateway's base URL as reached
// from this machine, and the certificate it must present when it serves
// TLS.
func healthcheckTarget(cfg config.Config) (string, []byte, error) {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "", nil, fmt.Errorf("listen: %q is not host:port", cfg.Listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	base := "://" + net.JoinHostPort(host, port)
	var certFile string
	switch {
	case cfg.TLS.Cert != "":
		certFile = cfg.TLS.Cert
	case cfg.TLS.SelfSigned:
		certFile = filepath.Join(cfg.DataDir, "tls", "self-signed.crt")
	default:
		return "http" + base, nil, nil
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", nil, fmt.Errorf("read the gateway's certificate to check it against: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	return "https" + base, block.Bytes, nil
}
