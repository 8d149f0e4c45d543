package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

// refFlags adds the flags of a reference: --NAME REF, --ref-refresh and --ref-grace.
func refFlags(cmd *cobra.Command, name string, ref, refresh, grace *string, what string) {
	f := cmd.Flags()
	f.StringVar(ref, name, "", "keep "+what+" in its source and follow it: `REF` is awssm://NAME, azkv://VAULT/NAME, gcpsm://PROJECT/NAME or vault://MOUNT/PATH#FIELD")
	f.StringVar(refresh, "ref-refresh", "", "how often keygate re-reads the source (`DURATION`; default the server's sources.refresh, 5m)")
	f.StringVar(grace, "ref-grace", "", "how long the last value read is served once the source cannot be read (`DURATION`; default sources.grace, 1h)")
}

// putSecretRef makes a secret a reference to its source.
func (a *app) putSecretRef(cmd *cobra.Command, name, ref, refresh, grace string) error {
	c, cred, err := a.client(cmd)
	if err != nil {
		return err
	}
	s, err := c.PutSecretRef(cmd.Context(), name, ref, refresh, grace)
	if err != nil {
		return explain(fmt.Errorf("secret put %s: %w", name, err), cred)
	}
	if a.json {
		return writeJSON(cmd.OutOrStdout(), s)
	}
	_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Secret %s follows %s: read now (version %d), re-read every %s.\n", s.Name, s.Source.Ref, s.CurrentVersion, s.Source.Refresh)
	return err
}

func (a *app) sourceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "source",
		Short: "Provider keys and secrets kept in a cloud secret manager or Vault (references)",
		Long: `Lists the provider keys and secrets keygate follows in their sources
(created with provider add --api-key-ref and secret put --ref), and reads
one now: after a rotation at the source, or to end an alert.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.sourceListCmd(), a.sourceRefreshCmd())
	return cmd
}

func (a *app) sourceListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List references and how reading each goes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			refs, err := c.ListSourceRefs(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("source list: %w", err), cred)
			}
			if a.json {
				if refs == nil {
					refs = []adminapi.SourceRef{}
				}
				return writeJSON(cmd.OutOrStdout(), adminapi.SourceRefList{Refs: refs})
			}
			if len(refs) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "No references. Add one with `keygate provider add NAME ... --api-key-ref REF` or `keygate secret put NAME --ref REF`.")
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "TARGET\tREF\tSTATE\tREAD\tSERVED-UNTIL\tLAST-ERROR")
			for _, r := range refs {
				read, until := "never", "-"
				if r.VerifiedAt != nil {
					read = fmtTime(*r.VerifiedAt)
				}
				if r.ServeUntil != nil {
					until = fmtTime(*r.ServeUntil)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Target, r.Ref, r.State, read, until, orDash(r.LastError))
			}
			return tw.Flush()
		},
	}
}

func (a *app) sourceRefreshCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "refresh provider:NAME|secret:NAME",
		Short: "Read a reference's source now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := strings.TrimSpace(args[0])
			if !strings.HasPrefix(target, "provider:") && !strings.HasPrefix(target, "secret:") {
				return errors.New("source refresh: name the reference as provider:NAME or secret:NAME, as keygate source list shows it")
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			r, err := c.RefreshSource(cmd.Context(), target)
			if err != nil {
				return explain(fmt.Errorf("source refresh %s: %w", target, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Read %s from %s: %s.\n", target, r.Ref, r.State)
			return err
		},
	}
}
