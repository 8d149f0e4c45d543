package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/mint"
	"github.com/keygate/keygate/internal/secret"
)

// mintAdminKey names the vault secret holding a minted provider's admin
// key: keygate holds it, so later rotations need no key on the command line.
func mintAdminKey(provider string) string { return "mint/" + provider + "/admin-key" }

func (a *app) providerMintCmd() *cobra.Command {
	var (
		project, adminURL, adminKeyEnv, baseURL, overlap string
		models                                           []string
		adminKeyStdin                                    bool
	)
	cmd := &cobra.Command{
		Use:   "mint NAME --openai-project PROJ (--admin-key-env VAR | --admin-key-stdin) [--models P]",
		Short: "Register an OpenAI provider whose key keygate creates with an organization admin key",
		Long: `Stores an OpenAI organization admin key in keygate's vault, creates a project
service account with it, and registers provider NAME with that account's key.
keygate holds the admin key from then on: keygate provider mint-rotate NAME
creates a new service account, makes its key current at once (requests in
flight finish with the old one), and deletes the old account upstream once
--overlap has passed.

  OPENAI_ADMIN_KEY=... keygate provider mint openai --openai-project proj_abc \
      --admin-key-env OPENAI_ADMIN_KEY --models 'gpt-*'
  keygate provider mint-rotate openai`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			if project == "" {
				return errors.New("provider mint: --openai-project is required: the OpenAI project (proj_...) the service accounts belong to")
			}
			adminKey, err := a.providerKey(cmd, "provider mint", name, adminKeyEnv, adminKeyStdin)
			if err != nil {
				return err
			}
			ov, err := adminapi.ParseDuration(overlap)
			if err != nil {
				return fmt.Errorf("provider mint: --overlap: %w", err)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.PutSecret(cmd.Context(), mintAdminKey(name), adminKey); err != nil {
				return explain(fmt.Errorf("provider mint %s: store the admin key: %w", name, err), cred)
			}
			if _, err := c.PutSecret(cmd.Context(), "mint/"+name+"/config", secret.New(project+"\n"+adminURL+"\n"+ov.String())); err != nil {
				return explain(fmt.Errorf("provider mint %s: %w", name, err), cred)
			}
			r := &mint.Rotator{Provider: name, Minter: &mint.OpenAI{BaseURL: adminURL, AdminKey: adminKey, Project: project}, Admin: c, Overlap: ov}
			if err := r.Start(cmd.Context(), adminapi.CreateProviderRequest{Preset: "openai", BaseURL: baseURL, Models: splitList(models)}); err != nil {
				return explain(fmt.Errorf("provider mint %s: %w", name, err), cred)
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Added provider %s with a key minted in project %s; keygate holds the admin key and the minted key, and shows neither.\n", name, project)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&project, "openai-project", "", "the OpenAI `PROJECT` id (proj_...) to create service accounts in")
	f.StringVar(&adminURL, "openai-admin-url", "", "the OpenAI admin API `URL` (default https://api.openai.com)")
	f.StringVar(&baseURL, "base-url", "", "the provider's API base `URL` (default the openai preset's)")
	f.StringArrayVar(&models, "models", nil, "model name `PATTERNS` this provider serves")
	f.StringVar(&overlap, "overlap", "1h", "how long a replaced key keeps working before its service account is deleted (`DURATION`)")
	f.StringVar(&adminKeyEnv, "admin-key-env", "", "name of the environment variable (`VAR`) holding the OpenAI admin key")
	f.BoolVar(&adminKeyStdin, "admin-key-stdin", false, "read the OpenAI admin key from standard input")
	return cmd
}

func (a *app) providerMintRotateCmd() *cobra.Command {
	var dueOnly bool
	cmd := &cobra.Command{
		Use:   "mint-rotate NAME [--due-only]",
		Short: "Rotate a minted provider key now, and delete replaced keys whose overlap has passed",
		Long: `Creates a new service account for a provider added with keygate provider mint,
makes its key current at once (requests in flight finish with the old key) and
deletes upstream the accounts whose overlap has passed. Run it after a leak
report or an alert about the key; with --due-only it only deletes what is due,
for a schedule (cron).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			adminKey, _, err := c.SecretValue(cmd.Context(), mintAdminKey(name), 0)
			if err != nil {
				return explain(fmt.Errorf("provider mint-rotate %s: %s holds no admin key (was it added with keygate provider mint?): %w", name, mintAdminKey(name), err), cred)
			}
			conf, _, err := c.SecretValue(cmd.Context(), "mint/"+name+"/config", 0)
			if err != nil {
				return explain(fmt.Errorf("provider mint-rotate %s: %w", name, err), cred)
			}
			parts := strings.SplitN(conf.Reveal(), "\n", 3)
			if len(parts) != 3 {
				return fmt.Errorf("provider mint-rotate %s: mint/%s/config is not minting configuration", name, name)
			}
			ov, err := time.ParseDuration(parts[2])
			if err != nil {
				return fmt.Errorf("provider mint-rotate %s: mint/%s/config: %w", name, name, err)
			}
			r := &mint.Rotator{Provider: name, Minter: &mint.OpenAI{BaseURL: parts[1], AdminKey: adminKey, Project: parts[0]}, Admin: c, Overlap: ov}
			if !dueOnly {
				if err := r.Rotate(cmd.Context()); err != nil {
					return explain(fmt.Errorf("provider mint-rotate %s: %w", name, err), cred)
				}
			}
			if err := r.RunDue(cmd.Context()); err != nil {
				return explain(fmt.Errorf("provider mint-rotate %s: %w", name, err), cred)
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Provider %s: done; replaced keys are deleted upstream %s after their rotation.\n", name, ov)
			return err
		},
	}
	cmd.Flags().BoolVar(&dueOnly, "due-only", false, "do not rotate; only delete replaced keys whose overlap has passed")
	return cmd
}
