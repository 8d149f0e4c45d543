package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

func (a *app) mcpCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Manage the MCP servers agents reach through keygate's /mcp",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.mcpAddCmd(), a.mcpUpdateCmd(), a.mcpListCmd(), a.mcpShowCmd(), a.mcpRemoveCmd(), a.mcpAuthCmd())
	return cmd
}

func (a *app) mcpAddCmd() *cobra.Command {
	var (
		url, transport, auth, header, secretName, command string
		env                                               []string
		allowPrivate                                      bool
		o                                                 adminapi.MCPOptions
		oa                                                adminapi.MCPOAuth
		clientSecret                                      string
		toolLimits                                        []string
	)
	cmd := &cobra.Command{
		Use:   "add NAME (--url URL [--secret NAME] | --command 'PROGRAM ARGS' [--env VAR=secret:NAME] | -- PROGRAM ARGS...)",
		Short: "Register an MCP server: remote with a credential from the vault, or a local stdio server keygate starts",
		Long: `Registers an MCP server that agents reach at keygate's gateway, /mcp (every
server the caller may use, tools named NAME__tool) or /mcp/NAME (this one).
The agent holds only its keygate key; the server's credential stays in the
vault and keygate injects it.

A remote server (streamable HTTP, or the older HTTP+SSE with --transport sse):

  keygate secret put github-token --from-env GITHUB_TOKEN
  keygate mcp add github --url https://api.githubcopilot.com/mcp/ --auth bearer --secret github-token
  keygate mcp add internal --url https://mcp.corp.example/mcp --auth header --header X-Api-Key --secret corp-key

A server that acts for a person, OAuth-protected as the MCP authorization
spec describes: each keygate user authorizes keygate there once with
keygate mcp auth NAME; keygate discovers the authorization server,
registers itself (or uses --client-id), keeps each user's tokens sealed in
the vault, refreshes them, and calls the server as the key's user:

  keygate mcp add notes --url https://notes.example/mcp --auth oauth

A server that takes keygate's own OAuth token (client credentials):

  keygate mcp add search --url https://search.example/mcp --auth client-credentials \
    --token-url https://auth.example/token --client-id keygate --client-secret-secret search-client

A local stdio server, started by keygate with no environment but PATH and
the --env values (secret:NAME reads a vault secret):

  keygate mcp add pg --command 'npx -y @modelcontextprotocol/server-postgres' --env DATABASE_URL=secret:pg-url
  keygate mcp add everything -- npx -y @modelcontextprotocol/server-everything stdio

Keys reach no tool until given some: keygate key update NAME --allow-tool 'github/*'
--allow-tool '!github/delete_*'. The limits below count per key; --tool-limit
adds limits for some tools on top of the server's:

  keygate mcp add github ... --rpm 60 --tool-limit 'create_issue=rpm:10,concurrency:2,per_day:100' \
    --tool-limit 'delete_*=per_day:5'

A glob's limit is shared by the tools it matches; every --tool-limit that
matches a call applies. keygate mcp update NAME changes the limits later.

A tool can need a person's approval for every call: with
--approval-required 'delete_*' such a call waits (up to --approval-timeout)
until someone who holds approvals.decide runs keygate approve ID (keygate
approvals list shows the waiting calls), then runs once; denied or
unanswered, it fails with a JSON-RPC error naming the approval.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.TrimSpace(args[0])
			argv := args[1:]
			if command != "" {
				if len(argv) > 0 {
					return errors.New("mcp add: give the command either with --command or after --, not both")
				}
				argv = strings.Fields(command)
			}
			for _, tl := range toolLimits {
				l, err := adminapi.ParseToolLimit(tl)
				if err != nil {
					return fmt.Errorf("mcp add: --tool-limit: %w", err)
				}
				o.ToolLimits = append(o.ToolLimits, l)
			}
			envMap := map[string]string{}
			for _, e := range env {
				k, v, ok := strings.Cut(e, "=")
				if !ok || k == "" {
					return fmt.Errorf("mcp add: --env %q must be VAR=VALUE or VAR=secret:NAME", e)
				}
				envMap[k] = v
			}
			if len(envMap) == 0 {
				envMap = nil
			}
			if clientSecret != "" {
				if secretName != "" {
					return errors.New("mcp add: give --client-secret-secret or --secret, not both")
				}
				secretName = clientSecret
			}
			if oa.TokenURL != "" || oa.ClientID != "" || len(oa.Scopes) > 0 {
				o.OAuth = &oa
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			m, err := c.CreateMCPServer(cmd.Context(), adminapi.CreateMCPServerRequest{
				Name: name, Transport: transport, URL: strings.TrimSpace(url), Auth: auth, AuthHeader: header,
				Secret: secretName, Command: argv, Env: envMap, AllowPrivate: allowPrivate, Options: o,
			})
			if err != nil {
				return explain(fmt.Errorf("mcp add %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Added MCP server %s; agents reach it at /mcp/%s, or as %s__TOOL at /mcp.\n", m.Name, m.Name, m.Name)
			return printMCPServer(cmd.OutOrStdout(), m)
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "a remote server's `URL` (streamable HTTP, or HTTP+SSE with --transport sse)")
	f.StringVar(&transport, "transport", "", "`http` (streamable HTTP), sse or stdio (default: http with --url, stdio with a command)")
	f.StringVar(&auth, "auth", "", "how the credential reaches a remote server: none, bearer, header, oauth (each user's own authorization: keygate mcp auth NAME) or client-credentials (default: bearer with --secret)")
	f.StringVar(&oa.TokenURL, "token-url", "", "with --auth client-credentials: the authorization server's token `URL`")
	f.StringVar(&oa.ClientID, "client-id", "", "with --auth client-credentials, or --auth oauth at a server without dynamic registration: keygate's client `ID`")
	f.StringVar(&clientSecret, "client-secret-secret", "", "the vault secret `NAME` holding the client secret of --client-id")
	f.StringArrayVar(&oa.Scopes, "scope", nil, "an OAuth `SCOPE` to ask for; repeat (default: what the server asks)")
	f.StringVar(&header, "header", "", "the header `NAME` the credential goes in, with --auth header")
	f.StringVar(&secretName, "secret", "", "the vault secret `NAME` holding a remote server's credential")
	f.StringVar(&command, "command", "", "a stdio server's `COMMAND` and arguments, split at spaces (or give them after --)")
	f.StringArrayVar(&env, "env", nil, "a stdio server's environment `VAR=VALUE`, or VAR=secret:NAME from the vault; repeat")
	f.BoolVar(&allowPrivate, "allow-private", false, "let a remote URL reach a private or loopback address (a deliberately internal server)")
	f.StringVar(&o.CallTimeout, "call-timeout", "", "bound one request to the server (default 60s)")
	f.StringVar(&o.ConnectTimeout, "connect-timeout", "", "bound connecting to the server, or starting it (default 30s)")
	f.Int64Var(&o.MaxResultBytes, "max-result-bytes", 0, "refuse an answer larger than this (default 4 MiB)")
	f.Int64Var(&o.RPM, "rpm", 0, "tool calls per minute, per key (default: no limit)")
	f.Int64Var(&o.Concurrency, "concurrency", 0, "tool calls in flight at once, per key (default: no limit)")
	f.Int64Var(&o.CallsPerDay, "calls-per-day", 0, "tool calls per day, per key (default: no limit)")
	f.StringArrayVar(&toolLimits, "tool-limit", nil, toolLimitUsage)
	f.StringArrayVar(&o.ApprovalRequired, "approval-required", nil, "calls of the tools matching `GLOB` (the server's own names: delete_*, or * for all) wait for a person: keygate approvals list, keygate approve ID; repeat")
	f.StringVar(&o.ApprovalTimeout, "approval-timeout", "", "how long such a call waits for a decision before it fails (default 5m)")
	f.StringVar(&o.ApprovalWebhook, "approval-webhook", "", "also ask this http(s) `URL` to decide each such call: a signed POST (keygate audit webhook-key show --for approvals) answered {\"approval\":ID,\"decision\":\"approve\"|\"deny\",\"by\":NAME}")
	return cmd
}

const toolLimitUsage = "limit the calls of the tools matching `TOOL` (the server's own name, or a glob such as delete_*), per key: TOOL=rpm:N,concurrency:N,per_day:N (one or more); repeat"

func (a *app) mcpUpdateCmd() *cobra.Command {
	var (
		rpm, concurrency, perDay int64
		toolLimits               []string
		clearToolLimits          bool
	)
	cmd := &cobra.Command{
		Use:   "update NAME [--rpm N] [--concurrency N] [--calls-per-day N] [--tool-limit 'TOOL=rpm:N,...']... [--clear-tool-limits]",
		Short: "Change an MCP server's limits per key and per tool",
		Long: `Changes the limits of a registered MCP server; what is not named stays.
--tool-limit replaces the server's whole list of tool limits (repeat it for
several); --clear-tool-limits removes them. A limit of 0 is no limit.

  keygate mcp update github --tool-limit 'create_issue=rpm:10,concurrency:2,per_day:100' --tool-limit 'delete_*=per_day:5'
  keygate mcp update github --rpm 120 --clear-tool-limits

Refused calls get a JSON-RPC error (-32002) naming the tool, the limit and
when to retry, and never reach the server.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req adminapi.UpdateMCPServerRequest
			f := cmd.Flags()
			if f.Changed("rpm") {
				req.RPM = &rpm
			}
			if f.Changed("concurrency") {
				req.Concurrency = &concurrency
			}
			if f.Changed("calls-per-day") {
				req.CallsPerDay = &perDay
			}
			if clearToolLimits && len(toolLimits) > 0 {
				return errors.New("mcp update: give --tool-limit or --clear-tool-limits, not both")
			}
			if clearToolLimits || len(toolLimits) > 0 {
				limits := []adminapi.MCPToolLimit{}
				for _, tl := range toolLimits {
					l, err := adminapi.ParseToolLimit(tl)
					if err != nil {
						return fmt.Errorf("mcp update: --tool-limit: %w", err)
					}
					limits = append(limits, l)
				}
				req.ToolLimits = &limits
			}
			if req == (adminapi.UpdateMCPServerRequest{}) {
				return errors.New("mcp update: name what to change: --rpm, --concurrency, --calls-per-day, --tool-limit or --clear-tool-limits")
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			m, err := c.UpdateMCPServer(cmd.Context(), args[0], req)
			if err != nil {
				return explain(fmt.Errorf("mcp update %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Updated MCP server %s.\n", m.Name)
			return printMCPServer(cmd.OutOrStdout(), m)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&rpm, "rpm", 0, "tool calls per minute, per key (0: no limit)")
	f.Int64Var(&concurrency, "concurrency", 0, "tool calls in flight at once, per key (0: no limit)")
	f.Int64Var(&perDay, "calls-per-day", 0, "tool calls per day, per key (0: no limit)")
	f.StringArrayVar(&toolLimits, "tool-limit", nil, toolLimitUsage+"; replaces the server's tool limits")
	f.BoolVar(&clearToolLimits, "clear-tool-limits", false, "remove every tool limit of the server")
	return cmd
}

func (a *app) mcpListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List MCP servers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			ms, err := c.ListMCPServers(cmd.Context())
			if err != nil {
				return explain(fmt.Errorf("mcp list: %w", err), cred)
			}
			if ms == nil {
				ms = []adminapi.MCPServer{}
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), adminapi.MCPServerList{Servers: ms})
			}
			if len(ms) == 0 {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "No MCP servers yet. Add one with `keygate mcp add NAME --url URL --secret NAME` or `keygate mcp add NAME -- PROGRAM ARGS`.")
				return err
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tTRANSPORT\tTARGET\tAUTH\tCREATED")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Transport, mcpTarget(m), m.Auth, fmtTime(m.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

func (a *app) mcpShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show an MCP server (never its credential)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			m, err := c.GetMCPServer(cmd.Context(), args[0])
			if err != nil {
				return explain(fmt.Errorf("mcp show %s: %w", args[0], err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			return printMCPServer(cmd.OutOrStdout(), m)
		},
	}
}

func (a *app) mcpRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove an MCP server (the vault secrets it names stay)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteMCPServer(cmd.Context(), args[0]); err != nil {
				return explain(fmt.Errorf("mcp remove %s: %w", args[0], err), cred)
			}
			out := cmd.OutOrStdout()
			if a.json {
				out = cmd.ErrOrStderr()
			}
			_, err = fmt.Fprintf(out, "Removed MCP server %s.\n", args[0])
			return err
		},
	}
}

func (a *app) mcpAuthCmd() *cobra.Command {
	var revoke, noBrowser bool
	cmd := &cobra.Command{
		Use:   "auth NAME [--revoke]",
		Short: "Authorize keygate to call an OAuth MCP server as you (--auth oauth), or revoke it",
		Long: `Authorizes keygate at an MCP server registered with --auth oauth, as you:
it prints the keygate URL that starts the authorization and opens it in
your browser. Sign in to keygate's console in that browser as yourself; the
server's authorization page follows, then keygate keeps your tokens sealed
in its vault and refreshes them. Your keys then reach the server as you.

  keygate mcp auth notes            authorize (or authorize again)
  keygate mcp auth notes --revoke   delete your tokens at keygate`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			name := args[0]
			if revoke {
				if err := c.RevokeMCPAuthorization(cmd.Context(), name); err != nil {
					return explain(fmt.Errorf("mcp auth %s --revoke: %w", name, err), cred)
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "Deleted your authorization at MCP server %s; your keys' calls to it are refused until you run keygate mcp auth %s again.\n", name, name)
				return err
			}
			st, err := c.MCPAuthorization(cmd.Context(), name)
			if err != nil {
				return explain(fmt.Errorf("mcp auth %s: %w", name, err), cred)
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			if st.Authorized {
				fmt.Fprintf(cmd.ErrOrStderr(), "You have authorized MCP server %s already; opening the page again replaces that authorization.\n", name)
			}
			start := strings.TrimRight(c.BaseURL(), "/") + st.StartPath
			fmt.Fprintf(cmd.OutOrStdout(), "Open this URL in a browser signed in to keygate's console as yourself:\n\n  %s\n", start)
			if !noBrowser && a.io.OpenBrowser != nil {
				_ = a.io.OpenBrowser(start)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&revoke, "revoke", false, "delete your tokens at this server instead")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the URL")
	return cmd
}

func mcpTarget(m adminapi.MCPServer) string {
	if m.Transport == "stdio" {
		return strings.Join(m.Command, " ")
	}
	return m.URL
}

func printMCPServer(w io.Writer, m adminapi.MCPServer) error {
	rows := [][2]string{{"ID", m.ID}, {"Name", m.Name}, {"Transport", m.Transport}}
	if m.Transport == "stdio" {
		rows = append(rows, [2]string{"Command", strings.Join(m.Command, " ")})
		names := make([]string, 0, len(m.Env))
		for k := range m.Env {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			rows = append(rows, [2]string{"Env " + k, m.Env[k]})
		}
	} else {
		rows = append(rows, [2]string{"URL", m.URL}, [2]string{"Auth", m.Auth})
		if m.AuthHeader != "" {
			rows = append(rows, [2]string{"Header", m.AuthHeader})
		}
		if m.Secret != "" {
			rows = append(rows, [2]string{"Secret", m.Secret + " (in the vault; never shown)"})
		}
		if oa := m.Options.OAuth; oa != nil {
			if oa.TokenURL != "" {
				rows = append(rows, [2]string{"Token URL", oa.TokenURL})
			}
			if oa.ClientID != "" {
				rows = append(rows, [2]string{"Client ID", oa.ClientID})
			}
			if len(oa.Scopes) > 0 {
				rows = append(rows, [2]string{"Scopes", strings.Join(oa.Scopes, " ")})
			}
		}
		if m.Auth == "oauth" {
			rows = append(rows, [2]string{"Authorization", "each user's own: keygate mcp auth " + m.Name})
		}
		if m.AllowPrivate {
			rows = append(rows, [2]string{"Private addresses", "allowed"})
		}
	}
	o := m.Options
	lim := func(n int64) string {
		if n == 0 {
			return "none"
		}
		return fmt.Sprint(n)
	}
	rows = append(rows, [2]string{"Per key", fmt.Sprintf("rpm %s, concurrency %s, calls/day %s", lim(o.RPM), lim(o.Concurrency), lim(o.CallsPerDay))})
	for _, l := range o.ToolLimits {
		rows = append(rows, [2]string{"Tool limit", l.String() + " (per key)"})
	}
	if len(o.ApprovalRequired) > 0 {
		wait := o.ApprovalTimeout
		if wait == "" {
			wait = "5m"
		}
		rows = append(rows, [2]string{"Approval required", strings.Join(o.ApprovalRequired, ", ") + " (a call waits up to " + wait + ")"})
		if o.ApprovalWebhook != "" {
			rows = append(rows, [2]string{"Approval webhook", webhookHost(o.ApprovalWebhook) + " (asked beside the queue)"})
		}
	}
	rows = append(rows, [2]string{"Created", fmtTime(m.CreatedAt)})
	tw := newTable(w)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

// webhookHost is the scheme and host of a webhook URL, shown without its
// path and query, where a token may be.
func webhookHost(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return "(not a URL)"
}
