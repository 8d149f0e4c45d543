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

func (a *app) keyAWSCredentialsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "aws-credentials REF",
		Short: "Print the AWS access key pair of a keygate API key, for Bedrock clients that sign with SigV4",
		Long: `Prints an AWS access key id and secret access key bound to a key, as
shell exports on standard output. Bedrock clients that sign their requests
with SigV4 (the AWS SDKs, boto3, Claude Code's Bedrock mode) use them in place
of AWS's own credentials and reach Bedrock through keygate with the key's
scopes, limits and budgets; keygate signs upstream with its own AWS identity.

The pair works only while the key does: revoking, suspending or rotating the
key, or its expiry, stops it. keygate derives the pair from the key's id and
a key sealed in its vault instead of storing it, so running this again prints
the same pair; keep it as secret as the key.

  eval "$(keygate key aws-credentials claude-code)"
  export AWS_REGION=us-east-1 AWS_ENDPOINT_URL_BEDROCK_RUNTIME=https://keygate.internal:8787`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			creds, err := c.AWSCredentials(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("key aws-credentials %s: %w", args[0], err), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				return writeJSON(out, creds)
			}
			if _, err := fmt.Fprintf(out, "export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\n", creds.AccessKeyID, creds.SecretAccessKey); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(),
				"These AWS credentials stand for key %s (%s): keep them as secret as the key.\n"+
					"Point the Bedrock client at keygate's gateway (AWS_ENDPOINT_URL_BEDROCK_RUNTIME, or ANTHROPIC_BEDROCK_BASE_URL for Claude Code).\n"+
					"They stop working when the key is revoked, suspended, expires or is rotated.\n",
				creds.KeyName, creds.KeyID)
			return nil
		},
	}
}
