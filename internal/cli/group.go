package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

func (a *app) groupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage groups of keys that share limits, such as a team's",
		Long: `A group is a named set of limits that every key in it shares: a team's
budget, say, on top of each key's own limits. A request must pass both the
limits of its key and those of its key's group. Put a key in a group with
"keygate key create --group NAME" or "keygate key update KEY --group NAME".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.groupCreateCmd(), a.groupListCmd(), a.groupShowCmd(), a.groupUpdateCmd(), a.groupDeleteCmd())
	return cmd
}

func (a *app) groupCreateCmd() *cobra.Command {
	var lf *limitFlags
	cmd := &cobra.Command{
		Use:   "create NAME [limit flags]",
		Short: "Create a group of keys and the limits they share",
		Long: `Creates a group whose limits every key in it shares. Without limit flags
the group limits nothing until "keygate group update" gives it limits.

  keygate group create team-a --rpm 600 --budget 200usd/month
  keygate group create batch --tpm 1000000 --quota 50000000tokens/month`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			what := "group create " + name
			if err := checkGroupName("group create", name); err != nil {
				return err
			}
			edit, err := lf.edit(what)
			if err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			g, err := c.CreateGroup(cmd.Context(), adminapi.GroupRequest{Name: name, Limits: edit.apply(adminapi.Limits{})})
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), g)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created group %s. Add keys with `keygate key update KEY --group %s`.\n", g.Name, g.Name)
			return printGroup(cmd.OutOrStdout(), g)
		},
	}
	lf = addLimitFlags(cmd, false)
	return cmd
}

func (a *app) groupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List groups, how many keys each holds and their limits",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			gs, err := c.ListGroups(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("group list: %w", err), cred)
			}
			if gs == nil {
				gs = []adminapi.Group{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.GroupList{Groups: gs})
			}
			if len(gs) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "No groups yet. Create one with `keygate group create NAME --rpm 600`.")
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tKEYS\tLIMITS")
			for _, g := range gs {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", g.Name, g.Keys, fmtLimits(g.Limits, "-"))
			}
			return tw.Flush()
		},
	}
}

func (a *app) groupShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show one group and its limits",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			g, err := c.GetGroup(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("group show %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), g)
			}
			return printGroup(cmd.OutOrStdout(), g)
		},
	}
}

func (a *app) groupUpdateCmd() *cobra.Command {
	var lf *limitFlags
	cmd := &cobra.Command{
		Use:   "update NAME [limit flags] [--clear-limits]",
		Short: "Change the limits a group's keys share",
		Long: `Changes the limits of a group; they apply to the next request of every key
in it. ` + limitsHelp + `

  keygate group update team-a --budget 300usd/month
  keygate group update team-a --rpm 0 --quota none`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			what := "group update " + name
			edit, err := lf.edit(what)
			if err != nil {
				return err
			}
			if edit.empty() {
				return fmt.Errorf("%s: nothing to change: give limit flags (%s) or --clear-limits; see `keygate group update --help`", what, limitFlagNames)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			// The admin API replaces limits whole, so start from the group's own.
			var base adminapi.Limits
			if !edit.clear {
				g, err := c.GetGroup(cmd.Context(), name)
				if err != nil {
					return explain(fmt.Errorf("%s: %w", what, err), cred)
				}
				base = g.Limits
			}
			limits := edit.apply(base)
			if err := limits.Validate(); err != nil {
				return fmt.Errorf("%s: the resulting limits are not valid: %s", what, noPrefix(err))
			}
			g, err := c.UpdateGroup(cmd.Context(), name, limits)
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), g)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Updated group %s.\n", g.Name)
			return fields(out, [][2]string{
				{"Keys", strconv.Itoa(g.Keys)},
				{"Limits", fmtLimits(g.Limits, "none")},
			})
		},
	}
	lf = addLimitFlags(cmd, true)
	return cmd
}

func (a *app) groupDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a group that holds no keys",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteGroup(cmd.Context(), name); err != nil {
				err = fmt.Errorf("group delete %s: %w", name, err)
				var apiErr *adminclient.APIError
				if errors.As(err, &apiErr) && apiErr.Status == 409 {
					err = fmt.Errorf("%w\nmove its keys out first with `keygate key update KEY --no-group` or into another group with --group; `keygate key list` shows each key's group", err)
				}
				return explain(err, cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				out = cmd.ErrOrStderr() // with --json, stdout carries only JSON
			}
			_, err = fmt.Fprintf(out, "Deleted group %s.\n", name)
			return err
		},
	}
}

func printGroup(w io.Writer, g adminapi.Group) error {
	return fields(w, [][2]string{
		{"Name", g.Name},
		{"Keys", strconv.Itoa(g.Keys)},
		{"Limits", fmtLimits(g.Limits, "none")},
		{"Created", fmtTime(g.CreatedAt)},
	})
}
