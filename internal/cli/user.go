package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the people who use keygate's admin API",
		Long: `A user is a person with a role (keygate roles lists them). A team role
(team-admin, developer, viewer) applies only in the teams the user is a
member of: give one with --team, or later with keygate team member add.

Until a user signs in another way, their first admin credential is printed
by user add, once: hand it to them, and they make their own personal tokens
with keygate user token create.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.userAddCmd(false), a.userListCmd(false), a.userShowCmd(), a.userRoleCmd(), a.userDisableCmd(), a.userEnableCmd(), a.userTokenCmd(), a.userPasswordCmd(), a.userTOTPCmd())
	return cmd
}

// userAddCmd is `user add`, or with service `service-account add`.
func (a *app) userAddCmd(service bool) *cobra.Command {
	var role, team, ttl string
	var noToken bool
	what, noun := "user add", "user"
	if service {
		what, noun = "service-account add", "service account"
	}
	cmd := &cobra.Command{
		Use:   "add NAME --role ROLE [--team TEAM] [--ttl 90d]",
		Short: "Add a " + noun + " and print its first admin credential once",
		Long: `Adds a ` + noun + ` with a role and prints its first admin credential on
standard output, once: keygate keeps only a hash of it. With --team, the
` + noun + ` becomes a member of that team with the role, which must then be a team
role (team-admin, developer, viewer) or a custom one.

  keygate ` + what + ` alice --role admin
  keygate ` + what + ` dana --role developer --team payments --ttl 30d`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if strings.TrimSpace(role) == "" {
				return fmt.Errorf("%s %s: --role is required, as in --role developer (keygate roles lists the roles)", what, name)
			}
			if ttl != "" {
				if _, err := adminapi.ParseDuration(ttl); err != nil {
					return fmt.Errorf("%s %s: --ttl: %w", what, name, err)
				}
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			req := adminapi.CreateUserRequest{Name: name, Role: role, Team: team, TTL: ttl, NoToken: noToken}
			var created adminapi.CreatedUser
			if service {
				created, err = c.CreateServiceAccount(cmd.Context(), req)
			} else {
				created, err = c.CreateUser(cmd.Context(), req)
			}
			if err != nil {
				return explain(fmt.Errorf("%s %s: %w", what, name, err), cred)
			}
			return a.printCreated(cmd, created, noun)
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "the `ROLE` (required; keygate roles lists them)")
	f.StringVar(&team, "team", "", "make it a member of `TEAM` with the role")
	f.StringVar(&ttl, "ttl", "", "how long the first credential works, as in 90d (default 90d, at most 365d)")
	if !service {
		f.BoolVar(&noToken, "no-token", false, "issue no credential (for a user who will sign in another way)")
	}
	return cmd
}

// printCreated prints a new user's credential on stdout (JSON with --json)
// and what to do with it on stderr.
func (a *app) printCreated(cmd *cobra.Command, created adminapi.CreatedUser, noun string) error {
	out := cmd.OutOrStdout()
	if a.json {
		return writeJSON(out, created)
	}
	u := created.User
	if created.Secret == "" {
		_, err := fmt.Fprintf(out, "Added %s %s (%s), role %s%s.\n", noun, u.Name, u.ID, u.Role, teamsNote(u.Teams))
		return err
	}
	if _, err := fmt.Fprintln(out, created.Secret); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Added %s %s (%s), role %s%s. Its admin credential %s expires %s; this is the only time keygate shows it: hand it over now.\n",
		noun, u.Name, u.ID, u.Role, teamsNote(u.Teams), created.Token.ID, fmtTimePtr(created.Token.ExpiresAt, "never"))
	return nil
}

func teamsNote(ms []adminapi.Membership) string {
	if len(ms) == 0 {
		return ""
	}
	return ", in " + fmtTeams(ms)
}

// fmtTeams prints memberships as "payments (developer), search (viewer)".
func fmtTeams(ms []adminapi.Membership) string {
	if len(ms) == 0 {
		return "-"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Team + " (" + m.Role + ")"
	}
	return strings.Join(parts, ", ")
}

// userListCmd is `user list`, or with service `service-account list`.
func (a *app) userListCmd(service bool) *cobra.Command {
	what := "user list"
	if service {
		what = "service-account list"
	}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List them, with their role, teams and status",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			var us []adminapi.User
			if service {
				us, err = c.ListServiceAccounts(cmd.Context())
			} else {
				us, err = c.ListUsers(cmd.Context())
			}
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			if us == nil {
				us = []adminapi.User{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.UserList{Users: us})
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tTEAMS\tSTATUS\tCREATED")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Name, u.Role, fmtTeams(u.Teams), u.Status, fmtTime(u.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

func (a *app) userShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a user or service account, its teams and admin credentials",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			u, err := c.GetUser(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("user show %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			out := cmd.OutOrStdout()
			if err := fields(out, [][2]string{{"ID", u.ID}, {"Name", u.Name}, {"Kind", u.Kind}, {"Role", u.Role}, {"Teams", fmtTeams(u.Teams)},
				{"Status", u.Status}, {"Created", fmtTime(u.CreatedAt)}, {"Disabled", fmtTimePtr(u.DisabledAt, "-")}}); err != nil {
				return err
			}
			fmt.Fprintln(out, "\nAdmin credentials:")
			return printTokens(out, u.Tokens)
		},
	}
}

func (a *app) userRoleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "role NAME ROLE",
		Short: "Change a user's role",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			u, err := c.SetUserRole(cmd.Context(), args[0], args[1])
			if err != nil {
				return explain(fmt.Errorf("user role %s %s: %w", args[0], args[1], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "User %s now has role %s.\n", u.Name, u.Role)
			return err
		},
	}
}

func (a *app) userDisableCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a user or service account: every admin credential of theirs stops at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			u, err := c.DisableUser(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("user disable %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Disabled %s %s; every admin credential of theirs is revoked.\n", u.Kind, u.Name)
			return err
		},
	}
}

func (a *app) userEnableCmd() *cobra.Command {
	var ttl string
	var noToken bool
	cmd := &cobra.Command{
		Use:   "enable NAME [--ttl 90d] [--no-token]",
		Short: "Enable a disabled user and print a new admin credential once",
		Long: `Enables a disabled user or service account. Its old credentials stay
revoked; a new one is printed on standard output, once, unless --no-token.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			created, err := c.EnableUser(cmd.Context(), args[0], adminapi.IssueTokenRequest{TTL: ttl, NoToken: noToken})
			if err != nil {
				return explain(fmt.Errorf("user enable %s: %w", args[0], err), cred)
			}
			return a.printCreated(cmd, created, created.User.Kind)
		},
	}
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long the new credential works, as in 90d")
	cmd.Flags().BoolVar(&noToken, "no-token", false, "issue no credential")
	return cmd
}

func (a *app) userTokenCmd() *cobra.Command {
	var ttl, role, name string
	create := &cobra.Command{
		Use:   "create [--ttl 90d] [--role ROLE] [--name NAME]",
		Short: "Create a personal access token for yourself and print it once",
		Long: `Creates a personal access token for the user whose credential runs the
command, and prints it once on standard output. It expires (90 days by
default, at most 365) and can do only what its user may; with --role it can
do only what both the user and that role may (a role its user does not hold
entirely is refused).

  keygate user token create --ttl 30d
  keygate user token create --role auditor --name dashboard`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl != "" {
				if _, err := adminapi.ParseDuration(ttl); err != nil {
					return fmt.Errorf("user token create: --ttl: %w", err)
				}
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			tok, err := c.CreatePersonalToken(cmd.Context(), adminapi.CreateTokenRequest{Name: name, TTL: ttl, Role: role})
			if err != nil {
				return explain(fmt.Errorf("user token create: %w", err), cred)
			}
			return a.printToken(cmd, tok)
		},
	}
	f := create.Flags()
	f.StringVar(&ttl, "ttl", "", "how long it works, as in 30d (default 90d, at most 365d)")
	f.StringVar(&role, "role", "", "cap it at `ROLE`: it may do only what both you and the role may")
	f.StringVar(&name, "name", "", "a `NAME` to tell it apart in keygate admin-token list")
	cmd := &cobra.Command{Use: "token", Short: "Your personal access tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(create)
	return cmd
}

// printToken prints a new credential's secret on stdout, once.
func (a *app) printToken(cmd *cobra.Command, tok adminapi.CreatedToken) error {
	if a.json {
		return writeJSON(cmd.OutOrStdout(), tok)
	}
	if _, err := fmt.Fprintln(cmd.OutOrStdout(), tok.Secret); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Created admin credential %s for %s (role %s), expiring %s. This is the only time keygate shows it: copy it now.\n",
		tok.Token.ID, tok.Token.Owner, tok.Token.Role, fmtTimePtr(tok.Token.ExpiresAt, "never"))
	return nil
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the admin credential in use belongs to: user, role, teams, how it signed in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			who, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("whoami: %w", err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), who)
			}
			role := who.Role
			if who.CredentialRole != "" {
				role += " (this credential capped at " + who.CredentialRole + ")"
			}
			return fields(cmd.OutOrStdout(), [][2]string{{"Name", who.Name}, {"Kind", who.Kind}, {"Role", role}, {"Teams", fmtTeams(who.Teams)},
				{"Signed in with", who.Via + " " + who.TokenID}, {"Expires", fmtTimePtr(who.ExpiresAt, "never")},
				{"Permissions", strings.Join(who.Permissions, ", ")}})
		},
	}
}

func (a *app) rolesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "roles",
		Short: "List the roles and the permissions each grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			rl, err := c.ListRoles(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("roles: %w", err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), rl)
			}
			return printRoles(cmd.OutOrStdout(), rl)
		},
	}
}

func printRoles(w io.Writer, rl adminapi.RoleList) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ROLE\tSCOPE\tPERMISSIONS")
	for _, r := range rl.Roles {
		scope := "everywhere"
		if r.Team {
			scope = "its teams"
		}
		if r.Custom {
			scope += ", custom"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, scope, strings.Join(r.Permissions, " "))
	}
	fmt.Fprintf(tw, "everyone\ttheir own\t%s\n", strings.Join(rl.Everyone, " "))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rl.ApprovalsRequiredFor) > 0 {
		_, err := fmt.Fprintf(w, "\nA second person's approval is required for: %s\n", strings.Join(rl.ApprovalsRequiredFor, ", "))
		return err
	}
	return nil
}
