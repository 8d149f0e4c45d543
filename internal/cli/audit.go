package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

// auditCmd is `keygate audit search`, `verify`, `ref`, `public-key` and `webhook-key`.
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
	pub := &cobra.Command{
		Use:   "public-key",
		Short: "Print the key audit checkpoints are signed with, to pin",
		Long: `Print the Ed25519 public key keygate signs audit checkpoints with, in hex.
Keep it somewhere the keygate host cannot write, and pass it to
keygate audit verify --public-key, so checkpoints re-signed with another key
(after someone replaced keygate's signing key) fail. keygate also logs it at
every start. --json adds the key id checkpoints name.

  keygate audit public-key > audit.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.AuditPublicKey(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("audit public-key: %w", err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), k)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), k.PublicKey)
			return err
		},
	}
	cmd := &cobra.Command{Use: "audit", Short: "Search and verify the audit trail"}
	cmd.AddCommand(search, a.auditVerifyCmd(), ref, pub, a.webhookKeyCmd())
	return cmd
}

// webhookKeyCmd is `keygate audit webhook-key show|rotate`.
func (a *app) webhookKeyCmd() *cobra.Command {
	var which string
	printKey := func(cmd *cobra.Command, k adminapi.WebhookKey) error {
		if a.json {
			return writeJSON(cmd.OutOrStdout(), k)
		}
		out := cmd.OutOrStdout()
		fmt.Fprintln(out, k.Key)
		_, err := fmt.Fprintf(cmd.ErrOrStderr(), "%s webhook signing key, version %d, used %s; the receiver computes HMAC-SHA256 of the raw body with the bytes this hex decodes to and compares it with X-Keygate-Signature: sha256=<hex>\n", k.For, k.Version, k.Applies)
		return err
	}
	show := &cobra.Command{
		Use:   "show [--for audit|alerts|approvals]",
		Short: "Print the key a webhook's bodies are signed with",
		Long: `Print, in hex, the key keygate signs audit (or alert) webhook bodies with,
so the receiver can check the X-Keygate-Signature header: HMAC-SHA256 of the
raw body, keyed with the bytes the hex decodes to, sent as sha256=<hex>.
Only an admin credential may read it; every read is on the audit trail.

  keygate audit webhook-key show --for audit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.WebhookKey(cmd.Context(), which)
			if err != nil {
				return explain(fmt.Errorf("audit webhook-key show: %w", err), cred)
			}
			return printKey(cmd, k)
		},
	}
	show.Flags().StringVar(&which, "for", adminapi.WebhookAudit, "the webhook: audit, alerts or approvals (an MCP server's approval webhook)")
	rotate := &cobra.Command{
		Use:   "rotate [--for audit|alerts|approvals]",
		Short: "Replace a webhook's signing key with a new random one",
		Long: `Make a new random signing key for the audit (or alert) webhook and print it
once, in hex. The audit webhook signs with it at once on this node and
within vault.read_cache_ttl on the others; the alert webhook from each node's
next start. Let the receiver accept the old and the new key until then.

  keygate audit webhook-key rotate --for audit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.RotateWebhookKey(cmd.Context(), which)
			if err != nil {
				return explain(fmt.Errorf("audit webhook-key rotate: %w", err), cred)
			}
			return printKey(cmd, k)
		},
	}
	rotate.Flags().StringVar(&which, "for", adminapi.WebhookAudit, "the webhook: audit, alerts or approvals (an MCP server's approval webhook)")
	cmd := &cobra.Command{Use: "webhook-key", Short: "Show or rotate the key webhook bodies are signed with"}
	cmd.AddCommand(show, rotate)
	return cmd
}
