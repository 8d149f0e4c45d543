package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/chaos"
	"github.com/keygate/keygate/internal/cli"
)

// chaosCommand builds `keygate chaos`: the multi-node fault and soak suite.
func chaosCommand(sio cli.IO) *cobra.Command {
	var o chaos.Options
	var markdown bool
	o.Soak = time.Hour
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run three keygate nodes behind HAProxy through a series of faults and a soak",
		Long: `Start three "keygate serve" processes of this binary on a database of their own
(created on the PostgreSQL server --postgres names, dropped after), a Redis of
the suite's own (redis-server on a free port) and HAProxy in front, with fake
providers two per alias; drive a steady mixed load through HAProxy while
admin changes create, rotate and revoke keys; inject one fault after another
(kill -9 and SIGTERM of a node, Redis stopped, PostgreSQL connections cut,
a provider hanging, failing and throttling, the audit webhook down, a node
cut off from Redis, a slow KMS), each held and then healed; then soak at
steady load for --soak. Prints a table of what callers saw per fault and
the checks that must hold (availability, audit, spend, limits, revocation,
flat resources), and exits non-zero when one fails.

Needs haproxy and redis-server installed (Debian: apt-get install haproxy
redis-server) and a PostgreSQL role that may create databases. The
machine's PostgreSQL is never restarted: see docs/chaos.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if o.Short && !f.Changed("soak") {
				o.Soak = time.Minute
			}
			if o.Postgres == "" {
				o.Postgres = sio.Getenv("KEYGATE_TEST_POSTGRES_URL")
			}
			if o.Postgres == "" {
				return errors.New("keygate chaos needs a PostgreSQL server: give --postgres postgres://user@host:port/db (a role that may create databases) or set KEYGATE_TEST_POSTGRES_URL")
			}
			if o.MinAvailability <= 0 || o.MinAvailability > 1 {
				return fmt.Errorf("--min-availability %v must be above 0 and at most 1, such as 0.999", o.MinAvailability)
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the keygate executable: %w", err)
			}
			o.Binary = exe
			o.Progress = sio.Stderr
			rep, err := chaos.Run(cmd.Context(), o)
			if rep != nil {
				if markdown {
					rep.WriteMarkdown(sio.Stdout)
				} else {
					rep.WriteText(sio.Stdout)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Short, "short", false, "the CI form: faults held a few seconds and a one-minute soak (a few minutes in all)")
	f.DurationVar(&o.Soak, "soak", o.Soak, "how long the soak holds the load steady after the faults (0 skips it)")
	f.Float64Var(&o.MinAvailability, "min-availability", 0.999, "fail when a smaller share of calls is answered correctly")
	f.StringVar(&o.Postgres, "postgres", "", "PostgreSQL server URL (default $KEYGATE_TEST_POSTGRES_URL); the suite creates and drops a database of its own there")
	f.Float64Var(&o.Rate, "rate", 0, "calls per second offered (default 40)")
	f.IntVar(&o.Workers, "workers", 0, "most calls in flight at once (default 64)")
	f.DurationVar(&o.Hold, "hold", 0, "how long each fault is held (default 30s; 6s with --short)")
	f.DurationVar(&o.Recover, "recover", 0, "how long the load runs after each heal (default 20s; 5s with --short)")
	f.StringSliceVar(&o.Only, "only", nil, "run only the faults whose names contain one of these words (such as redis,provider)")
	f.BoolVar(&o.KeepDir, "keep", false, "keep the working directory (node logs, HAProxy configuration) and print where it is")
	f.BoolVar(&markdown, "markdown", false, "print the table as Markdown, to paste into the README")
	return cmd
}
