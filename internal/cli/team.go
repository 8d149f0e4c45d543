package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) teamCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "team",
		Short: "Manage teams: their members, the policy their keys follow, and the budget they share",
		Long: `A team owns keys. Its members have a role in it (team-admin, developer,
viewer, or a custom role) and see only the team's keys, budget and usage:
another team's are answered "not found".

Every key of a team shares the team's limits and budget (they are the limits
of the key group the team is backed by), and below admin, keys are made and
changed only within the team's policy: the models and providers they may
use, their longest life and their highest limits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.teamAddCmd(), a.teamListCmd(), a.teamShowCmd(), a.teamPolicyCmd(), a.teamLimitsCmd(), a.teamUsageCmd(), a.teamMemberCmd())
	return cmd
}

func (a *app) teamAddCmd() *cobra.Command {
	var fromGroup string
	var lf *limitFlags
	cmd := &cobra.Command{
		Use:   "add NAME [--from-group GROUP] [limit flags]",
		Short: "Create a team, with the limits and budget its keys share",
		Long: `Creates a team. Its keys share the limits given here (change them with
keygate team limits). With --from-group, an existing key group becomes the
team's: its limits are the team's, and the keys already in it join the team.

  keygate team add payments --budget 500usd/month --rpm 600
  keygate team add search --from-group team-a`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "team add " + args[0]
			edit, err := lf.edit(what)
			if err != nil {
				return err
			}
			req := adminapi.CreateTeamRequest{Name: args[0], FromGroup: strings.TrimSpace(fromGroup)}
			if !edit.empty() {
				l := edit.apply(adminapi.Limits{})
				req.Limits = &l
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			t, err := c.CreateTeam(cmd.Context(), req)
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Created team %s (its keys share group %s: %s).\n", t.Name, t.Group, fmtLimits(t.Limits, "no limits"))
			return err
		},
	}
	cmd.Flags().StringVar(&fromGroup, "from-group", "", "build the team on the existing key group `GROUP`")
	lf = addLimitFlags(cmd, false)
	return cmd
}

func (a *app) teamListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the teams you may see",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			ts, err := c.ListTeams(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("team list: %w", err), cred)
			}
			if ts == nil {
				ts = []adminapi.Team{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.TeamList{Teams: ts})
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tKEYS\tMEMBERS\tLIMITS\tMAX-KEY-TTL\tMODELS")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", t.Name, t.Keys, t.Members, fmtLimits(t.Limits, "-"), orDash(t.Policy.MaxKeyTTL), list(t.Policy.AllowModels, "any"))
			}
			return tw.Flush()
		},
	}
}

func (a *app) teamShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a team: its policy, shared limits and members",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			t, err := c.GetTeam(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("team show %s: %w", args[0], err), cred)
			}
			ms, err := c.ListTeamMembers(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("team show %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), struct {
					adminapi.Team
					MemberList []adminapi.TeamMember `json:"member_list"`
				}{t, ms})
			}
			out := cmd.OutOrStdout()
			if err := printTeam(out, t); err != nil {
				return err
			}
			fmt.Fprintln(out, "\nMembers:")
			tw := newTable(out)
			fmt.Fprintln(tw, "USER\tKIND\tROLE\tADDED")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.User, m.Kind, m.Role, fmtTime(m.AddedAt))
			}
			return tw.Flush()
		},
	}
}

func printTeam(w io.Writer, t adminapi.Team) error {
	return fields(w, [][2]string{{"Name", t.Name}, {"Group", t.Group}, {"Shared limits", fmtLimits(t.Limits, "none")},
		{"Keys", fmt.Sprint(t.Keys)}, {"Members", fmt.Sprint(t.Members)},
		{"Allowed models", list(t.Policy.AllowModels, "any")}, {"Allowed providers", list(t.Policy.AllowProviders, "any")},
		{"Longest key life", orDash(t.Policy.MaxKeyTTL)}, {"Highest key limits", fmtLimits(t.Policy.MaxLimits, "none")},
		{"Leak action", orDash(t.Policy.LeakAction)},
		{"Created", fmtTime(t.CreatedAt)}})
}

func (a *app) teamPolicyCmd() *cobra.Command {
	var models, providers, services []string
	var maxTTL, leakAction string
	var clearModels, clearProviders, clearServices, clearTTL bool
	var lf *limitFlags
	cmd := &cobra.Command{
		Use:   "policy NAME [--allow-model P] [--allow-provider N] [--max-key-ttl 30d] [limit flags]",
		Short: "Set what the team's keys may be given by anyone below admin",
		Long: `Sets the team's policy: the models and providers its keys may use (a key's
own list must lie within them, and a key made without one gets the team's),
the passthrough services its keys may be given (--allow-service; none unless
listed), the longest life of a key (--max-key-ttl; a key made without an
expiry gets it) and the highest limits of each key (the limit flags; a key
made without a limit gets the ceiling). Flags not given keep the policy's
current values.

A policy that an existing key of the team breaks is refused, naming the
keys, and nothing changes: lower or revoke them first.

  keygate team policy payments --allow-model 'gpt-4o*' --max-key-ttl 30d --rpm 120 --budget 20usd/month`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "team policy " + args[0]
			edit, err := lf.edit(what)
			if err != nil {
				return err
			}
			if maxTTL != "" {
				if _, err := adminapi.ParseDuration(maxTTL); err != nil {
					return fmt.Errorf("%s: --max-key-ttl: %w", what, err)
				}
			}
			if err := adminapi.ValidLeakAction(leakAction); err != nil {
				return fmt.Errorf("%s: --%w", what, err)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			t, err := c.GetTeam(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			p := t.Policy
			switch {
			case clearModels:
				p.AllowModels = nil
			case cmd.Flags().Changed("allow-model"):
				p.AllowModels = splitList(models)
			}
			switch {
			case clearProviders:
				p.AllowProviders = nil
			case cmd.Flags().Changed("allow-provider"):
				p.AllowProviders = splitList(providers)
			}
			switch {
			case clearServices:
				p.AllowServices = nil
			case cmd.Flags().Changed("allow-service"):
				p.AllowServices = splitList(services)
			}
			switch {
			case clearTTL:
				p.MaxKeyTTL = ""
			case maxTTL != "":
				p.MaxKeyTTL = maxTTL
			}
			if cmd.Flags().Changed("leak-action") {
				p.LeakAction = leakAction
			}
			p.MaxLimits = edit.apply(p.MaxLimits)
			t, err = c.UpdateTeam(cmd.Context(), args[0], adminapi.UpdateTeamRequest{Policy: &p})
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			return printTeam(cmd.OutOrStdout(), t)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&models, "allow-model", nil, "model `PATTERN` the team's keys may use; repeat or separate with commas")
	f.StringArrayVar(&providers, "allow-provider", nil, "provider `NAME` the team's keys may use; repeat or separate with commas")
	f.StringArrayVar(&services, "allow-service", nil, "passthrough service `NAME` the team's keys may be given (none by default)")
	f.StringVar(&maxTTL, "max-key-ttl", "", "the longest `DURATION` a key of the team lives, as in 30d")
	f.StringVar(&leakAction, "leak-action", "", "the leak `ACTION` of the team's new keys (block, redact or alert), the only one a team-admin may give; '' for the global leaks: policy")
	f.BoolVar(&clearModels, "clear-allow-models", false, "let the team's keys use any model")
	f.BoolVar(&clearProviders, "clear-allow-providers", false, "let the team's keys use any provider")
	f.BoolVar(&clearServices, "clear-allow-services", false, "give the team's keys no passthrough service")
	f.BoolVar(&clearTTL, "clear-max-key-ttl", false, "let the team's keys live as long as they are made to")
	lf = addLimitFlags(cmd, true)
	return cmd
}

func (a *app) teamLimitsCmd() *cobra.Command {
	var lf *limitFlags
	cmd := &cobra.Command{
		Use:   "limits NAME [limit flags] [--clear-limits]",
		Short: "Change the limits and budget every key of the team shares",
		Long:  "Changes the limits and budget the team's keys share; they apply to the next request of every key of it. " + limitsHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "team limits " + args[0]
			edit, err := lf.edit(what)
			if err != nil {
				return err
			}
			if edit.empty() {
				return fmt.Errorf("%s: nothing to change: give limit flags (%s) or --clear-limits", what, limitFlagNames)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			t, err := c.GetTeam(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			l := edit.apply(t.Limits)
			if t, err = c.UpdateTeam(cmd.Context(), args[0], adminapi.UpdateTeamRequest{Limits: &l}); err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Team %s's keys now share: %s.\n", t.Name, fmtLimits(t.Limits, "no limits"))
			return err
		},
	}
	lf = addLimitFlags(cmd, true)
	return cmd
}

func (a *app) teamUsageCmd() *cobra.Command {
	var days int
	cmd := &cobra.Command{
		Use:   "usage NAME [--days N]",
		Short: "Show what every key of the team used, per day and model",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if days < 1 || days > maxUsageDays {
				return fmt.Errorf("team usage %s: --days must be 1 to %d", args[0], maxUsageDays)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			u, err := c.TeamUsage(cmd.Context(), args[0], days)
			if err != nil {
				return explain(fmt.Errorf("team usage %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "DATE\tMODEL\tREQUESTS\tINPUT\tOUTPUT\tUSD\tDENIED")
			for _, r := range u.Rows {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\n", r.Date, r.Model, r.Requests, r.InputTokens, r.OutputTokens,
					adminapi.Budget{MicroUSD: r.MicroUSD, Period: adminapi.PeriodTotal}.String(), r.Denials)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&days, "days", 30, "how many days back, today included")
	return cmd
}

func (a *app) teamMemberCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Add, list and remove a team's members", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	var role string
	add := &cobra.Command{
		Use:   "add TEAM USER --role ROLE",
		Short: "Add a user to a team with a role, or change its role there",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(role) == "" {
				return fmt.Errorf("team member add %s %s: --role is required, as in --role developer", args[0], args[1])
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			m, err := c.PutTeamMember(cmd.Context(), args[0], args[1], role)
			if err != nil {
				return explain(fmt.Errorf("team member add %s %s: %w", args[0], args[1], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is %s in team %s.\n", m.User, m.Role, m.Team)
			return err
		},
	}
	add.Flags().StringVar(&role, "role", "", "the `ROLE` in the team: team-admin, developer, viewer or a custom role")
	ls := &cobra.Command{
		Use:     "list TEAM",
		Aliases: []string{"ls"},
		Short:   "List a team's members",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			ms, err := c.ListTeamMembers(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("team member list %s: %w", args[0], err), cred)
			}
			if ms == nil {
				ms = []adminapi.TeamMember{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.TeamMemberList{Members: ms})
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "USER\tKIND\tROLE\tADDED")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.User, m.Kind, m.Role, fmtTime(m.AddedAt))
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "remove TEAM USER",
		Short: "Take a user out of a team",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if err := c.RemoveTeamMember(cmd.Context(), args[0], args[1]); err != nil {
				return explain(fmt.Errorf("team member remove %s %s: %w", args[0], args[1], err), cred)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Removed %s from team %s.\n", args[1], args[0])
			return err
		},
	}
	cmd.AddCommand(add, ls, rm)
	return cmd
}
