package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) keySuspendCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "suspend REF",
		Short: "Suspend a keygate API key by id or name: refused until resumed, not revoked",
		Long: `Suspends a key: keygate refuses its requests at once, until
"keygate key resume" lets it work again. Unlike revocation, suspension can be
undone, so it suits a key under suspicion or one that may no longer be needed.

  keygate key suspend ci-bot`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.SuspendKey(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("key suspend %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), k)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Suspended key %s (%s) at %s. Status: %s.\nResume it with `keygate key resume %s`.\n",
				k.Name, k.ID, fmtTimePtr(k.SuspendedAt, "-"), keyStatus(k), k.ID)
			return err
		},
	}
}

func (a *app) keyResumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume REF",
		Short: "Resume a suspended keygate API key by id or name",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.ResumeKey(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("key resume %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), k)
			}
			status := keyStatus(k)
			out := cmd.OutOrStdout()
			if _, err := fmt.Fprintf(out, "Resumed key %s (%s). Status: %s.\n", k.Name, k.ID, status); err != nil {
				return err
			}
			if status != "active" {
				_, err = fmt.Fprintf(out, "The key is %s, so it still does not work: create a new key with `keygate key create`.\n", status)
			}
			return err
		},
	}
}

func (a *app) keyRotateCmd() *cobra.Command {
	var grace string
	cmd := &cobra.Command{
		Use:   "rotate REF [--grace 24h]",
		Short: "Replace a keygate API key with a new one, keeping the old one working for a grace period",
		Long: `Issues a successor to a key, with the same environment, scopes, limits and
group, and prints the new key once on standard output. The old key keeps
working for the grace period (24h by default, never past its own expiry), so
its users have time to switch: deliver the new key to them before the grace
period ends. Its successor is named after it, as in NAME.rot-20250601T120000.

  keygate key rotate ci-bot
  NEW_KEY=$(keygate key rotate ci-bot --grace 7d)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			what := "key rotate " + ref
			grace = strings.TrimSpace(grace)
			if _, err := adminapi.ParseDuration(grace); err != nil {
				return fmt.Errorf("%s: --grace: %w", what, err)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			rot, err := c.RotateKey(cmd.Context(), ref, grace)
			if err != nil {
				return explain(fmt.Errorf("%s: %w", what, err), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				err = writeJSON(out, rot)
			} else {
				_, err = fmt.Fprintln(out, rot.Secret)
			}
			if err != nil {
				return err
			}
			next, prev := rot.Key, rot.Previous
			fmt.Fprintf(cmd.ErrOrStderr(),
				"Rotated key %s (%s): its successor is %s (%s, expires: %s).\n"+
					"This is the only time keygate shows the new key: copy it now and deliver it to the key's users.\n"+
					"The old key keeps working until %s; after that only the new key does.\n",
				prev.Name, prev.ID, next.Name, next.ID, fmtTimePtr(next.ExpiresAt, "never"), fmtTimePtr(prev.ExpiresAt, "its own expiry"))
			return nil
		},
	}
	cmd.Flags().StringVar(&grace, "grace", "24h", "`DURATION` the old key keeps working, as in 1h or 7d")
	return cmd
}
