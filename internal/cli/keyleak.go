package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/secret"
)

func (a *app) keyReportLeakCmd() *cobra.Command {
	var where string
	cmd := &cobra.Command{
		Use:   "report-leak (KEY | -) [--where URL]",
		Short: "Report a keygate key found where it should not be: it is revoked at once",
		Long: `Reports a keygate key (kg_...) that was found in a repository, a paste, a
chat or a log. keygate looks it up by its hash, revokes it, raises an alert
and records the report; a key this keygate never issued changes nothing.

Pass the key as - to read it from standard input, which keeps it out of
shell history; --where says where it was found.

  keygate key report-leak - --where https://github.com/org/repo/blob/abc/config.py < found.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := args[0]
			if raw == "-" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("key report-leak: nothing on standard input: pipe the key in")
				}
				raw = line
			}
			key := secret.New(strings.TrimSpace(raw))
			if _, err := apikey.Parse(key.Reveal()); err != nil {
				return fmt.Errorf("key report-leak: %s; only keygate keys (kg_...) can be reported here, and they are checked before anything is sent", apikey.MalformedReason(err))
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			out, err := c.ReportLeak(cmd.Context(), key, strings.TrimSpace(where))
			if err != nil {
				return explain(fmt.Errorf("key report-leak: %w", err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			if !out.TruePositive {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "not a key this keygate issued: nothing was changed")
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "key %s (%s, %s) %s; an alert was raised\n", out.KeyName, out.KeyID, out.Prefix, out.Action)
			return err
		},
	}
	cmd.Flags().StringVar(&where, "where", "", "where the key was found: a `URL` or file:line")
	return cmd
}
