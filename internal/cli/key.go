package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
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
	cmd.AddCommand(a.keyCreateCmd(), a.keyListCmd(), a.keyShowCmd(), a.keyUpdateCmd(), a.keyUsageCmd(),
		a.keySuspendCmd(), a.keyResumeCmd(), a.keyRotateCmd(), a.keyAWSCredentialsCmd(), a.keyRevokeCmd(), a.keyTOTPCmd(), a.keyReportLeakCmd())
	return cmd
}

func (a *app) keyCreateCmd() *cobra.Command {
	var (
		name, env, expires, group, team string
		models, providers               []string
		lf                              *limitFlags
		sf                              *scopeFlags
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME [--env TAG] [scope flags] [limit flags] [--group NAME]",
		Short: "Create a keygate API key and print it once",
		Long: `Creates a keygate API key and prints it once on standard output. keygate
stores only a hash of it, so copy it now: it cannot be shown again.

The key's secret starts with kg_<env>_ (kg_live_ by default); a provider
added with --env accepts only keys of the same environment.

The scope flags restrict which requests the key may make: the paths it may
call (--allow-path), the networks it may be used from (--allow-ip) and the
hours in which it works (--hours). Without them it may call any path, from
anywhere, at any time.

Passthrough services (/proxy/NAME/...) are the exception: a key reaches
none of them unless --allow-service names it, since a service's credential
(a GitHub or Stripe token) is often worth far more than a model key.

The limit flags cap what the key may consume; without them it is unlimited.
A key in a group (--group) must also stay within the group's limits.

  keygate key create --name ci --allow-model 'gpt-4o*' --expires 30d
  export OPENAI_API_KEY=$(keygate key create --name laptop --allow-provider openai)
  keygate key create --name etl --allow-provider openai --allow-model 'text-embedding-*' \
      --allow-path 'POST /v1/embeddings' --allow-ip 10.0.0.0/8 --allow-ip 2001:db8::/32 \
      --hours 'mon-fri 08:00-20:00 Europe/Berlin' --env prod
  keygate key create --name ci-bot --rpm 60 --tpm 200000 --concurrency 4 \
      --quota 5000/day --budget 20usd/month --group team-a
  keygate key create --name deploy-bot --allow-model 'gpt-4o*' --allow-service github`,
		Args: scopeArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name = strings.TrimSpace(name)
			if name == "" {
				return errors.New("key create: --name is required, as in --name ci-pipeline")
			}
			what := "key create " + name
			env = strings.TrimSpace(env)
			if cmd.Flags().Changed("env") {
				if err := checkEnv(what, "--env", env); err != nil {
					return err
				}
			}
			if expires != "" {
				if _, err := adminapi.ParseDuration(expires); err != nil {
					return fmt.Errorf("%s: --expires: %w", what, err)
				}
			}
			scopes, err := sf.edit(what)
			if err != nil {
				return err
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
			req := adminapi.CreateKeyRequest{
				Name:           name,
				Env:            env,
				AllowModels:    splitList(models),
				AllowProviders: splitList(providers),
				ExpiresIn:      strings.TrimSpace(expires),
				Limits:         limits,
				Group:          group,
				Team:           strings.TrimSpace(team),
			}
			scopes.toCreate(&req)
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			created, err := c.CreateKey(cmd.Context(), req)
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
			if k.Team != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "It belongs to team %s and shares the team's limits (group %s).\n", k.Team, k.Group)
			}
			if len(k.AllowServices) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "It reaches no passthrough service (/proxy/...); grant one with --allow-service NAME.")
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "It may call the passthrough services: %s.\n", strings.Join(k.AllowServices, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "a unique `NAME` for the key (required)")
	f.StringVar(&env, "env", "", "environment `TAG` of the key, as in prod: its secret starts kg_<TAG>_, and providers added with --env TAG accept it (default \"live\")")
	f.StringArrayVar(&models, "allow-model", nil, "model name `PATTERN` the key may use; repeat or separate with commas (default: any model)")
	f.StringArrayVar(&providers, "allow-provider", nil, "provider `NAME` the key may use; repeat or separate with commas (default: any provider)")
	f.StringVar(&expires, "expires", "", "`DURATION` the key lives, as in 30d, 12h or 1d12h (default: never expires)")
	f.StringVar(&group, "group", "", "put the key in the group `NAME`, whose limits it then shares too")
	f.StringVar(&team, "team", "", "make the key a key of `TEAM`: it shares the team's limits and, below admin, follows its policy (default: your team, if you have exactly one)")
	sf = addScopeFlags(cmd, false)
	lf = addLimitFlags(cmd, false)
	return cmd
}

func (a *app) keyListCmd() *cobra.Command {
	var unused string
	cmd := &cobra.Command{
		Use:     "list [--unused DURATION]",
		Aliases: []string{"ls"},
		Short:   "List keygate API keys (never their secrets)",
		Long: `Lists keygate API keys, never their secrets.

With --unused, lists only the stale keys: live keys that have not been used
for at least that long, either never used since they were created that long
ago or last used before then. Revoke or suspend the ones nobody needs.

  keygate key list
  keygate key list --unused 30d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			report := cmd.Flags().Changed("unused")
			unused = strings.TrimSpace(unused)
			if report {
				if _, err := adminapi.ParseDuration(unused); err != nil {
					return fmt.Errorf("key list: --unused: %w", err)
				}
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			var keys []adminapi.Key
			if report {
				keys, err = c.ListKeysUnused(cmd.Context(), unused)
			} else {
				keys, err = c.ListKeys(cmd.Context())
			}
			if err != nil {
				return explain(fmt.Errorf("key list: %w", err), cred)
			}
			if keys == nil {
				keys = []adminapi.Key{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.KeyList{Keys: keys})
			}
			if report {
				return printStaleKeys(cmd.OutOrStdout(), cmd.ErrOrStderr(), keys, unused)
			}
			if len(keys) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "No keys yet. Create one with `keygate key create --name NAME`.")
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tNAME\tENV\tPREFIX\tSTATUS\tEXPIRES\tLAST-USED\tGROUP\tLIMITS\tPATHS\tIPS\tHOURS")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Env, k.Prefix, keyStatus(k),
					fmtTimePtr(k.ExpiresAt, "never"), fmtTimePtr(k.LastUsedAt, "never"), orDash(k.Group), fmtLimits(k.Limits, "-"),
					list(k.AllowPaths, "any"), list(k.AllowIPs, "any"), fmtHours(k.Hours, "any"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&unused, "unused", "", "list only live keys not used for at least `DURATION`, as in 30d or 12h")
	return cmd
}

// printStaleKeys prints the keys of `key list --unused d` on w, with advice
// on what to do about them on notes.
func printStaleKeys(w, notes io.Writer, keys []adminapi.Key, d string) error {
	if len(keys) == 0 {
		_, err := fmt.Fprintf(w, "No live key has gone unused for %s.\n", d)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tENV\tPREFIX\tSTATUS\tCREATED\tLAST-USED\tEXPIRES\tGROUP")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Env, k.Prefix, keyStatus(k),
			fmtTime(k.CreatedAt), fmtTimePtr(k.LastUsedAt, "never"), fmtTimePtr(k.ExpiresAt, "never"), orDash(k.Group))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(notes, "%d %s unused for %s or more. Revoke those nobody needs with `keygate key revoke REF`, or suspend them first with `keygate key suspend REF` to see who complains.\n",
		len(keys), plural(len(keys), "key", "keys"), d)
	return nil
}

// plural returns one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
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
	pairs := [][2]string{
		{"ID", k.ID},
		{"Name", k.Name},
		{"Env", k.Env},
		{"Prefix", k.Prefix},
		{"Status", keyStatus(k)},
		{"Allowed models", list(k.AllowModels, "any")},
		{"Allowed providers", list(k.AllowProviders, "any")},
		{"Allowed services", list(k.AllowServices, "none (passthrough refused)")},
		{"Allowed paths", list(k.AllowPaths, "any")},
		{"Allowed IPs", list(k.AllowIPs, "any")},
		{"Hours", fmtHours(k.Hours, "any time")},
		{"Group", orDash(k.Group)},
		{"Limits", fmtLimits(k.Limits, "none")},
		{"Created", fmtTime(k.CreatedAt)},
		{"Expires", fmtTimePtr(k.ExpiresAt, "never")},
		{"Suspended", fmtTimePtr(k.SuspendedAt, "-")},
		{"Revoked", fmtTimePtr(k.RevokedAt, "-")},
		{"Last used", fmtTimePtr(k.LastUsedAt, "never")},
		{"Rotated from", orDash(k.RotatedFrom)},
	}
	if k.LeakAction != "" {
		pairs = append(pairs, [2]string{"Leak action", k.LeakAction + " (overrides the global leaks: policy)"})
	}
	if len(k.AllowTools) > 0 { // shown only when given: a key reaches no MCP tool by default
		pairs = slices.Insert(pairs, 8, [2]string{"Allowed MCP tools", strings.Join(k.AllowTools, ", ")})
	}
	if k.Team != "" {
		pairs = append(pairs, [2]string{"Team", k.Team}, [2]string{"Owner", orDash(k.Owner)})
	}
	if k.CreatedBy != "" {
		pairs = append(pairs, [2]string{"Created by", k.CreatedBy})
	}
	return fields(w, pairs)
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
