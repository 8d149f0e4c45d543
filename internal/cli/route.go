package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
)

// maxApplyFile bounds the routing file keygate apply reads.
const maxApplyFile = 1 << 20

func (a *app) routeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Manage model routing (deployments and aliases) live, on every node",
		Long: `Deployments (a model at one or more registered providers) and aliases (a
model name clients call, served by deployments) kept in keygate's database
and managed here take effect on every keygate node within a second. The
configuration file's routing still works beside them; one name lives in
one place, and entries from the file are shown but changed only in the file.

A change that would leave a key with no model it may reach is refused,
naming the key; --force makes it anyway. See docs/routing.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	add := &cobra.Command{
		Use:   "add (deployment|alias) NAME ...",
		Short: "Add a deployment or an alias",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	add.AddCommand(a.routeAddDeploymentCmd(), a.routeAddAliasCmd())
	cmd.AddCommand(add, a.routingListCmd("route", "deployment", "alias"), a.routingShowCmd("route"), a.routingRemoveCmd("route"))
	return cmd
}

func (a *app) serviceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Manage passthrough services (/proxy/NAME/...) live, on every node",
		Long: `A passthrough service is an HTTP API keygate forwards /proxy/NAME/... to,
putting the credential a vault secret holds where the API wants it. Services
kept in keygate's database and managed here take effect on every node within
a second, beside those the configuration file declares. A key reaches a
service only when its --allow-service names it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.serviceAddCmd(), a.routingListCmd("service", "service"), a.routingShowCmd("service"), a.routingRemoveCmd("service"))
	return cmd
}

// changeFlags are the flags every routing change takes.
type changeFlags struct{ replace, force bool }

func (f *changeFlags) add(cmd *cobra.Command, replaceToo bool) {
	if replaceToo {
		cmd.Flags().BoolVar(&f.replace, "replace", false, "replace the entry if it exists, instead of refusing")
	}
	cmd.Flags().BoolVar(&f.force, "force", false, "make the change even if it leaves keys with nothing to reach")
}

// putEntry sends a new or replaced entry and prints the plan.
func (a *app) putEntry(cmd *cobra.Command, what string, e adminapi.RoutingEntry, f changeFlags) error {
	c, cred, err := a.client(cmd)
	if err != nil {
		return err
	}
	plan, err := c.PutRouting(cmd.Context(), e, f.replace, f.force)
	if err != nil {
		return explain(fmt.Errorf("%s %s: %w", what, e.Name, err), cred)
	}
	return a.printPlan(cmd, plan, false)
}

func (a *app) routeAddDeploymentCmd() *cobra.Command {
	var (
		d         config.Deployment
		providers []string
		in, out   float64
		f         changeFlags
	)
	cmd := &cobra.Command{
		Use:   "deployment NAME --provider NAME --model MODEL",
		Short: "Add a deployment: a model at a registered provider (or a pool of them)",
		Long: `Adds a deployment: the model MODEL at a registered provider, which aliases
then list. With --providers instead of --provider, a pool of providers of one
service, each with its own key, shares the load.

  keygate route add deployment gpt-mini --provider openai --model gpt-4o-mini --rpm 500
  keygate route add deployment claude --providers anthropic-a,anthropic-b --model claude-sonnet-4-5`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d.Name, d.Providers = strings.TrimSpace(args[0]), splitList(providers)
			if d.Provider == "" && len(d.Providers) == 0 {
				return errors.New("route add deployment: --provider (a registered provider) or --providers (a pool of them) is required")
			}
			if d.Model == "" {
				return errors.New("route add deployment: --model, the model's name at the provider, is required")
			}
			if cmd.Flags().Changed("price-input") || cmd.Flags().Changed("price-output") {
				d.Price = &config.ModelPrice{Input: in, Output: out}
			}
			dep := d
			return a.putEntry(cmd, "route add deployment", adminapi.RoutingEntry{Kind: "deployment", Name: d.Name, Deployment: &dep}, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&d.Provider, "provider", "", "the registered provider `NAME` that serves the model")
	fl.StringArrayVar(&providers, "providers", nil, "instead of --provider, a pool of registered providers: `NAMES`, comma-separated or repeated")
	fl.StringVar(&d.Model, "model", "", "the `MODEL`'s name at the provider")
	fl.IntVar(&d.Weight, "weight", 0, "share `N` under the weighted strategy (default 1)")
	fl.StringVar(&d.Env, "env", "", "environment `TAG` the deployment serves (default: the provider's)")
	fl.Int64Var(&d.RPM, "rpm", 0, "the provider's requests-per-minute limit `N` for this key and model (0: none)")
	fl.Int64Var(&d.TPM, "tpm", 0, "the provider's tokens-per-minute limit `N` (0: none)")
	fl.Float64Var(&in, "price-input", 0, "input price in US `DOLLARS` per million tokens, instead of the price table's")
	fl.Float64Var(&out, "price-output", 0, "output price in US `DOLLARS` per million tokens")
	f.add(cmd, true)
	return cmd
}

func (a *app) routeAddAliasCmd() *cobra.Command {
	var (
		al       config.Alias
		deps     []string
		timeout  string
		attempt  string
		f        changeFlags
		strategy string
	)
	cmd := &cobra.Command{
		Use:   "alias NAME --deployment NAME[,NAME...]",
		Short: "Add an alias: a model name clients call, served by deployments",
		Long: `Adds a model alias. Clients call NAME as their model; keygate sends each
request to one of the deployments, in the order the strategy prefers, and
fails over to the next on an error.

  keygate route add alias fast --deployment gpt-mini,claude-haiku --strategy lowest-latency
  keygate route add alias smart --deployment claude,gpt --timeout 90s --replace`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			al.Deployments, al.Strategy = splitList(deps), strategy
			if len(al.Deployments) == 0 {
				return errors.New("route add alias: --deployment is required: the deployments that serve the alias, in priority order")
			}
			for _, d := range []struct {
				flag, v string
				dst     *time.Duration
			}{{"--timeout", timeout, &al.Timeout}, {"--attempt-timeout", attempt, &al.AttemptTimeout}} {
				if d.v == "" {
					continue
				}
				v, err := time.ParseDuration(d.v)
				if err != nil || v < 0 {
					return fmt.Errorf("route add alias: %s %q is not a duration such as 30s or 2m", d.flag, d.v)
				}
				*d.dst = v
			}
			name := strings.TrimSpace(args[0])
			alias := al
			return a.putEntry(cmd, "route add alias", adminapi.RoutingEntry{Kind: "alias", Name: name, Alias: &alias}, f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&deps, "deployment", nil, "deployment `NAMES` that serve the alias, in priority order: comma-separated or repeated")
	fl.StringVar(&strategy, "strategy", "", "`STRATEGY`: priority (default), weighted, least-busy, lowest-latency or lowest-cost")
	fl.IntVar(&al.MaxAttempts, "max-attempts", 0, "deployments tried per request, at most `N` (default: all, at most 3)")
	fl.StringVar(&timeout, "timeout", "", "`DURATION` a request may take across attempts (default 60s)")
	fl.StringVar(&attempt, "attempt-timeout", "", "`DURATION` one deployment has to answer with headers (default: the rest of --timeout)")
	f.add(cmd, true)
	return cmd
}

func (a *app) serviceAddCmd() *cobra.Command {
	var (
		s       config.Service
		headers []string
		f       changeFlags
	)
	cmd := &cobra.Command{
		Use:   "add NAME --base-url URL --secret NAME --auth KIND",
		Short: "Add a passthrough service",
		Long: `Adds a passthrough service: requests to /proxy/NAME/... on the gateway go to
--base-url, with the credential the vault secret --secret holds put on as
--auth says: bearer (Authorization: Bearer), header (--auth-name: --auth-prefix
followed by the credential), query (?--auth-name=credential) or basic.

  keygate secret put stripe --stdin < stripe-key.txt
  keygate service add stripe --base-url https://api.stripe.com --secret stripe --auth bearer
  keygate service add github --base-url https://api.github.com --secret github-token \
      --auth header --auth-name Authorization --auth-prefix "token " --header X-GitHub-Api-Version=2022-11-28
  keygate key update ci --allow-service stripe`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			if s.BaseURL == "" || s.Secret == "" || s.Auth == "" {
				return errors.New("service add: --base-url, --secret (the vault secret holding the credential) and --auth are required")
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok || strings.TrimSpace(k) == "" {
					return fmt.Errorf("service add: --header %q must be NAME=VALUE", h)
				}
				if s.Headers == nil {
					s.Headers = map[string]string{}
				}
				s.Headers[strings.TrimSpace(k)] = v
			}
			svc := s
			return a.putEntry(cmd, "service add", adminapi.RoutingEntry{Kind: "service", Name: name, Service: &svc}, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&s.BaseURL, "base-url", "", "where requests go: `URL`, such as https://api.stripe.com")
	fl.StringVar(&s.Secret, "secret", "", "the vault secret `NAME` holding the credential (keygate secret put)")
	fl.StringVar(&s.Auth, "auth", "", "how the credential is sent: `KIND` bearer, header, query or basic")
	fl.StringVar(&s.AuthName, "auth-name", "", "the header or query parameter `NAME` (header, query)")
	fl.StringVar(&s.AuthPrefix, "auth-prefix", "", "`TEXT` before the credential in the header (header)")
	fl.StringVar(&s.AuthUser, "auth-user", "", "the user `NAME`, the credential being the password (basic)")
	fl.BoolVar(&s.AllowPrivate, "allow-private", false, "let keygate reach private, loopback and link-local addresses for this service")
	fl.StringArrayVar(&headers, "header", nil, "a fixed header sent on every request: `NAME=VALUE` (repeatable)")
	fl.StringVar(&s.Env, "env", "", "environment `TAG`: only keys of that environment may call the service")
	f.add(cmd, true)
	return cmd
}

// routingListCmd lists the entries of the given kinds.
func (a *app) routingListCmd(parent string, kinds ...string) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List " + strings.Join(kinds, "s and ") + "s, from the configuration file and the database",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			l, err := c.ListRouting(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("%s list: %w", parent, err), cred)
			}
			var es []adminapi.RoutingEntry
			for _, e := range l.Entries {
				for _, k := range kinds {
					if e.Kind == k {
						es = append(es, e)
					}
				}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), es)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "KIND\tNAME\tSOURCE\tDEFINITION")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Kind, e.Name, e.Source, summary(e))
			}
			return tw.Flush()
		},
	}
}

// summary describes an entry on one line.
func summary(e adminapi.RoutingEntry) string {
	switch {
	case e.Deployment != nil:
		d := e.Deployment
		at := d.Provider
		if len(d.Providers) > 0 {
			at = strings.Join(d.Providers, ",")
		}
		return d.Model + " at " + at
	case e.Alias != nil:
		s := e.Alias.Strategy
		if s == "" {
			s = "priority"
		}
		return strings.Join(e.Alias.Deployments, ", ") + " (" + s + ")"
	case e.Service != nil:
		return e.Service.BaseURL + " (" + e.Service.Auth + ", secret " + e.Service.Secret + ")"
	}
	return ""
}

// kindArgs reads KIND NAME for route (KIND deployment or alias), or NAME
// for service.
func kindArgs(parent string, args []string) (kind, name string, err error) {
	if parent == "service" {
		if len(args) != 1 {
			return "", "", errors.New("service: give the service NAME")
		}
		return "service", strings.TrimSpace(args[0]), nil
	}
	if len(args) != 2 || (args[0] != "deployment" && args[0] != "alias") {
		return "", "", errors.New("route: give KIND NAME, KIND being deployment or alias (services: keygate service ...)")
	}
	return args[0], strings.TrimSpace(args[1]), nil
}

func routingUse(parent, verb string) string {
	if parent == "service" {
		return verb + " NAME"
	}
	return verb + " (deployment|alias) NAME"
}

func (a *app) routingShowCmd(parent string) *cobra.Command {
	return &cobra.Command{
		Use:   routingUse(parent, "show"),
		Short: "Show one entry, as the configuration file would declare it",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := kindArgs(parent, args)
			if err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			e, err := c.GetRouting(cmd.Context(), kind, name)
			if err != nil {
				return explain(fmt.Errorf("%s show %s: %w", parent, name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), e)
			}
			return printEntry(cmd.OutOrStdout(), e)
		},
	}
}

// printEntry prints an entry's source and its definition as YAML, the
// configuration file's shape.
func printEntry(w io.Writer, e adminapi.RoutingEntry) error {
	var def any
	switch {
	case e.Deployment != nil:
		def = e.Deployment
	case e.Alias != nil:
		def = e.Alias
	case e.Service != nil:
		def = e.Service
	}
	b, err := yaml.Marshal(def)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "# %s %s, from the %s", e.Kind, e.Name, e.Source)
	if e.UpdatedAt != nil {
		fmt.Fprintf(w, ", changed %s by %s", fmtTime(*e.UpdatedAt), e.UpdatedBy)
	}
	fmt.Fprintln(w)
	_, err = w.Write(b)
	return err
}

func (a *app) routingRemoveCmd(parent string) *cobra.Command {
	var f changeFlags
	cmd := &cobra.Command{
		Use:     routingUse(parent, "remove"),
		Aliases: []string{"rm"},
		Short:   "Remove an entry from the database",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := kindArgs(parent, args)
			if err != nil {
				return err
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			plan, err := c.DeleteRouting(cmd.Context(), kind, name, f.force)
			if err != nil {
				return explain(fmt.Errorf("%s remove %s: %w", parent, name, err), cred)
			}
			return a.printPlan(cmd, plan, false)
		},
	}
	f.add(cmd, false)
	return cmd
}

func (a *app) applyCmd() *cobra.Command {
	var (
		file                   string
		dryRun, force, noEntry bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run]",
		Short: "Make the database's routing and services what a file declares",
		Long: `Reads a file with the routing and services sections of a keygate
configuration file, and makes the database's routing exactly that: entries
the database lacks are created, those that differ updated, and database
entries the file does not list deleted. The configuration file's own
entries are not touched (and may not be named). --dry-run prints the plan,
and the keys it would leave with nothing to reach, and changes nothing.
A plan that breaks keys is refused unless --force.

  keygate apply -f routing.yaml --dry-run
  keygate apply -f routing.yaml

routing.yaml:

  routing:
    deployments:
      - {name: gpt-mini, provider: openai, model: gpt-4o-mini}
    aliases:
      fast: {deployments: [gpt-mini], strategy: priority}
  services:
    stripe: {base_url: "https://api.stripe.com", secret: stripe, auth: bearer}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("apply: -f FILE is required (- reads standard input)")
			}
			doc, err := readRoutingFile(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			if len(doc.Routing.Deployments)+len(doc.Routing.Aliases)+len(doc.Services) == 0 && !noEntry {
				return fmt.Errorf("apply: %s declares no deployments, aliases or services, so applying it would delete every one the database holds; "+
					"if that is what you want, add --allow-empty", file)
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			plan, err := c.ApplyRouting(cmd.Context(), adminapi.ApplyRoutingRequest{Document: doc, DryRun: dryRun, Force: force})
			if err != nil {
				return explain(fmt.Errorf("apply %s: %w", file, err), cred)
			}
			return a.printPlan(cmd, plan, dryRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&file, "file", "f", "", "the routing `FILE` (YAML); - reads standard input")
	fl.BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	fl.BoolVar(&force, "force", false, "apply even if the plan leaves keys with nothing to reach")
	fl.BoolVar(&noEntry, "allow-empty", false, "accept a file that declares nothing, deleting every database entry")
	return cmd
}

// readRoutingFile reads a routing document, refusing unknown fields.
func readRoutingFile(stdin io.Reader, file string) (adminapi.RoutingDocument, error) {
	var doc adminapi.RoutingDocument
	var r io.Reader
	if file == "-" {
		r = stdin
	} else {
		f, err := os.Open(file)
		if err != nil {
			return doc, fmt.Errorf("apply: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxApplyFile+1))
	if err != nil {
		return doc, fmt.Errorf("apply: read %s: %w", file, err)
	}
	if len(b) > maxApplyFile {
		return doc, fmt.Errorf("apply: %s is larger than %d bytes", file, maxApplyFile)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return doc, fmt.Errorf("apply: %s: %w (the file takes routing.deployments, routing.aliases and services, as keygate's configuration file does)", file, err)
	}
	return doc, nil
}

// printPlan prints what a change did, or with dryRun would do.
func (a *app) printPlan(cmd *cobra.Command, p adminapi.RoutingPlan, dryRun bool) error {
	if a.json {
		return writeJSON(cmd.OutOrStdout(), p)
	}
	w := cmd.OutOrStdout()
	sign := map[string]string{"create": "+", "update": "~", "delete": "-"}
	for _, c := range p.Changes {
		fmt.Fprintf(w, "%s %s %s %s\n", sign[c.Op], c.Op, c.Kind, c.Name)
	}
	for _, b := range p.Breaks {
		fmt.Fprintf(w, "! would break: %s\n", b)
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", warn)
	}
	switch {
	case dryRun && len(p.Breaks) > 0:
		fmt.Fprintf(w, "Dry run: nothing changed. Applying this plan is refused unless --force, as it breaks %d key(s).\n", len(p.Breaks))
	case dryRun:
		fmt.Fprintf(w, "Dry run: nothing changed; %d change(s) to apply.\n", len(p.Changes))
	case len(p.Changes) == 0:
		fmt.Fprintln(w, "No change: the database already holds this.")
	default:
		fmt.Fprintf(w, "Applied %d change(s): routing generation %d; every node serves it within a second.\n", len(p.Changes), p.Generation)
	}
	return nil
}
