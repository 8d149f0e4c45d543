package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/secret"
)

// apiKeyFlagMsg is the answer to --api-key. It never repeats the value given.
const apiKeyFlagMsg = ("--api-key is not accepted: a key typed on the command line lands in shell history and process listings.\n" +
	"Pass the provider's key with --api-key-env VAR (the name of an environment variable that holds it)\n" +
	"or --api-key-stdin (read from standard input). If you typed a real key, remove it from your shell history")

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

func (a *app) providerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "provider",
		Short: "Manage upstream providers and their real API keys",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.providerAddCmd(), a.providerPresetsCmd(), a.providerListCmd(), a.providerShowCmd(), a.providerRotateCmd(), a.providerRemoveCmd(), a.providerMintCmd(), a.providerMintRotateCmd(), a.providerMintScheduleCmd(), a.providerAdminKeyCmd())
	return cmd
}

func (a *app) providerAddCmd() *cobra.Command {
	var (
		baseURL, dialect, keyEnv, env string
		preset, apiVersion            string
		ref, refRefresh, refGrace     string
		credFile                      string
		models                        []string
		isDefault, keyStdin           bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME (--base-url URL | --preset NAME) (--api-key-env VAR | --api-key-stdin | --api-key-ref REF | --credential-file FILE) [--env TAG]",
		Short: "Register an upstream provider and its API key",
		Long: `Registers an upstream provider. keygate stores its API key encrypted and
never shows it again. The key is read from an environment variable or from
standard input, never from a flag value that would land in shell history.

With --env, only keygate keys of that environment (created with
"keygate key create --env TAG", their secrets starting kg_<TAG>_) may use
the provider, so a test key can never reach a production account.

  OPENAI_API_KEY=... keygate provider add openai --base-url https://api.openai.com/v1 \
      --models 'gpt-*,o3*' --default --api-key-env OPENAI_API_KEY
  keygate provider add anthropic --base-url https://api.anthropic.com --api-key-stdin < key.txt
  GEMINI_API_KEY=... keygate provider add google --dialect gemini \
      --base-url https://generativelanguage.googleapis.com --models 'gemini-*' --api-key-env GEMINI_API_KEY
  PROD_KEY=... keygate provider add openai-prod --base-url https://api.openai.com/v1 \
      --api-key-env PROD_KEY --env prod

A preset fills in a known service's base URL, API dialect, auth header and
paths (keygate provider presets lists them):

  GROQ_API_KEY=... keygate provider add groq --preset groq --models 'llama-*' --api-key-env GROQ_API_KEY
  AZURE_KEY=... keygate provider add azure --preset azure-openai \
      --base-url https://RESOURCE.openai.azure.com --api-version 2024-10-21 --api-key-env AZURE_KEY

With azure-openai, the model a request routes to is the deployment name.

With --api-key-ref the key stays in its source and keygate follows it (read
now with keygate's own identity, re-read every --ref-refresh, the last value
read served for --ref-grace once the source fails, then refused):

  keygate provider add openai --preset openai --api-key-ref awssm://prod/openai
  keygate provider add anthropic --preset anthropic --api-key-ref vault://kv/ai/anthropic#key

Cloud-identity presets (bedrock, vertex, vertex-openai, azure-openai-entra)
take a credential document instead of a key: a JSON file with its "kind"
(keygate provider presets shows them), sealed in the vault like any key:

  keygate provider add bedrock --preset bedrock \
      --base-url https://bedrock-runtime.us-east-1.amazonaws.com --credential-file bedrock.json`,
		Args: refuseAPIKeyFlag(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			if name == "" {
				return errors.New("provider add: the provider name is empty")
			}
			if strings.TrimSpace(baseURL) == "" && preset == "" {
				return errors.New("provider add: --base-url is required, as in --base-url https://api.openai.com/v1, unless a --preset gives it")
			}
			if u, err := url.Parse(baseURL); baseURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
				return errors.New("provider add: --base-url must be an http:// or https:// URL, as in https://api.openai.com/v1")
			}
			switch dialect {
			case "", "openai", "anthropic", "gemini":
			default:
				return fmt.Errorf("provider add: --dialect %q is not known: use openai, anthropic or gemini", dialect)
			}
			env = strings.TrimSpace(env)
			if cmd.Flags().Changed("env") {
				if err := checkEnv("provider add "+name, "--env", env); err != nil {
					return err
				}
			}
			var key secret.String
			switch {
			case ref != "" || credFile != "":
				if ref != "" && credFile != "" || keyEnv != "" || keyStdin {
					return errors.New("provider add: give one of --api-key-env, --api-key-stdin, --api-key-ref and --credential-file")
				}
				if credFile != "" {
					b, err := os.ReadFile(credFile)
					if err != nil {
						return fmt.Errorf("provider add: --credential-file: %w", err)
					}
					key = secret.New(strings.TrimSpace(string(b)))
					clear(b)
				}
			case refRefresh != "" || refGrace != "":
				return errors.New("provider add: --ref-refresh and --ref-grace go with --api-key-ref")
			default:
				var err error
				if key, err = a.providerKey(cmd, "provider add", name, keyEnv, keyStdin); err != nil {
					return err
				}
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			p, err := c.CreateProvider(cmd.Context(), adminapi.CreateProviderRequest{
				Name:    name,
				Dialect: dialect,
				BaseURL: strings.TrimSpace(baseURL),
				Models:  splitList(models),
				Default: isDefault,
				APIKey:  key.Reveal(),
				Env:     env,
				Preset:  strings.TrimSpace(preset), APIVersion: strings.TrimSpace(apiVersion),
				APIKeyRef: strings.TrimSpace(ref), RefRefresh: refRefresh, RefGrace: refGrace,
			})
			if err != nil {
				return explain(fmt.Errorf("provider add %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			if p.Source != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "Added provider %s; its key stays in %s, read now and followed every %s, and will not be shown.\n", p.Name, p.Source.Ref, p.Source.Refresh)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "Added provider %s; its API key is stored encrypted and will not be shown.\n", p.Name)
			}
			return printProvider(cmd.OutOrStdout(), p)
		},
	}
	f := cmd.Flags()
	f.StringVar(&baseURL, "base-url", "", "the provider's API base `URL`, as its own SDK takes it (required unless --preset gives it)")
	f.StringVar(&preset, "preset", "", "a known service's settings: `NAME` from keygate provider presets, such as groq, gemini or azure-openai")
	f.StringVar(&apiVersion, "api-version", "", "the api-version `VERSION` to send (azure-openai; default "+provider.AzureAPIVersion+")")
	f.StringVar(&dialect, "dialect", "", "wire `DIALECT`: openai, anthropic or gemini (Gemini's native API) (default: anthropic for a provider named anthropic, else openai)")
	f.StringArrayVar(&models, "models", nil, "model name `PATTERNS` this provider serves, comma-separated or repeated ('gpt-*,o3*')")
	f.BoolVar(&isDefault, "default", false, "make this the default provider for its dialect")
	f.StringVar(&env, "env", "", "environment `TAG`, as in prod: only keys created with --env TAG may use this provider (default: keys of any environment)")
	f.StringVar(&credFile, "credential-file", "", "a cloud-identity preset's credential document (JSON `FILE`), sealed in the vault")
	apiKeyFlags(cmd, &keyEnv, &keyStdin)
	refFlags(cmd, "api-key-ref", &ref, &refRefresh, &refGrace, "the API key")
	return cmd
}

// refuseAPIKeyFlag checks a command's arguments after refusing --api-key, so
// the advice wins over any other error.
func refuseAPIKeyFlag(args cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if cmd.Flags().Changed("api-key") {
			return errors.New(apiKeyFlagMsg)
		}
		return args(cmd, a)
	}
}

// apiKeyFlags adds --api-key-env, --api-key-stdin and the hidden, refused --api-key.
func apiKeyFlags(cmd *cobra.Command, keyEnv *string, keyStdin *bool) {
	var keyFlag string
	f := cmd.Flags()
	f.StringVar(keyEnv, "api-key-env", "", "name of the environment variable (`VAR`) holding the provider's API key")
	f.BoolVar(keyStdin, "api-key-stdin", false, "read the provider's API key from standard input")
	f.StringVar(&keyFlag, "api-key", "", "not accepted: use --api-key-env or --api-key-stdin")
	_ = f.MarkHidden("api-key")
}

// providerKey reads the provider's API key from the environment variable
// named keyEnv or from stdin, and never from a flag value. what names the
// command in errors, as in "provider add".
func (a *app) providerKey(cmd *cobra.Command, what, name, keyEnv string, keyStdin bool) (secret.String, error) {
	switch {
	case keyEnv != "" && keyStdin:
		return secret.String{}, fmt.Errorf("%s: use either --api-key-env or --api-key-stdin, not both", what)
	case keyEnv != "":
		if !validEnvName(keyEnv) {
			// Not echoed: a key pasted here by mistake must not reach the terminal or logs.
			return secret.String{}, fmt.Errorf("%s: --api-key-env takes the NAME of an environment variable that holds the key (like OPENAI_API_KEY), not the key itself", what)
		}
		key := strings.TrimSpace(a.io.Getenv(keyEnv))
		if key == "" {
			return secret.String{}, fmt.Errorf("%s: environment variable %s is empty or not set: export the provider's API key in %s, or use --api-key-stdin", what, keyEnv, keyEnv)
		}
		return secret.New(key), nil
	case keyStdin:
		key, err := readSecret(cmd.InOrStdin(), cmd.ErrOrStderr(), "API key for provider "+name+": ", true)
		if err != nil {
			return secret.String{}, fmt.Errorf("%s: %w", what, err)
		}
		if key.IsZero() {
			return secret.String{}, fmt.Errorf("%s: the API key read from standard input is empty: pipe the key in, as in `keygate %s NAME ... --api-key-stdin < key.txt`", what, what)
		}
		return key, nil
	default:
		return secret.String{}, fmt.Errorf("%s: the provider's API key is required: pass --api-key-env VAR (an environment variable that holds it) or --api-key-stdin", what)
	}
}

func (a *app) providerRotateCmd() *cobra.Command {
	var (
		keyEnv, grace string
		keyStdin      bool
	)
	cmd := &cobra.Command{
		Use:   "rotate NAME (--api-key-env VAR | --api-key-stdin) [--grace 24h]",
		Short: "Replace a provider's API key, keeping the previous one for a grace period",
		Long: `Replaces the upstream API key of a provider. New requests use the new key at
once; requests already in flight finish with the previous key, which keygate
keeps for the grace period (24h by default) and then destroys. Revoke the
previous key at the provider once the grace period is over.

  NEW_KEY=... keygate provider rotate openai --api-key-env NEW_KEY
  keygate provider rotate anthropic --api-key-stdin --grace 1h < new-key.txt`,
		Args: refuseAPIKeyFlag(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			if name == "" {
				return errors.New("provider rotate: the provider name is empty")
			}
			if _, err := adminapi.ParseDuration(grace); err != nil {
				return fmt.Errorf("provider rotate: --grace: %w", err)
			}
			key, err := a.providerKey(cmd, "provider rotate", name, keyEnv, keyStdin)
			if err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			rot, err := c.RotateProvider(cmd.Context(), name, key, strings.TrimSpace(grace))
			if err != nil {
				return explain(fmt.Errorf("provider rotate %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), rot)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(),
				"Rotated the API key of provider %s: version %d is now in use.\n"+
					"The previous key (version %d) serves requests already in flight and is destroyed at %s.\n",
				rot.Provider.Name, rot.Version, rot.PreviousVersion, fmtTime(rot.PreviousDestroyAt))
			return err
		},
	}
	apiKeyFlags(cmd, &keyEnv, &keyStdin)
	cmd.Flags().StringVar(&grace, "grace", "24h", "`DURATION` the previous key is kept before it is destroyed, as in 1h or 7d")
	return cmd
}

func (a *app) providerListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List providers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			ps, err := c.ListProviders(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("provider list: %w", err), cred)
			}
			if ps == nil {
				ps = []adminapi.Provider{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.ProviderList{Providers: ps})
			}
			if len(ps) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "No providers yet. Add one with `keygate provider add NAME --base-url URL --api-key-env VAR`.")
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tDIALECT\tBASE-URL\tMODELS\tDEFAULT\tENV\tCREATED")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Dialect, p.BaseURL,
					list(p.Models, "-"), yesNo(p.Default), orAny(p.Env), fmtTime(p.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

func (a *app) providerShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show one provider (never its key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			p, err := c.GetProvider(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("provider show %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			return printProvider(cmd.OutOrStdout(), p)
		},
	}
}

func (a *app) providerRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a provider and its stored API key",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteProvider(cmd.Context(), args[0]); err != nil {
				return explain(fmt.Errorf("provider remove %s: %w", args[0], err), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				out = cmd.ErrOrStderr() // with --json, stdout carries only JSON
			}
			_, err = fmt.Fprintf(out, "Removed provider %s.\n", args[0])
			return err
		},
	}
}

func printProvider(w io.Writer, p adminapi.Provider) error {
	rows := [][2]string{{"ID", p.ID}, {"Name", p.Name}, {"Dialect", p.Dialect}}
	if p.Preset != "" {
		rows = append(rows, [2]string{"Preset", p.Preset})
	}
	if p.APIVersion != "" {
		rows = append(rows, [2]string{"API version", p.APIVersion})
	}
	if src := p.Source; src != nil {
		rows = append(rows, [2]string{"Key source", src.Ref + " (" + src.State + ", refresh " + src.Refresh + ", grace " + src.Grace + ")"})
	}
	return fields(w, append(rows, [][2]string{
		{"Base URL", p.BaseURL},
		{"Models", list(p.Models, "-")},
		{"Default", yesNo(p.Default)},
		{"Env", orAny(p.Env)},
		{"Created", fmtTime(p.CreatedAt)},
	}...))
}

// orAny returns a provider's environment, or "any" when keys of every
// environment may use it.
func orAny(env string) string {
	if env == "" {
		return "any"
	}
	return env
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *app) providerPresetsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "presets",
		Short: "List the known services a provider can be added with (--preset)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps := provider.Presets()
			if a.json {
				return writeJSON(cmd.OutOrStdout(), ps)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRESET\tDIALECT\tBASE URL\tAUTH")
			for _, p := range ps {
				base := p.BaseURL
				if base == "" {
					base = "(yours, such as " + p.BaseURLExample + ")"
				}
				auth := p.AuthHeader
				if p.KeyOptional {
					auth += " (optional)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Dialect, base, auth)
			}
			for _, p := range cloudauth.Presets() {
				fmt.Fprintf(tw, "%s\t%s\t(yours, such as %s)\tcloud identity: --credential-file with {\"kind\":%q,...}\n", p.Name, p.Dialect, p.BaseURLExample, p.Kind)
			}
			return tw.Flush()
		},
	}
}
