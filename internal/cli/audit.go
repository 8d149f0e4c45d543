package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// auditCmd is `keygate audit search` and `keygate audit verify`.
func (a *app) auditCmd() *cobra.Command {
	var key, typ, since string
	var limit int
	search := &cobra.Command{
		Use:   "search [--key KEY] [--type TYPE] [--since 1h] [--limit N]",
		Short: "Search the audit trail",
		Long: `Print audit events, oldest first: every authentication attempt, policy
decision, admin action, secret read and alert, with time, actor, key,
client address, resource, decision and reasons. --json prints the events as
stored, hash chain included.

  keygate audit search --key ci-bot --since 1h
  keygate audit search --type auth.failure --since 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			evs, err := c.AuditEvents(cmd.Context(), key, typ, since, limit)
			if err != nil {
				return explain(fmt.Errorf("audit search: %w", err), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				return writeJSON(out, evs)
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tKEY\tCLIENT\tRESOURCE\tDECISION\tREASONS")
			for _, raw := range evs.Events {
				var ev struct {
					Seq      uint64   `json:"seq"`
					Time     string   `json:"time"`
					Type     string   `json:"type"`
					KeyID    string   `json:"key_id"`
					Actor    string   `json:"actor"`
					Client   string   `json:"client"`
					Resource string   `json:"resource"`
					Decision string   `json:"decision"`
					Reasons  []string `json:"reasons"`
				}
				if json.Unmarshal(raw, &ev) != nil {
					continue
				}
				who := ev.KeyID
				if who == "" {
					who = ev.Actor
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%q\t%s\t%q\n", ev.Seq, ev.Time, ev.Type, orDash(who), orDash(ev.Client), ev.Resource, ev.Decision, ev.Reasons)
			}
			return tw.Flush()
		},
	}
	f := search.Flags()
	f.StringVar(&key, "key", "", "only events of this key (id or name)")
	f.StringVar(&typ, "type", "", "only events of this type, such as auth.failure, request, admin.action, secret.read, alert")
	f.StringVar(&since, "since", "", "only events newer than this `DURATION`, such as 1h or 7d")
	f.IntVar(&limit, "limit", 0, "at most N events (default and maximum 10000)")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail for edited, deleted, reordered or inserted events",
		Long: `Walk every node's audit chain, checking each event's hash, its link to the
one before, and the signed checkpoints. An edit, deletion, reordering or
insertion is reported with the first place it shows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			v, err := c.AuditVerify(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("audit verify: %w", err), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				if err := writeJSON(out, v); err != nil {
					return err
				}
			} else {
				for _, n := range v.Nodes {
					status := "intact"
					if n.Error != "" {
						status = fmt.Sprintf("TAMPERED at seq %d: %s", n.Seq, n.Error)
					}
					fmt.Fprintf(out, "%s: %d events, %d signed checkpoints: %s\n", n.Node, n.Events, n.Checkpoints, status)
				}
			}
			if !v.OK {
				return errors.New("audit verify: the audit trail has been tampered with")
			}
			return nil
		},
	}
	ref := &cobra.Command{
		Use:   "ref SECRET-NAME",
		Short: "Print the reference a secret's name is recorded under",
		Long: `Secret names never reach keygate's logs or audit trail; they appear as
references (HMACs under a key only keygate holds). Print the reference of a
name, to search the log or the trail for it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			r, err := c.AuditRef(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("audit ref: %w", err), cred)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), r)
			return err
		},
	}
	cmd := &cobra.Command{Use: "audit", Short: "Search and verify the audit trail"}
	cmd.AddCommand(search, verify, ref)
	return cmd
}
