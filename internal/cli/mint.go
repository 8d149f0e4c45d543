package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/mint"
	"github.com/keygate/keygate/internal/secret"
)

func (a *app) providerMintCmd() *cobra.Command {
	var (
		kind, project, adminURL, adminKeyEnv, provKeyEnv, baseURL, overlap, rotateEvery string
		models                                                                          []string
		adminKeyStdin                                                                   bool
	)
	cmd := &cobra.Command{
		Use:   "mint NAME [--kind openai|openrouter] (--admin-key-env VAR | --provisioning-key-env VAR | --admin-key-stdin) [--rotate-every 30d]",
		Short: "Register a provider whose key keygate creates, and rotates, with the provider's admin credential",
		Long: `Stores the provider's admin credential in keygate's vault, creates an API key
with it, and registers provider NAME with that key. keygate holds the admin
credential from then on.

  openai      an OpenAI organization admin key; each key is a project service
              account's (--openai-project proj_...)
  openrouter  an OpenRouter provisioning key; each key is an OpenRouter API key

With --rotate-every, keygate serve rotates the key on that schedule; it also
rotates it at once when the key is found leaked (in a request or answer
through the gateway, or in a leak report). Every rotation makes the new key
current at once (requests in flight finish with the old one) and deletes the
old key upstream once --overlap has passed. keygate provider mint-rotate NAME
rotates it now.

  OPENAI_ADMIN_KEY=... keygate provider mint openai --openai-project proj_abc \
      --admin-key-env OPENAI_ADMIN_KEY --models 'gpt-*' --rotate-every 30d
  OPENROUTER_PROVISIONING_KEY=... keygate provider mint openrouter \
      --provisioning-key-env OPENROUTER_PROVISIONING_KEY --rotate-every 7d`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			switch {
			case kind == "" && provKeyEnv != "":
				kind = mint.KindOpenRouter
			case kind == "":
				kind = mint.KindOpenAI
			}
			keyEnv := adminKeyEnv
			if provKeyEnv != "" {
				if adminKeyEnv != "" {
					return errors.New("provider mint: use --admin-key-env or --provisioning-key-env, not both")
				}
				keyEnv = provKeyEnv
			}
			cfg := mint.Config{Kind: kind, OpenAIProject: project, AdminURL: adminURL}
			var err error
			if cfg.Overlap, err = adminapi.ParseDuration(overlap); err != nil {
				return fmt.Errorf("provider mint: --overlap: %w", err)
			}
			if rotateEvery != "" {
				if cfg.RotateEvery, err = adminapi.ParseDuration(rotateEvery); err != nil {
					return fmt.Errorf("provider mint: --rotate-every: %w", err)
				}
			}
			if err := cfg.Check(); err != nil {
				return fmt.Errorf("provider mint: %w", flagNames(err))
			}
			if !cfg.Mints() {
				return fmt.Errorf("provider mint: Anthropic's Admin API creates no keys, so keygate cannot mint them; add the provider with keygate provider add, then give its admin key with keygate provider admin-key %s --kind anthropic", name)
			}
			adminKey, err := a.providerKey(cmd, "provider mint", name, keyEnv, adminKeyStdin)
			if err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.PutSecret(cmd.Context(), mint.AdminKeyName(name), adminKey); err != nil {
				return explain(fmt.Errorf("provider mint %s: store the admin credential: %w", name, err), cred)
			}
			if _, err := c.PutSecret(cmd.Context(), mint.ConfigName(name), cfg.Encode()); err != nil {
				return explain(fmt.Errorf("provider mint %s: %w", name, err), cred)
			}
			minter, err := cfg.Minter(adminKey, nil)
			if err != nil {
				return err
			}
			preset := kind // the openai and openrouter presets serve what these mint
			if err := cfg.Rotator(name, minter, c).Start(cmd.Context(), adminapi.CreateProviderRequest{Preset: preset, BaseURL: baseURL, Models: splitList(models)}); err != nil {
				return explain(fmt.Errorf("provider mint %s: %w", name, err), cred)
			}
			sched := "it is rotated with keygate provider mint-rotate, or when found leaked"
			if cfg.RotateEvery > 0 {
				sched = "keygate serve rotates it every " + rotateEvery + ", and when found leaked"
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Added provider %s with a key minted through the %s admin API; keygate holds the admin credential and the minted key, and shows neither; %s.\n", name, kind, sched)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "whose admin API mints the keys: openai or openrouter (default openai, or openrouter with --provisioning-key-env)")
	f.StringVar(&project, "openai-project", "", "the OpenAI `PROJECT` id (proj_...) to create service accounts in")
	f.StringVar(&adminURL, "openai-admin-url", "", "the OpenAI admin API's base `URL` (default https://api.openai.com)")
	f.StringVar(&adminURL, "key-api-url", "", "the base `URL` of the API that mints the keys (default https://api.openai.com or https://openrouter.ai)")
	f.StringVar(&baseURL, "base-url", "", "the provider's API base `URL` (default the preset's)")
	f.StringArrayVar(&models, "models", nil, "model name `PATTERNS` this provider serves")
	f.StringVar(&overlap, "overlap", "1h", "how long a replaced key keeps working before it is deleted upstream (`DURATION`)")
	f.StringVar(&rotateEvery, "rotate-every", "", "rotate the key on this schedule inside keygate serve (`DURATION`, such as 30d); default only when asked or leaked")
	f.StringVar(&adminKeyEnv, "admin-key-env", "", "name of the environment variable (`VAR`) holding the admin credential")
	f.StringVar(&provKeyEnv, "provisioning-key-env", "", "name of the environment variable (`VAR`) holding an OpenRouter provisioning key")
	f.BoolVar(&adminKeyStdin, "admin-key-stdin", false, "read the admin credential from standard input")
	return cmd
}

// flagNames turns a mint.Config field named in err into its flag.
func flagNames(err error) error {
	r := strings.NewReplacer("openai_project", "--openai-project", "rotate_every", "--rotate-every", "overlap", "--overlap", "kind", "--kind")
	return errors.New(r.Replace(err.Error()))
}

// mintConfig reads provider name's minting configuration and admin
// credential through the admin API.
func mintConfig(cmd *cobra.Command, c *adminclient.Client, what, name string) (mint.Config, secret.String, error) {
	adminKey, _, err := c.SecretValue(cmd.Context(), mint.AdminKeyName(name), 0)
	if err != nil {
		return mint.Config{}, secret.String{}, fmt.Errorf("%s %s: %s holds no admin credential (was it added with keygate provider mint?): %w", what, name, mint.AdminKeyName(name), err)
	}
	raw, _, err := c.SecretValue(cmd.Context(), mint.ConfigName(name), 0)
	if err != nil {
		return mint.Config{}, secret.String{}, fmt.Errorf("%s %s: %w", what, name, err)
	}
	cfg, err := mint.ParseConfig(raw.Reveal())
	if err != nil {
		return mint.Config{}, secret.String{}, fmt.Errorf("%s %s: secret %s: %w", what, name, mint.ConfigName(name), err)
	}
	return cfg, adminKey, nil
}

func (a *app) providerMintRotateCmd() *cobra.Command {
	var dueOnly bool
	cmd := &cobra.Command{
		Use:   "mint-rotate NAME [--due-only]",
		Short: "Rotate a minted provider key now, and delete replaced keys whose overlap has passed",
		Long: `Creates a new key for a provider added with keygate provider mint, makes it
current at once (requests in flight finish with the old key) and deletes
upstream the keys whose overlap has passed. keygate serve does this on the
provider's schedule and when the key is found leaked; run it by hand after an
alert about the key. With --due-only it only does what is due.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			cfg, adminKey, err := mintConfig(cmd, c, "provider mint-rotate", name)
			if err != nil {
				return explain(err, cred)
			}
			minter, err := cfg.Minter(adminKey, nil)
			if err != nil {
				return err
			}
			r := cfg.Rotator(name, minter, c)
			if !dueOnly {
				if err := r.Rotate(cmd.Context()); err != nil {
					return explain(fmt.Errorf("provider mint-rotate %s: %w", name, err), cred)
				}
			}
			if _, err := r.RunDue(cmd.Context()); err != nil {
				return explain(fmt.Errorf("provider mint-rotate %s: %w", name, err), cred)
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Provider %s: done; replaced keys are deleted upstream %s after their rotation.\n", name, r.Overlap)
			return err
		},
	}
	cmd.Flags().BoolVar(&dueOnly, "due-only", false, "do not rotate unless the schedule says so; delete replaced keys whose overlap has passed")
	return cmd
}

func (a *app) providerMintScheduleCmd() *cobra.Command {
	var rotateEvery, overlap string
	cmd := &cobra.Command{
		Use:   "mint-schedule NAME [--rotate-every DURATION|off] [--overlap DURATION]",
		Short: "Change how often keygate serve rotates a minted provider key, and the overlap",
		Long: `Changes the schedule of a provider added with keygate provider mint. keygate
serve follows the change within five minutes. --rotate-every off stops
scheduled rotations (a key found leaked is still rotated at once).

  keygate provider mint-schedule openai --rotate-every 30d --overlap 2h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			if rotateEvery == "" && overlap == "" {
				return errors.New("provider mint-schedule: give --rotate-every, --overlap or both")
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			cfg, _, err := mintConfig(cmd, c, "provider mint-schedule", name)
			if err != nil {
				return explain(err, cred)
			}
			switch rotateEvery {
			case "":
			case "off", "0":
				cfg.RotateEvery = 0
			default:
				if cfg.RotateEvery, err = adminapi.ParseDuration(rotateEvery); err != nil {
					return fmt.Errorf("provider mint-schedule: --rotate-every: %w", err)
				}
			}
			if overlap != "" {
				if cfg.Overlap, err = adminapi.ParseDuration(overlap); err != nil {
					return fmt.Errorf("provider mint-schedule: --overlap: %w", err)
				}
			}
			if err := cfg.Check(); err != nil {
				return fmt.Errorf("provider mint-schedule: %w", flagNames(err))
			}
			if _, err := c.PutSecret(cmd.Context(), mint.ConfigName(name), cfg.Encode()); err != nil {
				return explain(fmt.Errorf("provider mint-schedule %s: %w", name, err), cred)
			}
			every := "only when asked or found leaked"
			if cfg.RotateEvery > 0 {
				every = "every " + cfg.RotateEvery.String()
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Provider %s: rotated %s; a replaced key is deleted upstream %s after its rotation.\n", name, every, orOverlap(cfg.Overlap))
			return err
		},
	}
	cmd.Flags().StringVar(&rotateEvery, "rotate-every", "", "rotate the key on this schedule (`DURATION`, such as 30d), or off")
	cmd.Flags().StringVar(&overlap, "overlap", "", "how long a replaced key keeps working (`DURATION`)")
	return cmd
}

func orOverlap(d time.Duration) time.Duration {
	if d <= 0 {
		return mint.DefaultOverlap
	}
	return d
}

func (a *app) providerAdminKeyCmd() *cobra.Command {
	var kind, adminKeyEnv, apiURL string
	var adminKeyStdin bool
	cmd := &cobra.Command{
		Use:   "admin-key NAME --kind anthropic (--admin-key-env VAR | --admin-key-stdin)",
		Short: "Give keygate a provider's admin credential, so it disables the provider's key when the key leaks",
		Long: `Stores an Anthropic Admin API key (sk-ant-admin...) for provider NAME, added
with keygate provider add. Anthropic's Admin API lists and disables API keys but
creates none, so keygate cannot mint or rotate an Anthropic key. With the admin
key, when keygate finds the provider's key leaked (in a request or an answer
through the gateway, or in a leak report), keygate serve disables that key at
Anthropic at once and raises an alert: the provider's calls then fail until you
make a new key in the Claude Console and give it with keygate provider rotate.

  ANTHROPIC_ADMIN_KEY=... keygate provider admin-key anthropic --kind anthropic --admin-key-env ANTHROPIC_ADMIN_KEY`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			if kind != mint.KindAnthropic {
				return fmt.Errorf("provider admin-key: --kind %q: only anthropic is taken here; OpenAI and OpenRouter keys are minted with keygate provider mint", kind)
			}
			cfg := mint.Config{Kind: kind, AdminURL: apiURL}
			adminKey, err := a.providerKey(cmd, "provider admin-key", name, adminKeyEnv, adminKeyStdin)
			if err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.GetProvider(cmd.Context(), name); err != nil {
				return explain(fmt.Errorf("provider admin-key %s: add the provider first (keygate provider add %s --preset anthropic ...): %w", name, name, err), cred)
			}
			if _, err := c.PutSecret(cmd.Context(), mint.AdminKeyName(name), adminKey); err != nil {
				return explain(fmt.Errorf("provider admin-key %s: store the admin key: %w", name, err), cred)
			}
			if _, err := c.PutSecret(cmd.Context(), mint.ConfigName(name), cfg.Encode()); err != nil {
				return explain(fmt.Errorf("provider admin-key %s: %w", name, err), cred)
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Provider %s: keygate holds its Anthropic admin key, and disables the provider's key at Anthropic when it finds it leaked.\n", name)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "whose admin API: anthropic")
	f.StringVar(&adminKeyEnv, "admin-key-env", "", "name of the environment variable (`VAR`) holding the admin key")
	f.BoolVar(&adminKeyStdin, "admin-key-stdin", false, "read the admin key from standard input")
	f.StringVar(&apiURL, "key-api-url", "", "the Admin API's base `URL` (default https://api.anthropic.com)")
	return cmd
}
