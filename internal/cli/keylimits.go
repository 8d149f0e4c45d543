package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

// maxUsageDays is the most days of usage the admin API answers with.
const maxUsageDays = 400

func (a *app) keyUpdateCmd() *cobra.Command {
	var (
		group   string
		noGroup bool
		lf      *limitFlags
		sf      *scopeFlags
	)
	cmd := &cobra.Command{
		Use:   "update REF [scope flags] [limit flags] [--clear-limits] [--group NAME | --no-group]",
		Short: "Change the scopes, limits or group of a live key, by id or name",
		Long: `Changes the scopes, limits or group of a live key in one step; the change
applies to its next request.

Scopes are replaced whole: --allow-service, --allow-path and --allow-ip (each
repeatable) give the key's new list of passthrough services, path rules and
networks, --hours its new time windows. --clear-allow-paths, --clear-allow-ips
and --clear-hours lift a restriction; --clear-allow-services takes every
passthrough service away.

` + limitsHelp + `

  keygate key update etl --allow-path 'POST /v1/embeddings' --allow-path 'GET /v1/models'
  keygate key update etl --allow-ip 10.0.0.0/8 --clear-hours
  keygate key update deploy-bot --allow-service github
  keygate key update ci-bot --rpm 120 --budget 50usd/month
  keygate key update ci-bot --quota 0/day --tpm 0
  keygate key update ci-bot --clear-limits --concurrency 2
  keygate key update ci-bot --group team-a
  keygate key update ci-bot --no-group`,
		Args: scopeArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			what := "key update " + ref
			scopes, err := sf.edit(what)
			if err != nil {
				return err
			}
			edit, err := lf.edit(what)
			if err != nil {
				return err
			}
			var req adminapi.UpdateKeyRequest
			scopes.toUpdate(&req)
			groupSet := cmd.Flags().Changed("group")
			switch {
			case groupSet && noGroup:
				return fmt.Errorf("%s: give either --group NAME or --no-group, not both", what)
			case groupSet:
				group = strings.TrimSpace(group)
				if err := checkGroupName(what+": --group", group); err != nil {
					return fmt.Errorf("%w; to take the key out of its group, use --no-group", err)
				}
				req.Group = &group
			case noGroup:
				req.Group = new(string)
			}
			if edit.empty() && req.Group == nil && scopes.empty() {
				return fmt.Errorf("%s: nothing to change: give scope flags (%s), limit flags (%s), --clear-limits, --group NAME or --no-group; see `keygate key update --help`",
					what, scopeFlagNames, limitFlagNames)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if !edit.empty() {
				// The admin API replaces limits whole, so start from the key's own.
				var base adminapi.Limits
				if !edit.clear {
					k, err := c.GetKey(cmd.Context(), ref)
					if err != nil {
						return explain(fmt.Errorf("%s: %w", what, err), cred)
					}
					base = k.Limits
				}
				limits := edit.apply(base)
				if err := limits.Validate(); err != nil {
					return fmt.Errorf("%s: the resulting limits are not valid: %s", what, noPrefix(err))
				}
				req.Limits = &limits
			}
			k, err := c.UpdateKey(cmd.Context(), ref, req)
			if err != nil {
				return explain(groupHint(fmt.Errorf("%s: %w", what, err), group), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), k)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Updated key %s (%s).\n", k.Name, k.ID)
			return fields(out, [][2]string{
				{"Allowed paths", list(k.AllowPaths, "any")},
				{"Allowed IPs", list(k.AllowIPs, "any")},
				{"Hours", fmtHours(k.Hours, "any time")},
				{"Group", orDash(k.Group)},
				{"Limits", fmtLimits(k.Limits, "none")},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&group, "group", "", "move the key into the group `NAME`, whose limits it then shares too")
	f.BoolVar(&noGroup, "no-group", false, "take the key out of its group")
	sf = addScopeFlags(cmd, true)
	lf = addLimitFlags(cmd, true)
	return cmd
}

// groupHint adds advice to a bad-request answer to a request that named
// group: the admin API answers so when the group does not exist.
func groupHint(err error, group string) error {
	var apiErr *adminclient.APIError
	if group == "" || !errors.As(err, &apiErr) || apiErr.Status != 400 {
		return err
	}
	return fmt.Errorf("%w\nif group %s does not exist, create it with `keygate group create %s`, or list groups with `keygate group list`", err, group, group)
}

func (a *app) keyUsageCmd() *cobra.Command {
	var days int
	cmd := &cobra.Command{
		Use:   "usage REF [--days 30]",
		Short: "Show what a key consumed per day and model, by id or name",
		Long: `Shows what a key consumed on each of the last days, per model: requests,
input and output tokens, spend in USD and requests refused by its limits.
Days follow the calendar of keygate's limits time zone, newest first.

  keygate key usage ci-bot
  keygate key usage ci-bot --days 7 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			if days < 1 || days > maxUsageDays {
				return fmt.Errorf("key usage %s: --days must be 1 to %d, got %d", ref, maxUsageDays, days)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			u, err := c.KeyUsage(cmd.Context(), ref, days)
			if err != nil {
				return explain(fmt.Errorf("key usage %s: %w", ref, err), cred)
			}
			if u.Rows == nil {
				u.Rows = []adminapi.UsageRow{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			if len(u.Rows) == 0 {
				name := u.Key.Name
				if name == "" {
					name = ref
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "Key %s has no usage in the last %d days.\n", name, days)
				return err
			}
			return printUsage(cmd.OutOrStdout(), u.Rows)
		},
	}
	cmd.Flags().IntVar(&days, "days", 30, fmt.Sprintf("how many `DAYS` back to show, up to %d", maxUsageDays))
	return cmd
}

// printUsage prints usage rows as a table with a TOTAL line.
func printUsage(w io.Writer, rows []adminapi.UsageRow) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "DATE\tMODEL\tREQUESTS\tIN\tOUT\tSPEND\tDENIALS")
	var total adminapi.UsageRow
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\n", r.Date, orDash(r.Model), r.Requests, r.InputTokens, r.OutputTokens, fmtUSD(r.MicroUSD), r.Denials)
		total.Requests += r.Requests
		total.InputTokens += r.InputTokens
		total.OutputTokens += r.OutputTokens
		total.MicroUSD += r.MicroUSD
		total.Denials += r.Denials
	}
	fmt.Fprintf(tw, "TOTAL\t\t%d\t%d\t%d\t%s\t%d\n", total.Requests, total.InputTokens, total.OutputTokens, fmtUSD(total.MicroUSD), total.Denials)
	return tw.Flush()
}
