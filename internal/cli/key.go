package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) keyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage keygate API keys, the keys your applications use",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.keyCreateCmd(), a.keyListCmd(), a.keyShowCmd(), a.keyUpdateCmd(), a.keyUsageCmd(), a.keyRevokeCmd())
	return cmd
}

func (a *app) keyCreateCmd() *cobra.Command {
	var (
		name, env, expires, group string
		models, providers         []string
		lf                        *limitFlags
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME [limit flags] [--group NAME]",
		Short: "Create a keygate API key and print it once",
		Long: `Creates a keygate API key and prints it once on standard output. keygate
stores only a hash of it, so copy it now: it cannot be shown again.

The limit flags cap what the key may consume; without them it is unlimited.
A key in a group (--group) must also stay within the group's limits.

  keygate key create --name ci --allow-model 'gpt-4o*' --expires 30d
  export OPENAI_API_KEY=$(keygate key create --name laptop --allow-provider openai)
  keygate key create --name ci-bot --rpm 60 --tpm 200000 --concurrency 4 \
      --quota 5000/day --budget 20usd/month --group team-a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name = strings.TrimSpace(name)
			if name == "" {
				return errors.New("key create: --name is required, as in --name ci-pipeline")
			}
			if expires != "" {
				if _, err := adminapi.ParseDuration(expires); err != nil {
					return fmt.Errorf("key create: --expires: %w", err)
				}
			}
			group = strings.TrimSpace(group)
			if cmd.Flags().Changed("group") {
				if err := checkGroupName("key create: --group", group); err != nil {
					return err
				}
			}
			edit, err := lf.edit("key create")
			if err != nil {
				return err
			}
			limits := edit.apply(adminapi.Limits{})
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			created, err := c.CreateKey(cmd.Context(), adminapi.CreateKeyRequest{
				Name:           name,
				Env:            strings.TrimSpace(env),
				AllowModels:    splitList(models),
				AllowProviders: splitList(providers),
				ExpiresIn:      strings.TrimSpace(expires),
				Limits:         limits,
				Group:          group,
			})
			if err != nil {
				return explain(groupHint(fmt.Errorf("key create %s: %w", name, err), group), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				err = writeJSON(out, created)
			} else {
				_, err = fmt.Fprintln(out, created.Secret)
			}
			if err != nil {
				return err
			}
			k := created.Key
			fmt.Fprintf(cmd.ErrOrStderr(), "Created key %s (%s, expires: %s). This is the only time keygate shows it: copy it now.\n",
				k.Name, k.ID, fmtTimePtr(k.ExpiresAt, "never"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "a unique `NAME` for the key (required)")
	f.StringVar(&env, "env", "", "environment `TAG` shown in the key's prefix, as in kg_live_ (default \"live\")")
	f.StringArrayVar(&models, "allow-model", nil, "model name `PATTERN` the key may use; repeat or separate with commas (default: any model)")
	f.StringArrayVar(&providers, "allow-provider", nil, "provider `NAME` the key may use; repeat or separate with commas (default: any provider)")
	f.StringVar(&expires, "expires", "", "`DURATION` the key lives, as in 30d, 12h or 1d12h (default: never expires)")
	f.StringVar(&group, "group", "", "put the key in the group `NAME`, whose limits it then shares too")
	lf = addLimitFlags(cmd, false)
	return cmd
}

func (a *app) keyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List keygate API keys (never their secrets)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			keys, err := c.ListKeys(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("key list: %w", err), cred)
			}
			if keys == nil {
				keys = []adminapi.Key{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.KeyList{Keys: keys})
			}
			if len(keys) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "No keys yet. Create one with `keygate key create --name NAME`.")
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tNAME\tENV\tPREFIX\tSTATUS\tEXPIRES\tLAST-USED\tGROUP\tLIMITS")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Env, k.Prefix, k.Status,
					fmtTimePtr(k.ExpiresAt, "never"), fmtTimePtr(k.LastUsedAt, "never"), orDash(k.Group), fmtLimits(k.Limits, "-"))
			}
			return tw.Flush()
		},
	}
}

func (a *app) keyShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show REF",
		Short: "Show one keygate API key by id or name (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.GetKey(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("key show %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), k)
			}
			return printKey(cmd.OutOrStdout(), k)
		},
	}
}

func (a *app) keyRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke REF",
		Short: "Revoke a keygate API key by id or name; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.RevokeKey(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("key revoke %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), k)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Revoked key %s (%s) at %s.\n", k.Name, k.ID, fmtTimePtr(k.RevokedAt, "-"))
			return err
		},
	}
}

func printKey(w io.Writer, k adminapi.Key) error {
	return fields(w, [][2]string{
		{"ID", k.ID},
		{"Name", k.Name},
		{"Env", k.Env},
		{"Prefix", k.Prefix},
		{"Status", k.Status},
		{"Allowed models", list(k.AllowModels, "any")},
		{"Allowed providers", list(k.AllowProviders, "any")},
		{"Group", orDash(k.Group)},
		{"Limits", fmtLimits(k.Limits, "none")},
		{"Created", fmtTime(k.CreatedAt)},
		{"Expires", fmtTimePtr(k.ExpiresAt, "never")},
		{"Revoked", fmtTimePtr(k.RevokedAt, "-")},
		{"Last used", fmtTimePtr(k.LastUsedAt, "never")},
	})
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
