// Package cli builds the keygate command line. Every client command talks to
// a running keygate through its admin REST API (internal/adminclient), so the
// command line can do nothing the API cannot.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminclient"
)

// DefaultAdminURL is where `keygate serve` runs its admin listener by default.
const DefaultAdminURL = "http://127.0.0.1:8788"

// Environment variables the command line reads.
const (
	EnvAdminURL   = "KEYGATE_ADMIN_URL"   // admin API address, like --admin-url
	EnvAdminCA    = "KEYGATE_ADMIN_CA"    // PEM certificate to trust, like --admin-ca
	EnvAdminToken = "KEYGATE_ADMIN_TOKEN" // admin credential, ahead of the keychain and the token file
	EnvGatewayURL = "KEYGATE_GATEWAY_URL" // gateway address for `keygate run --key`, like --gateway
)

// IO is everything the command line takes from its surroundings, so that it
// can run in-process with fake streams, environment and home directory.
type IO struct {
	Stdin   io.Reader           // credentials, keys and secret values read from stdin; `keygate run` passes it on
	Stdout  io.Writer           // results
	Stderr  io.Writer           // prompts, notes and warnings
	Getenv  func(string) string // environment lookup; nil means an empty environment
	Environ func() []string     // KEY=value entries `keygate run` starts its command with; nil means none
	HomeDir string              // home directory for the fallback token file; empty means none
	Version string              // printed by `keygate version` and `keygate --version`; empty prints "(devel)"
	// Keyring is where `keygate login` saves the admin credential; nil means
	// the operating system's keychain (OSKeyring).
	Keyring Keyring
	// OpenBrowser opens a URL for `keygate login --sso`; nil only prints
	// it. OpenBrowser (this package's) opens the user's browser.
	OpenBrowser func(url string) error
}

// app holds the command line's surroundings and the persistent flag values.
type app struct {
	io           IO
	adminURL     string
	adminCA      string
	json         bool
	insecureHTTP bool
	approval     string
}

// Root builds the `keygate` command with its client commands. extra commands,
// such as `serve`, are added beside them; commands that belong under `vault`,
// such as the offline `vault restore`, are attached with
// VaultCommand(root).AddCommand(...). Errors are returned from Execute and
// not printed: the caller prints them, except an *ExitCodeError, which only
// carries the exit code of the command `keygate run` ran.
func Root(stdio IO, extra ...*cobra.Command) *cobra.Command {
	if stdio.Getenv == nil {
		stdio.Getenv = func(string) string { return "" }
	}
	if stdio.Environ == nil {
		stdio.Environ = func() []string { return nil }
	}
	if stdio.Keyring == nil {
		stdio.Keyring = OSKeyring()
	}
	if stdio.Version == "" {
		stdio.Version = "(devel)"
	}
	a := &app{io: stdio}
	root := &cobra.Command{
		Use:   "keygate",
		Short: "keygate: a self-hosted credential gateway for AI and HTTP APIs",
		Long: `keygate keeps your real provider API keys and hands out its own keys instead.
It also keeps other secrets in an encrypted vault: store them with
"keygate secret put" and hand them to a program with "keygate run".

The client commands (login, provider, key, group, secret, vault and run,
but not vault restore) talk to a running keygate (started with "keygate
serve") through its admin API. They find the admin credential in this order:
  1. the KEYGATE_ADMIN_TOKEN environment variable
  2. the OS keychain, where "keygate login" saves it
  3. the file ~/.config/keygate/admin-credentials.json (mode 0600), used where
     no keychain exists
"keygate login" saves one credential per admin URL (--admin-url), and a
command sends only the one saved for its own admin URL. No credential is sent
over plain http:// to another machine unless --insecure-http is given.
The first "keygate serve" prints a bootstrap admin credential.`,
		Version:       stdio.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("keygate {{.Version}}\n")
	root.SetIn(stdio.Stdin)
	root.SetOut(stdio.Stdout)
	root.SetErr(stdio.Stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.adminURL, "admin-url", DefaultAdminURL, "admin API `URL` (env "+EnvAdminURL+")")
	pf.StringVar(&a.adminCA, "admin-ca", "", "PEM certificate `FILE` to trust for an HTTPS admin API with a self-signed certificate (env "+EnvAdminCA+")")
	pf.BoolVar(&a.json, "json", false, "print machine-readable JSON")
	pf.BoolVar(&a.insecureHTTP, "insecure-http", false, "allow sending the admin credential, and keygate keys, over plain http:// to another machine (only on a network trusted to protect them)")
	pf.StringVar(&a.approval, "approval", "", "run a request that waited for a second person's approval, once approved: its approval `ID`")

	// One command per line, so that adding one touches one line.
	root.AddCommand(
		a.loginCmd(),
		a.logoutCmd(),
		a.providerCmd(),
		a.keyCmd(),
		a.groupCmd(),
		a.secretCmd(),
		a.vaultCmd(),
		a.runCmd(),
		a.tokenCmd(),
		a.agentCmd(),
		a.auditCmd(),
		a.importCmd(),
		a.sourceCmd(),
		a.versionCmd(),
		a.whoamiCmd(),
		a.userCmd(),
		a.serviceAccountCmd(),
		a.adminTokenCmd(),
		a.teamCmd(),
		a.inviteCmd(),
		a.rolesCmd(),
		a.approveCmd(),
		a.approvalsCmd(),
		a.scanCmd(),
		a.routeCmd(),
		a.serviceCmd(),
		a.applyCmd(),
		a.mcpCmd(),
	)
	root.AddCommand(extra...)
	return root
}

// VaultCommand returns the `vault` command of a root built by Root, so that
// commands which work without the admin API can be attached under it:
//
//	cli.VaultCommand(root).AddCommand(restoreCmd)
//
// It returns nil if root has no `vault` command.
func VaultCommand(root *cobra.Command) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == vaultCmdName {
			return c
		}
	}
	return nil
}

// resolvedURL returns the admin URL: the flag if given, else the environment, else the default.
func (a *app) resolvedURL(cmd *cobra.Command) string {
	if f := cmd.Flag("admin-url"); f != nil && f.Changed {
		return strings.TrimSpace(a.adminURL)
	}
	if v := strings.TrimSpace(a.io.Getenv(EnvAdminURL)); v != "" {
		return v
	}
	return DefaultAdminURL
}

// resolvedCA returns the CA file to trust, from the flag or the environment.
func (a *app) resolvedCA(cmd *cobra.Command) string {
	if f := cmd.Flag("admin-ca"); f != nil && f.Changed {
		return strings.TrimSpace(a.adminCA)
	}
	return strings.TrimSpace(a.io.Getenv(EnvAdminCA))
}

// client builds an admin client with the resolved URL, CA and the admin
// credential saved for that URL.
func (a *app) client(cmd *cobra.Command) (*adminclient.Client, *credential, error) {
	t, err := a.target(cmd, true)
	if err != nil {
		return nil, nil, err
	}
	cred, err := a.loadCredential(t)
	if err != nil {
		return nil, nil, err
	}
	c, err := adminclient.New(t.url, cred.token, a.clientOptions(cmd)...)
	if err != nil {
		return nil, nil, err
	}
	return c, cred, nil
}

// explain adds a hint to errors a person can act on, keeping the *APIError reachable.
func explain(err error, cred *credential) error {
	var pending *adminclient.ApprovalPendingError
	if errors.As(err, &pending) {
		id := pending.Pending.Approval.ID
		return fmt.Errorf("%w\nnothing ran yet: ask another person who holds %s to run `keygate approve %s`, then run this command again with --approval %s",
			err, pending.Pending.Approval.Permission, id, id)
	}
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || cred == nil {
		return err
	}
	switch apiErr.Status {
	case 401:
		return fmt.Errorf("%w\nthe admin credential from %s was refused: run `keygate login` with a valid one, or set %s", err, cred.source, EnvAdminToken)
	case 403:
		return fmt.Errorf("%w\nthe admin credential from %s may not do this: by default only an owner reads secret values and takes backups "+
			"(operator credentials cannot read secret values or take backups); `keygate whoami` shows what it may do, `keygate roles` what each role grants", err, cred.source)
	}
	return err
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the keygate version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := a.io.Version
			if a.json {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"version": v})
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "keygate %s\n", v)
			return err
		},
	}
}

// writeJSON prints v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON output: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// newTable returns a tabwriter for aligned columns; call Flush when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// fields prints label/value pairs as aligned "Label:  value" lines.
func fields(w io.Writer, pairs [][2]string) error {
	tw := newTable(w)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// fmtTime formats t in RFC 3339 UTC, or "-" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// fmtTimePtr formats *t in RFC 3339 UTC, or none when t is nil.
func fmtTimePtr(t *time.Time, none string) string {
	if t == nil || t.IsZero() {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

// list joins values with ", ", or returns none for an empty list.
func list(vs []string, none string) string {
	if len(vs) == 0 {
		return none
	}
	return strings.Join(vs, ", ")
}

// splitList splits each value on commas, trims spaces and drops empty items,
// so repeated flags and comma lists can be mixed.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}
