package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/keygate/keygate/internal/sources"
)

// importFlags are the flags every import command shares.
type importFlags struct {
	dryRun, apply bool
	to            string
	caFile        string
	endpoint      string
}

func (a *app) importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Copy secrets and provider keys into keygate from where they live today",
		Long: `Imports secrets and provider keys from a cloud secret manager, HashiCorp
Vault or OpenBao, a .env file, or another gateway's configuration.

Every import shows its plan first: what it would create, update or leave,
and what it cannot map. In a terminal it stops there (a dry run) unless
--apply is given; run from a script, it applies unless --dry-run is given.
No value is ever printed. Running an import again changes only what changed
at the source. Everything is stored through keygate's admin API, so each
change is authorized and on the audit trail.

The cloud commands read the source with the identity of this machine, as
the cloud's own CLI would (AWS_*, AZURE_*, GOOGLE_APPLICATION_CREDENTIALS,
VAULT_ADDR and VAULT_TOKEN).

To keep a key in its source instead of copying it, use a reference:
keygate provider add NAME --api-key-ref awssm://NAME.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.importCloudCmd("aws-secrets-manager", sources.SchemeAWS), a.importCloudCmd("azure-key-vault", sources.SchemeAzure),
		a.importCloudCmd("gcp-secret-manager", sources.SchemeGCP), a.importCloudCmd("vault", sources.SchemeVault),
		a.importFileCmd("env", "FILE", "a .env file: known provider keys (OPENAI_API_KEY, ...) become providers, other variables secrets"),
		a.importFileCmd("litellm", "config.yaml", "a LiteLLM proxy config: its model_list's upstreams become providers"),
		a.importFileCmd("bifrost", "config.json", "a Bifrost config.json: its providers' keys become providers"))
	return cmd
}

func (f *importFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "show the plan and store nothing (the default in a terminal)")
	fl.BoolVar(&f.apply, "apply", false, "store what the plan shows (the default outside a terminal)")
	fl.StringVar(&f.to, "to", "", "keygate secret name `PREFIX` to store imported secrets under, as in imported/aws")
}

func (a *app) importCloudCmd(name, scheme string) *cobra.Command {
	var (
		f                                 importFlags
		prefix, region, vaultURL, project string
		addr, mount, path                 string
	)
	use := map[string]string{
		sources.SchemeAWS:   "aws-secrets-manager [--prefix P] [--region R]",
		sources.SchemeAzure: "azure-key-vault --vault-url https://NAME.vault.azure.net",
		sources.SchemeGCP:   "gcp-secret-manager --project P",
		sources.SchemeVault: "vault --addr URL --mount kv [--path P]",
	}[scheme]
	cmd := &cobra.Command{
		Use:   use,
		Short: "Import the secrets of " + map[string]string{sources.SchemeAWS: "AWS Secrets Manager", sources.SchemeAzure: "an Azure key vault", sources.SchemeGCP: "a Google Secret Manager project", sources.SchemeVault: "a HashiCorp Vault or OpenBao KV v2 path"}[scheme],
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			what := "import " + name
			getenv := a.io.Getenv
			if region != "" || addr != "" {
				getenv = func(k string) string {
					switch {
					case k == "AWS_REGION" && region != "":
						return region
					case k == "VAULT_ADDR" && addr != "":
						return addr
					}
					return a.io.Getenv(k)
				}
			}
			hc, err := sourceHTTP(f.caFile)
			if err != nil {
				return fmt.Errorf("%s: --source-ca: %w", what, err)
			}
			cfg, err := sources.ConfigFromEnv(getenv, hc, os.ReadFile)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			var scope string
			switch scheme {
			case sources.SchemeAWS:
				scope = prefix
				if f.endpoint != "" {
					cfg.AWS.Endpoint = f.endpoint
				}
			case sources.SchemeAzure:
				u, err := url.Parse(strings.TrimSpace(vaultURL))
				if err != nil || u.Scheme != "https" || u.Host == "" {
					return fmt.Errorf("%s: --vault-url must be the key vault's https:// URL, as in https://myvault.vault.azure.net", what)
				}
				scope = strings.SplitN(u.Hostname(), ".", 2)[0]
				base := u.Scheme + "://" + u.Host
				cfg.Azure.VaultURL = func(string) string { return base }
				cfg.Azure.AnyResourceDomain = !strings.HasSuffix(u.Hostname(), ".vault.azure.net")
			case sources.SchemeGCP:
				if project == "" {
					return fmt.Errorf("%s: --project is required, as in --project my-project", what)
				}
				scope = project
				if f.endpoint != "" {
					cfg.GCP.Endpoint = f.endpoint
				}
			case sources.SchemeVault:
				if cfg.Vault.Address == "" {
					return fmt.Errorf("%s: --addr (or VAULT_ADDR) is required, as in --addr https://vault.example.com:8200", what)
				}
				if mount == "" {
					return fmt.Errorf("%s: --mount names the KV v2 secrets engine, as in --mount kv", what)
				}
				scope = mount + "/" + strings.Trim(path, "/")
			}
			items, err := sources.New(cfg).ListSource(cmd.Context(), scheme, scope)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			plan := sources.SecretPlan(name, f.to, items)
			return a.runImport(cmd, what, &f, plan)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.caFile, "source-ca", "", "PEM `FILE` of certificate authorities to trust for the source (a private Vault or endpoint)")
	switch scheme {
	case sources.SchemeAWS:
		fl.StringVar(&prefix, "prefix", "", "import only secrets whose name starts with `P`")
		fl.StringVar(&region, "region", "", "AWS `REGION` (default AWS_REGION)")
		fl.StringVar(&f.endpoint, "endpoint", "", "Secrets Manager endpoint `URL` (a VPC endpoint)")
	case sources.SchemeAzure:
		fl.StringVar(&vaultURL, "vault-url", "", "the key vault's `URL`, as in https://myvault.vault.azure.net (required)")
	case sources.SchemeGCP:
		fl.StringVar(&project, "project", "", "Google Cloud project `ID` (required)")
		fl.StringVar(&f.endpoint, "endpoint", "", "Secret Manager endpoint `URL` (a private endpoint)")
	case sources.SchemeVault:
		fl.StringVar(&addr, "addr", "", "Vault or OpenBao `URL` (default VAULT_ADDR)")
		fl.StringVar(&mount, "mount", "", "the KV v2 secrets engine's mount, as in kv (required)")
		fl.StringVar(&path, "path", "", "import only secrets under this `PATH`")
	}
	return cmd
}

func (a *app) importFileCmd(name, arg, short string) *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   name + " " + arg,
		Short: "Import " + short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "import " + name
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			defer clear(data)
			var plan sources.Plan
			switch name {
			case "env":
				plan, err = sources.EnvPlan(args[0], data, f.to)
			case "litellm":
				plan, err = sources.LiteLLMPlan(args[0], data, a.io.Getenv)
			case "bifrost":
				plan, err = sources.BifrostPlan(args[0], data, a.io.Getenv)
			}
			if err != nil {
				return err
			}
			return a.runImport(cmd, what, &f, plan)
		},
	}
	f.add(cmd)
	return cmd
}

// runImport decides the plan against keygate, prints it, and applies it
// unless this is a dry run.
func (a *app) runImport(cmd *cobra.Command, what string, f *importFlags, plan sources.Plan) error {
	if f.dryRun && f.apply {
		return fmt.Errorf("%s: use either --dry-run or --apply, not both", what)
	}
	dry := f.dryRun || (!f.apply && isTerminal(a.io.Stdout))
	c, cred, err := a.client(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if err := plan.Decide(ctx, c); err != nil {
		return explain(fmt.Errorf("%s: %w", what, err), cred)
	}
	if a.json {
		if err := writeJSON(cmd.OutOrStdout(), map[string]any{"plan": plan, "dry_run": dry}); err != nil {
			return err
		}
	} else {
		printPlan(cmd.OutOrStdout(), plan)
	}
	msgs := cmd.ErrOrStderr()
	counts := plan.Counts()
	if counts[sources.ActionCreate]+counts[sources.ActionUpdate] == 0 {
		fmt.Fprintln(msgs, "Nothing to store: keygate already holds everything this import maps.")
		return nil
	}
	if dry {
		fmt.Fprintln(msgs, "Dry run: nothing was stored. Run again with --apply to store what the plan shows.")
		return nil
	}
	n, err := plan.Apply(ctx, c)
	if err != nil {
		return explain(fmt.Errorf("%s: stored %d before failing: %w", what, n, err), cred)
	}
	fmt.Fprintf(msgs, "Stored %d item(s); every change is on keygate's audit trail.\n", n)
	return nil
}

func printPlan(w io.Writer, p sources.Plan) {
	c := p.Counts()
	fmt.Fprintf(w, "Import from %s: %d to create, %d to update, %d unchanged, %d existing providers left as they are\n",
		p.Source, c[sources.ActionCreate], c[sources.ActionUpdate], c[sources.ActionUnchanged], c[sources.ActionExists])
	tw := newTable(w)
	for _, s := range p.Secrets {
		note := ""
		if s.Note != "" {
			note = " (" + s.Note + ")"
		}
		fmt.Fprintf(tw, "  %s\tsecret\t%s\tfrom %s%s\n", s.Action, s.Name, s.From, note)
	}
	for _, pr := range p.Providers {
		desc := "preset " + pr.Preset
		if len(pr.Models) > 0 {
			desc += ", models " + strings.Join(pr.Models, ",")
		}
		fmt.Fprintf(tw, "  %s\tprovider\t%s (%s)\tfrom %s\n", pr.Action, pr.Name, desc, pr.From)
	}
	_ = tw.Flush()
	if len(p.Unmapped) > 0 {
		fmt.Fprintln(w, "Not imported:")
		for _, u := range p.Unmapped {
			fmt.Fprintln(w, "  - "+u)
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// sourceHTTP returns the HTTP client imports reach sources with: a 30 s
// timeout, and caFile's authorities trusted besides the system's.
func sourceHTTP(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New(caFile + " holds no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}
