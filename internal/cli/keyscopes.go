package cli

import (
	"fmt"
	"regexp"
	"strings"
	// Time zone data built in, so that --hours is checked the same way on
	// every machine, including those without a system zoneinfo database.
	_ "time/tzdata"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/policy"
)

// envRE is the form the admin API takes for environment tags: the <env> of
// a key's kg_<env>_ prefix, and the tag of a provider that only keys of
// that environment may use.
var envRE = regexp.MustCompile(`^[a-z][a-z0-9]{1,9}$`)

// checkEnv validates an environment tag given with flag, before any request.
func checkEnv(what, flag, env string) error {
	if !envRE.MatchString(env) {
		return fmt.Errorf("%s: %s %q is not valid: use 2 to 10 lower-case letters or digits, starting with a letter, as in prod, staging or live", what, flag, env)
	}
	if env == "admin" {
		return fmt.Errorf("%s: %s admin is reserved for admin credentials: choose another, such as prod or live", what, flag)
	}
	return nil
}

// ipsExample and hoursExample show the form of a scope flag in errors.
const (
	ipsExample   = `--allow-ip 10.0.0.0/8 or --allow-ip 2001:db8::/32`
	hoursExample = `--hours 'mon-fri 08:00-20:00 Europe/Berlin'`
)

// scopeFlagNames lists the scope flags of key update for messages.
const scopeFlagNames = "--allow-service, --clear-allow-services, --allow-tool, --clear-allow-tools, --allow-path, --clear-allow-paths, --allow-ip, --clear-allow-ips, --hours, --clear-hours, --client-cert, --clear-client-cert, --leak-action, --rotate-every, --rotate-grace, --deliver-to, --no-rotation"

// scopeFlags are the flags that restrict where, how and when a key may be
// used: its request paths, client networks and hours. key create and key
// update share them.
type scopeFlags struct {
	cmd      *cobra.Command
	update   bool
	paths    []string
	ips      []string
	services []string
	tools    []string
	hours    string
	cert     string
	leaks    string
	// Automatic rotation.
	rotateEvery, rotateGrace, deliverTo string
	// On key update only: lift the restriction instead of replacing it.
	clearPaths, clearIPs, clearHours, clearCert, noRotation, clearServices, clearTools bool
}

// addScopeFlags adds the scope flags to cmd; update adds the --clear-* flags
// and words the others as replacing the key's own.
func addScopeFlags(cmd *cobra.Command, update bool) *scopeFlags {
	sf := &scopeFlags{cmd: cmd, update: update}
	f := cmd.Flags()
	// On create a flag not given leaves the key unrestricted; on update it
	// leaves the key's own restriction as it is.
	pathsTail, ipsTail, hoursTail, servicesTail := " (default: any path)", " (default: anywhere)", " (default: any time)", " (default: none)"
	if update {
		pathsTail, ipsTail, hoursTail, servicesTail = "; replaces the key's list", "; replaces the key's list", "; replaces the key's windows", "; replaces the key's list"
	}
	f.StringArrayVar(&sf.services, "allow-service", nil, "passthrough service `NAME` the key may call through /proxy/NAME/; repeat or separate with commas. Services are never reachable without it"+servicesTail)
	f.StringArrayVar(&sf.tools, "allow-tool", nil, "MCP tool `SERVER/TOOL` the key may call at /mcp, a pattern as in 'github/*'; '!github/delete_*' denies; repeat. Tools are never reachable without it"+servicesTail)
	f.StringArrayVar(&sf.paths, "allow-path", nil, "path `RULE` the key may call, \"METHOD /path\" as in 'POST /v1/embeddings', 'GET /v1/models' or '* /v1/*'; repeat for more"+pathsTail)
	f.StringArrayVar(&sf.ips, "allow-ip", nil, "client network (`CIDR`) or address the key may be used from, IPv4 or IPv6, as in 10.0.0.0/8; repeat or separate with commas"+ipsTail)
	f.StringVar(&sf.hours, "hours", "", "time `WINDOWS` in which the key works, as in 'mon-fri 08:00-20:00 Europe/Berlin'; separate several with ';'"+hoursTail)
	f.StringVar(&sf.rotateEvery, "rotate-every", "", "rotate the key automatically this often (`DURATION`, as in 30d), delivering the successor to --deliver-to")
	f.StringVar(&sf.rotateGrace, "rotate-grace", "", "how long a rotated-out key keeps working (default 24h)")
	f.StringVar(&sf.deliverTo, "deliver-to", "", "where a rotated key goes: secret:NAME (a vault secret the app reads with keygate run) or webhook:https://...")
	f.StringVar(&sf.cert, "client-cert", "", "require mutual TLS with this client certificate: `uri:SPIFFE-ID` (as in uri:spiffe://example.org/agent) or cn:NAME")
	f.StringVar(&sf.leaks, "leak-action", "", "what the credential check does with credentials in this key's requests and answers: block, redact or alert (`ACTION`); '' (on update) returns to the global leaks: policy")
	if update {
		f.BoolVar(&sf.noRotation, "no-rotation", false, "stop rotating the key automatically")
		f.BoolVar(&sf.clearCert, "clear-client-cert", false, "stop requiring a client certificate")
		f.BoolVar(&sf.clearPaths, "clear-allow-paths", false, "let the key call any path again")
		f.BoolVar(&sf.clearServices, "clear-allow-services", false, "let the key reach no passthrough service")
		f.BoolVar(&sf.clearTools, "clear-allow-tools", false, "let the key call no MCP tool")
		f.BoolVar(&sf.clearIPs, "clear-allow-ips", false, "let the key be used from any address again")
		f.BoolVar(&sf.clearHours, "clear-hours", false, "let the key work at any time again")
	}
	return sf
}

// scopeEdit is a checked set of scopes from the flags. A nil field was not
// given; an empty list or string lifts that restriction.
type scopeEdit struct {
	paths, ips *[]string
	services   *[]string
	tools      *[]string
	hours      *string
	cert       *string
	leaks      *string
	rotation   *adminapi.Rotation
}

// empty reports whether the flags asked for no scope at all.
func (e scopeEdit) empty() bool {
	return e.paths == nil && e.ips == nil && e.hours == nil && e.cert == nil && e.rotation == nil && e.services == nil && e.tools == nil && e.leaks == nil
}

// edit checks the scope flags with keygate's own parsers and returns the
// scopes they ask for, so that a bad value fails before any request. what
// names the command in errors, as in "key create etl".
func (sf *scopeFlags) edit(what string) (scopeEdit, error) {
	var e scopeEdit
	f := sf.cmd.Flags()

	pathsSet := f.Changed("allow-path")
	switch {
	case pathsSet && sf.clearPaths:
		return e, fmt.Errorf("%s: give either --allow-path or --clear-allow-paths, not both", what)
	case pathsSet:
		paths := make([]string, 0, len(sf.paths))
		for _, p := range sf.paths {
			paths = append(paths, strings.TrimSpace(p))
		}
		if _, err := policy.ParsePathRules(paths); err != nil {
			return e, fmt.Errorf("%s: --allow-path: %s", what, noPolicyPrefix(err))
		}
		e.paths = &paths
	case sf.clearPaths:
		e.paths = &[]string{}
	}

	servicesSet := f.Changed("allow-service")
	switch {
	case servicesSet && sf.clearServices:
		return e, fmt.Errorf("%s: give either --allow-service or --clear-allow-services, not both", what)
	case servicesSet:
		services := splitList(sf.services)
		if len(services) == 0 {
			return e, fmt.Errorf("%s: --allow-service is empty: name a service, as in --allow-service github%s", what, sf.clearHint("--clear-allow-services", "with no service"))
		}
		for _, s := range services {
			if err := passthrough.CheckName(s); err != nil {
				return e, fmt.Errorf("%s: --allow-service: %w", what, err)
			}
		}
		e.services = &services
	case sf.clearServices:
		e.services = &[]string{}
	}

	toolsSet := f.Changed("allow-tool")
	switch {
	case toolsSet && sf.clearTools:
		return e, fmt.Errorf("%s: give either --allow-tool or --clear-allow-tools, not both", what)
	case toolsSet:
		var tools []string
		for _, t := range sf.tools {
			if t = strings.TrimSpace(t); t != "" {
				tools = append(tools, t)
			}
		}
		if len(tools) == 0 {
			return e, fmt.Errorf("%s: --allow-tool is empty: name a tool, as in --allow-tool 'github/*'%s", what, sf.clearHint("--clear-allow-tools", "with no tool"))
		}
		for _, t := range tools {
			if err := authz.ValidToolPattern(t); err != nil {
				return e, fmt.Errorf("%s: --allow-tool: %w", what, err)
			}
		}
		e.tools = &tools
	case sf.clearTools:
		e.tools = &[]string{}
	}

	ipsSet := f.Changed("allow-ip")
	switch {
	case ipsSet && sf.clearIPs:
		return e, fmt.Errorf("%s: give either --allow-ip or --clear-allow-ips, not both", what)
	case ipsSet:
		ips := splitList(sf.ips)
		if len(ips) == 0 {
			return e, fmt.Errorf("%s: --allow-ip is empty: give a network, as in %s%s", what, ipsExample, sf.clearHint("--clear-allow-ips", "from any address"))
		}
		if _, err := policy.ParseCIDRs(ips); err != nil {
			return e, fmt.Errorf("%s: --allow-ip: %s", what, noPolicyPrefix(err))
		}
		e.ips = &ips
	case sf.clearIPs:
		e.ips = &[]string{}
	}

	hoursSet := f.Changed("hours")
	switch {
	case hoursSet && sf.clearHours:
		return e, fmt.Errorf("%s: give either --hours or --clear-hours, not both", what)
	case hoursSet:
		hours := strings.TrimSpace(sf.hours)
		if hours == "" {
			return e, fmt.Errorf("%s: --hours is empty: give time windows, as in %s%s", what, hoursExample, sf.clearHint("--clear-hours", "at any time"))
		}
		if _, err := policy.ParseWindows(hours); err != nil {
			return e, fmt.Errorf("%s: --hours: %s", what, noPolicyPrefix(err))
		}
		e.hours = &hours
	case sf.clearHours:
		e.hours = new(string)
	}

	certSet := f.Changed("client-cert")
	switch {
	case certSet && sf.clearCert:
		return e, fmt.Errorf("%s: give either --client-cert or --clear-client-cert, not both", what)
	case certSet:
		c := strings.TrimSpace(sf.cert)
		if err := adminapi.ValidClientCertMatch(c); err != nil {
			return e, fmt.Errorf("%s: --client-cert: %w", what, err)
		}
		e.cert = &c
	case sf.clearCert:
		e.cert = new(string)
	}

	if f.Changed("leak-action") {
		a := strings.TrimSpace(sf.leaks)
		if err := adminapi.ValidLeakAction(a); err != nil {
			return e, fmt.Errorf("%s: --%w", what, err)
		}
		e.leaks = &a
	}

	rotSet := f.Changed("rotate-every") || f.Changed("rotate-grace") || f.Changed("deliver-to")
	switch {
	case rotSet && sf.noRotation:
		return e, fmt.Errorf("%s: give either the rotation flags or --no-rotation, not both", what)
	case rotSet:
		if sf.rotateEvery == "" || sf.deliverTo == "" {
			return e, fmt.Errorf("%s: automatic rotation needs --rotate-every DURATION and --deliver-to secret:NAME or webhook:URL together", what)
		}
		for _, d := range []struct{ flag, v string }{{"--rotate-every", sf.rotateEvery}, {"--rotate-grace", sf.rotateGrace}} {
			if d.v == "" {
				continue
			}
			if _, err := adminapi.ParseDuration(d.v); err != nil {
				return e, fmt.Errorf("%s: %s: %w", what, d.flag, err)
			}
		}
		e.rotation = &adminapi.Rotation{Every: strings.TrimSpace(sf.rotateEvery), Grace: strings.TrimSpace(sf.rotateGrace), DeliverTo: strings.TrimSpace(sf.deliverTo)}
	case sf.noRotation:
		e.rotation = &adminapi.Rotation{}
	}
	return e, nil
}

// scopeArgs wraps a command's argument check: when there are stray
// arguments, it says that a path rule or time window with spaces needs
// quotes, the likely cause ("--allow-path POST /v1/embeddings").
func scopeArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n && (cmd.Flags().Changed("allow-path") || cmd.Flags().Changed("hours")) {
			return fmt.Errorf("%s: unexpected argument %q: quote each --allow-path rule and the --hours windows, as in --allow-path 'POST /v1/embeddings' %s",
				cmd.CommandPath(), args[n], hoursExample)
		}
		if n == 0 {
			return cobra.NoArgs(cmd, args)
		}
		return cobra.ExactArgs(n)(cmd, args)
	}
}

// clearHint tells the user of key update how to lift a restriction instead.
func (sf *scopeFlags) clearHint(flag, how string) string {
	if !sf.update {
		return ""
	}
	return fmt.Sprintf(", or use %s to let the key be used %s", flag, how)
}

// toCreate sets the scopes of e on a key creation request.
func (e scopeEdit) toCreate(req *adminapi.CreateKeyRequest) {
	if e.paths != nil {
		req.AllowPaths = *e.paths
	}
	if e.tools != nil {
		req.AllowTools = *e.tools
	}
	if e.services != nil {
		req.AllowServices = *e.services
	}
	if e.ips != nil {
		req.AllowIPs = *e.ips
	}
	if e.hours != nil {
		req.Hours = *e.hours
	}
	if e.cert != nil {
		req.ClientCert = *e.cert
	}
	if e.leaks != nil {
		req.LeakAction = *e.leaks
	}
	req.Rotation = e.rotation
}

// toUpdate sets the scopes of e on a key update request.
func (e scopeEdit) toUpdate(req *adminapi.UpdateKeyRequest) {
	req.AllowPaths, req.AllowIPs, req.Hours, req.ClientCert, req.AllowServices, req.AllowTools = e.paths, e.ips, e.hours, e.cert, e.services, e.tools
	req.LeakAction = e.leaks
	req.Rotation = e.rotation
}

// noPolicyPrefix drops the "policy: " that internal/policy puts before its
// errors: the flag's name says it better on the command line.
func noPolicyPrefix(err error) string { return strings.TrimPrefix(err.Error(), "policy: ") }

// keyStatus is the status the command line shows for k: the admin API's,
// or "suspended" for a key that would be active but is suspended.
func keyStatus(k adminapi.Key) string {
	if k.SuspendedAt != nil && k.Status == "active" {
		return "suspended"
	}
	return k.Status
}

// fmtHours renders a key's time windows, or none when it has none.
func fmtHours(hours, none string) string {
	if strings.TrimSpace(hours) == "" {
		return none
	}
	return hours
}
