package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) approveCmd() *cobra.Command {
	var deny bool
	cmd := &cobra.Command{
		Use:   "approve ID [--deny]",
		Short: "Approve (or deny) another person's request that waits for a second person",
		Long: `Approves a request that waits for a second person's approval (its id is
in the requester's error, and in keygate approvals list). The requester then
runs the same command again with --approval ID, and it runs once. Nobody
approves their own request, and only a user who holds the permission the
request needs may approve it. Both decisions are on the audit trail.

  keygate approve apr_0123456789abcdef01234567
  keygate approve --deny apr_0123456789abcdef01234567`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			ap, err := c.DecideApproval(cmd.Context(), args[0], !deny)
			if err != nil {
				return explain(fmt.Errorf("approve %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), ap)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s's request %s (%s %s, needing %s). It lapses at %s.\n",
				map[bool]string{true: "Approved", false: "Denied"}[!deny], ap.Requester, ap.ID, ap.Method, ap.Path, ap.Permission, fmtTime(ap.ExpiresAt))
			return err
		},
	}
	cmd.Flags().BoolVar(&deny, "deny", false, "deny the request instead")
	return cmd
}

func (a *app) approvalsCmd() *cobra.Command {
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the last week's approval requests you may see",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			aps, err := c.ListApprovals(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("approvals list: %w", err), cred)
			}
			if aps == nil {
				aps = []adminapi.Approval{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.ApprovalList{Approvals: aps})
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tSTATUS\tREQUESTER\tNEEDS\tREQUEST\tCREATED\tDECIDED-BY")
			for _, ap := range aps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s\t%s\t%s\n", ap.ID, ap.Status, ap.Requester, ap.Permission, ap.Method, ap.Path, fmtTime(ap.CreatedAt), orDash(ap.DecidedBy))
			}
			return tw.Flush()
		},
	}
	cmd := &cobra.Command{Use: "approvals", Short: "Requests waiting for a second person's approval", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(list)
	return cmd
}
