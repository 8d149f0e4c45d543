package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) inviteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Invite people to a team by e-mail address, list and revoke invitations",
		Long: `An invitation lets someone join a team with a role. keygate answers with a
link, shown once: send it to the person. They open it in the console, set a
password (or sign in with single sign-on, when it is configured) and enrol a
second factor when their role needs one; someone who is a keygate user
already joins signed in as themselves. They are then a member of the team. A link works once, until it expires (7 days
unless --ttl or signin.invitation_ttl says otherwise), and only while whoever
made it may still give the role: nobody invites anyone to more than they hold.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.inviteCreateCmd(), a.inviteListCmd(), a.inviteRevokeCmd())
	return cmd
}

func (a *app) inviteCreateCmd() *cobra.Command {
	var team, role, ttl string
	cmd := &cobra.Command{
		Use:   "create --team TEAM --role ROLE [--ttl 7d] EMAIL",
		Short: "Invite an e-mail address to a team with a role; prints the link once",
		Long: `Invites EMAIL to TEAM with ROLE (team-admin, developer, viewer or a custom
role, no more than you hold in the team). The link is printed on stdout, the
only time keygate shows it; keygate keeps only a hash of it.

  keygate invite create --team payments --role developer ann@example.com`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "invite create " + args[0]
			if strings.TrimSpace(team) == "" || strings.TrimSpace(role) == "" {
				return fmt.Errorf("%s: --team and --role are required, as in --team payments --role developer", what)
			}
			if ttl != "" {
				if _, err := adminapi.ParseDuration(ttl); err != nil {
					return fmt.Errorf("%s: --ttl: %w", what, err)
				}
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			inv, err := c.CreateInvitation(cmd.Context(), team, adminapi.CreateInvitationRequest{Email: args[0], Role: role, TTL: ttl})
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), inv)
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), inv.Link); err != nil {
				return err
			}
			i := inv.Invitation
			fmt.Fprintf(cmd.ErrOrStderr(), "Invited %s to team %s as %s (invitation %s), until %s. This is the only time keygate shows the link: send it to them now.\n",
				i.Email, i.Team, i.Role, i.ID, fmtTime(i.ExpiresAt))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&team, "team", "", "the `TEAM` to invite to")
	f.StringVar(&role, "role", "", "the `ROLE` in the team: team-admin, developer, viewer or a custom role")
	f.StringVar(&ttl, "ttl", "", "how long the link works, as in 3d (default 7d, at most 30d)")
	return cmd
}

func (a *app) inviteListCmd() *cobra.Command {
	var team string
	var all bool
	cmd := &cobra.Command{
		Use:     "list [--team TEAM] [--all]",
		Aliases: []string{"ls"},
		Short:   "List pending invitations (never their links)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			is, err := c.ListInvitations(cmd.Context(), strings.TrimSpace(team), all)
			if err != nil {
				return explain(fmt.Errorf("invite list: %w", err), cred)
			}
			if is == nil {
				is = []adminapi.Invitation{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.InvitationList{Invitations: is})
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tEMAIL\tTEAM\tROLE\tSTATUS\tINVITED-BY\tEXPIRES")
			for _, i := range is {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Email, i.Team, i.Role, i.Status, orDash(i.InvitedBy), fmtTime(i.ExpiresAt))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&team, "team", "", "only the invitations of `TEAM`")
	cmd.Flags().BoolVar(&all, "all", false, "also list accepted, revoked and expired invitations")
	return cmd
}

func (a *app) inviteRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a pending invitation: its link stops working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			i, err := c.RevokeInvitation(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("invite revoke %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), i)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Revoked invitation %s of %s to team %s.\n", i.ID, i.Email, i.Team)
			return err
		},
	}
}
