package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) serviceAccountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service-account",
		Short: "Manage identities for automation (Terraform, CI): each holds admin tokens, never signs in",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var ttl, role, name string
	create := &cobra.Command{
		Use:   "create ACCOUNT [--ttl 90d] [--role ROLE] [--name NAME]",
		Short: "Issue a service account another token and print it once",
		Long: `Issues the service account another admin token, printed once. Each token is
listed and revoked on its own (keygate admin-token list, keygate admin-token
revoke ID), so a CI system's token can be replaced without stopping others.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl != "" {
				if _, err := adminapi.ParseDuration(ttl); err != nil {
					return fmt.Errorf("service-account token create %s: --ttl: %w", args[0], err)
				}
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			tok, err := c.CreateServiceToken(cmd.Context(), args[0], adminapi.CreateTokenRequest{Name: name, TTL: ttl, Role: role})
			if err != nil {
				return explain(fmt.Errorf("service-account token create %s: %w", args[0], err), cred)
			}
			return a.printToken(cmd, tok)
		},
	}
	f := create.Flags()
	f.StringVar(&ttl, "ttl", "", "how long it works, as in 30d (default 90d, at most 365d)")
	f.StringVar(&role, "role", "", "cap it at `ROLE`")
	f.StringVar(&name, "name", "", "a `NAME` to tell it apart")
	token := &cobra.Command{Use: "token", Short: "A service account's tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	token.AddCommand(create)
	cmd.AddCommand(a.userAddCmd(true), a.userListCmd(true), token)
	return cmd
}

func (a *app) adminTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin-token",
		Short: "List and revoke admin credentials: every one expires and shows its last use",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the admin credentials you may manage (all, or your own): id, owner, role, expiry, last use",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			toks, err := c.ListAdminTokens(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("admin-token list: %w", err), cred)
			}
			if toks == nil {
				toks = []adminapi.AdminToken{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.AdminTokenList{Tokens: toks})
			}
			return printTokens(cmd.OutOrStdout(), toks)
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke one admin credential; it stops on its next request on every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			t, err := c.RevokeAdminToken(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("admin-token revoke %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Revoked admin credential %s (%s).\n", t.ID, orDash(t.Owner))
			return err
		},
	}
	cmd.AddCommand(list, revoke)
	return cmd
}

// printTokens prints admin credentials as a table.
func printTokens(w io.Writer, toks []adminapi.AdminToken) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tKIND\tOWNER\tROLE\tSTATUS\tEXPIRES\tLAST-USED\tFROM")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Kind, orDash(t.Owner), t.Role, t.Status,
			fmtTimePtr(t.ExpiresAt, "never"), fmtTimePtr(t.LastUsedAt, "never"), orDash(t.LastUsedFrom))
	}
	return tw.Flush()
}
