package cli

import (
	"errors"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/agent"
)

// agentCmd is `keygate agent`: a sidecar or VM service that signs in as its
// workload and keeps an app's keygate token and secrets in files.
func (a *app) agentCmd() *cobra.Command {
	var config string
	var once bool
	cmd := &cobra.Command{
		Use:   "agent --config FILE [--once]",
		Short: "Keep an app's keygate token and secrets in files, signed in as its workload",
		Long: `keygate agent runs beside an app (a Kubernetes sidecar, a service on a VM) and
keeps the app's keygate credentials in files, with no long-lived key anywhere:

  1. it reads the workload's OIDC identity token: a projected Kubernetes
     service-account token (identity.token_file), a command's output
     (identity.command), or the GitHub Actions runner's
     (identity.github_actions_audience);
  2. exchanges it at the gateway's /oauth/token, where a trust policy
     (workloads.trust in keygate's configuration) decides what it gets;
  3. reads the vault secrets its templates name at the gateway's /secrets;
  4. writes each output file (env, json or text) atomically, mode 0600, when
     its contents change, and signals the app or runs a command;
  5. renews at two thirds of the token's life, until stopped.

--once does one round and exits (an init container, a CI step). The
configuration is YAML; see docs/agent.md for an example.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return errors.New("agent: --config FILE is required")
			}
			cfg, err := agent.Load(config)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			ag, err := agent.New(cfg, agent.Options{Log: log, Getenv: a.io.Getenv})
			if err != nil {
				return err
			}
			if once {
				_, err := ag.Once(cmd.Context())
				return err
			}
			return ag.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the agent's YAML configuration `FILE`")
	cmd.Flags().BoolVar(&once, "once", false, "renew and write once, then exit")
	return cmd
}
