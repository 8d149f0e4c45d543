package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// ExitCodeError carries the exit code of the command `keygate run` ran when
// it did not succeed. keygate exits with Code and prints nothing more: the
// command has already said what went wrong.
type ExitCodeError struct {
	Code int // the command's exit code, or 128+N after it was killed by signal N
}

// Error says which exit code the command ended with.
func (e *ExitCodeError) Error() string {
	return fmt.Sprintf("the command exited with code %d", e.Code)
}

// The variables `keygate run --key` sets for the command.
const (
	envOpenAIKey     = "OPENAI_API_KEY"
	envOpenAIBase    = "OPENAI_BASE_URL"
	envAnthropicKey  = "ANTHROPIC_API_KEY"
	envAnthropicBase = "ANTHROPIC_BASE_URL"
)

// A --key credential is named KEYNAME + runKeySuffix + 6 random characters,
// with KEYNAME shortened so the whole fits keygate's 64-character key names.
const (
	runKeySuffix  = ".run-"
	runKeyRandLen = 6
	maxKeyNameLen = 64
)

// defaultRunKeyTTL is how long a --key credential lives unless --ttl says otherwise.
const defaultRunKeyTTL = "1h"

// revokeTimeout bounds the revocation of a --key credential after the command ends.
const revokeTimeout = 10 * time.Second

// forwardedSignals are passed on to the command while it runs.
var forwardedSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// envVar is one variable `keygate run` adds to the command's environment.
type envVar struct {
	name  string
	value secret.String
}

// secretRef is one --secret ENV=NAME[@VERSION].
type secretRef struct {
	env, name string
	version   int // 0 for the current version
}

// parseSecretRef parses the n-th --secret value. Its errors name the flag by
// position and never repeat the value, which a person may have confused
// with the secret itself.
func parseSecretRef(n int, spec string) (secretRef, error) {
	env, ref, ok := strings.Cut(spec, "=")
	if !ok || ref == "" {
		return secretRef{}, fmt.Errorf("run: --secret #%d must be ENV=NAME or ENV=NAME@VERSION, as in DB_PASSWORD=db/password", n)
	}
	if !validEnvName(env) {
		return secretRef{}, fmt.Errorf("run: --secret #%d: the part before '=' must be an environment variable name such as DB_PASSWORD (letters, digits and '_', not starting with a digit)", n)
	}
	r := secretRef{env: env, name: ref}
	if name, ver, ok := strings.Cut(ref, "@"); ok {
		v, err := strconv.Atoi(ver)
		if err != nil || v < 1 {
			return secretRef{}, fmt.Errorf("run: --secret %s=...: the version after '@' must be a whole number of 1 or more, as in %s=%s@3", env, env, name)
		}
		r.name, r.version = name, v
	}
	if err := adminapi.ValidSecretName(r.name); err != nil {
		return secretRef{}, fmt.Errorf("run: --secret %s=...: %w", env, err)
	}
	return r, nil
}

func (a *app) runCmd() *cobra.Command {
	var (
		specs, envFiles, keepEnv    []string
		keyRef, ttl, gateway, agent string
		maxSpend                    string
		maxRequests                 int64
		printConfig, inherit        bool
	)
	cmd := &cobra.Command{
		Use:   "run [--secret ENV=NAME[@VERSION]]... [--env-file FILE]... [--key KEYNAME [--agent NAME] [--ttl 1h]] -- COMMAND [ARGS...]",
		Short: "Run a command, such as a coding agent, with secrets or a short-lived keygate credential and a clean environment",
		Long: `Runs COMMAND with a clean environment plus the variables asked for.
Standard input, output and error pass through, and so do SIGINT and SIGTERM;
keygate exits with the command's exit code (128+N if a signal N killed it).
Every secret is fetched before the command starts; if one cannot be, the
command does not start.

The command gets PATH, HOME, USER, SHELL, TERM, LANG, LC_*, TZ, TMPDIR, the
XDG directories, CA bundle settings and proxy settings (not one with a
password in it; NO_PROXY gains 127.0.0.1 and localhost), and nothing else of
keygate's environment: no AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN or
OPENAI_API_KEY the shell had. --keep-env NAME passes one more (NAME* for a
prefix; repeat or separate with commas). --inherit-env passes everything, as
keygate did before, and warns with the names it passes. KEYGATE_ADMIN_TOKEN
never reaches the command.

Every secret value the run injects, and every keygate credential it makes, is
concealed in the command's output as it streams. When keygate's input and
output are a terminal, the command runs on a terminal of its own whose
output keygate masks, so interactive agents work as usual (its standard error
then shares that terminal).

--secret ENV=NAME[@VERSION] sets ENV to the value of the secret NAME (its
current version unless @VERSION is given). Repeat it for more secrets.

--env-file FILE adds the variables of a dotenv file (NAME=value lines, #
comments, optional "export "). A value that is a keygate reference, in the
file or in keygate's own environment, is resolved: keygate://secret/NAME
[@VERSION] becomes the secret's value, and keygate://provider/NAME a
short-lived keygate key that may use only that provider, served like --key's
(the provider's base-URL variable, OPENAI_BASE_URL or ANTHROPIC_BASE_URL, is
set too unless given). "keygate scan --import --rewrite" writes these
references in place of the credentials it finds.

--key KEYNAME gives the command, such as a coding agent, access to the
gateway and never an upstream provider key. keygate run makes a short-lived
keygate key with the same environment, allowed models and providers and
limits as KEYNAME (named KEYNAME.run-XXXXXX, expiring after --ttl, 1h by
default, and revoked when the command exits), keeps it to itself, and serves
the command a gateway on loopback with a credential that works only there
and only while the command runs. Requests go on to the real gateway with
15-minute access tokens exchanged for the key and refreshed before they
expire. With a gateway that issues no tokens, the command gets the
short-lived key and the gateway's own address. GATEWAY is --gateway, else
KEYGATE_GATEWAY_URL, else the address keygate reports. --max-requests N and
--max-spend AMOUNT cap the whole run.

--agent NAME (auto by default: chosen from the command's name) sets the
gateway and credential the way the agent reads them:
  claude    Claude Code: a settings file passed with --settings whose
            apiKeyHelper prints a credential renewed every few minutes, and
            ANTHROPIC_BASE_URL pinned there and in the environment
  codex     Codex CLI: a CODEX_HOME for the run whose config.toml makes
            keygate the model provider (-c repeats it), OPENAI_API_KEY
  gemini    Gemini CLI: a GEMINI_CLI_HOME for the run whose settings select
            API-key authentication, GOOGLE_GEMINI_BASE_URL, GEMINI_API_KEY
  opencode  opencode: OPENCODE_CONFIG_CONTENT with both providers' baseURL
  aider     Aider: OPENAI_API_BASE and --openai-api-base
  openclaw, generic: OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL,
            ANTHROPIC_API_KEY
Files a profile writes live in a 0700 directory removed when the command
ends (or by the next keygate run, if keygate itself was killed). The
arguments a profile adds are what keep a repository's own settings from
moving the agent's base URL. --print-config shows what a profile sets.

  keygate run --secret DB_PASSWORD=db/password -- ./server --port 8080
  keygate run --key agents --max-requests 500 --max-spend 5usd -- claude
  keygate run --key agents -- codex exec "fix the failing test"
  keygate run --agent gemini --print-config
  keygate run --secret STRIPE_KEY=payments/stripe@3 -- sh -c 'deploy --key "$STRIPE_KEY"'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !printConfig {
				return errors.New("run: no command given: put it after --, as in `keygate run --secret DB_PASSWORD=db/password -- ./server`")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			keep, err := parseKeepEnv(keepEnv)
			if err != nil {
				return err
			}
			prof, err := pickProfile(agent, args)
			if err != nil {
				return err
			}
			if printConfig {
				return a.printAgentConfig(cmd, prof, args)
			}
			if inherit && len(keep) > 0 {
				return errors.New("run: --inherit-env passes everything already: drop --keep-env, or drop --inherit-env to pass only what --keep-env names")
			}
			o := runOptions{ttl: ttl, gateway: gateway}
			if o.maxRequests, o.maxSpend, err = parseRunLimits(maxRequests, maxSpend); err != nil {
				return err
			}
			fileVars, err := readEnvFiles(envFiles)
			if err != nil {
				return err
			}
			refs, err := a.checkRunFlags(cmd, specs, keyRef, ttl, gateway, fileVars)
			if err != nil {
				return err
			}
			if keyRef == "" {
				if cmd.Flags().Changed("agent") && agent != agentAuto {
					return fmt.Errorf("run: --agent %s needs --key KEYNAME: the key whose scopes and limits the run's short-lived credential copies", agent)
				}
				if o.maxRequests > 0 || o.maxSpend != nil {
					return errors.New("run: --max-requests and --max-spend limit the run's short-lived key: add --key KEYNAME")
				}
			}
			c, cred, err := a.client(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			masks := &maskSet{}
			var vars []envVar
			for _, r := range refs {
				v, _, err := c.SecretValue(ctx, r.name, r.version)
				if err != nil {
					return explain(fmt.Errorf("run: --secret %s: reading secret %s: %w\nthe command was not started", r.env, r.name, err), cred)
				}
				masks.add(v.Reveal())
				vars = append(vars, envVar{name: r.env, value: v})
			}
			if keyRef != "" {
				gw, revoke, err := a.runKey(cmd, c, keyRef, o)
				if err != nil {
					return explain(fmt.Errorf("run: --key %s: %w\nthe command was not started", keyRef, err), cred)
				}
				defer revoke()
				masks.add(gw.cred.Reveal())
				masks.add(gw.key.Reveal())
				setup, stop, err := a.setupAgent(cmd, prof, gw, args, masks)
				defer stop()
				if err != nil {
					return fmt.Errorf("run: --agent %s: %w\nthe command was not started", prof.name, err)
				}
				vars = append(vars, setup.vars...)
				args = setup.command
			}
			refVars, closeRefs, err := a.resolveRefs(cmd, c, fileVars, vars, o, masks)
			defer closeRefs()
			if err != nil {
				return explain(fmt.Errorf("run: %w\nthe command was not started", err), cred)
			}
			vars = append(vars, refVars...)
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("run: interrupted before the command started: %w", err)
			}
			base := a.io.Environ()
			if inherit {
				fmt.Fprint(cmd.ErrOrStderr(), inheritWarning(base))
			} else {
				base, _ = cleanEnv(base, keep)
			}
			return runChild(cmd, args, childEnv(base, vars), masks)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // everything from COMMAND on belongs to COMMAND
	f.StringArrayVar(&specs, "secret", nil, "set ENV to the value of the secret NAME, given as `ENV=NAME[@VERSION]`; repeatable")
	f.StringArrayVar(&envFiles, "env-file", nil, "add the variables of the dotenv `FILE`, resolving keygate:// references; repeatable")
	f.StringVar(&keyRef, "key", "", "give the command a short-lived keygate key modelled on the key `KEYNAME`")
	f.StringVar(&ttl, "ttl", defaultRunKeyTTL, "`DURATION` the --key credential lives at most, as in 30m or 2h")
	f.StringVar(&gateway, "gateway", "", "the gateway's base `URL` for --key (env "+EnvGatewayURL+"; default: the one keygate reports)")
	f.StringVar(&agent, "agent", agentAuto, "the agent profile for --key: `NAME` is one of "+strings.Join(agentNames(), ", "))
	f.BoolVar(&printConfig, "print-config", false, "print what the agent profile would set, without secrets, and start nothing")
	f.StringArrayVar(&keepEnv, "keep-env", nil, "also pass the inherited variable `NAME` (or every NAME* with a trailing '*'); repeatable, comma-separated")
	f.BoolVar(&inherit, "inherit-env", false, "pass the whole environment, credentials included (a warning lists them)")
	f.Int64Var(&maxRequests, "max-requests", 0, "refuse the run's requests after `N` of them")
	f.StringVar(&maxSpend, "max-spend", "", "refuse the run's requests once it has spent `AMOUNT`, as in 5usd")
	return cmd
}

// checkRunFlags validates everything `keygate run` can check before a request.
func (a *app) checkRunFlags(cmd *cobra.Command, specs []string, keyRef, ttl, gateway string, fileVars []envFileVar) ([]secretRef, error) {
	if len(specs) == 0 && keyRef == "" && len(fileVars) == 0 && len(a.environRefs()) == 0 {
		return nil, errors.New("run: nothing to add to the environment: pass --secret ENV=NAME, --env-file FILE or --key KEYNAME")
	}
	set := map[string]string{}
	for _, v := range fileVars {
		set[v.name] = "--env-file " + v.file
	}
	if keyRef != "" {
		if _, err := adminapi.ParseDuration(ttl); err != nil {
			return nil, fmt.Errorf("run: --ttl: %w", err)
		}
		if gateway != "" {
			gw, err := gatewayURL(gateway)
			if err != nil {
				return nil, fmt.Errorf("run: --gateway: %w", err)
			}
			// Checked again, with a warning under --insecure-http, once the
			// gateway is settled; here only to fail before any request.
			if u, _ := url.Parse(gw); !a.insecureHTTP && adminclient.CheckCleartext(u) != nil {
				return nil, fmt.Errorf("run: --gateway: %w", a.checkCleartext(cmd, u, runKeyWhat, gatewayFix))
			}
		}
		for _, v := range []string{envOpenAIKey, envOpenAIBase, envAnthropicKey, envAnthropicBase} {
			if by, ok := set[v]; ok {
				return nil, fmt.Errorf("run: %s is set twice, by --key and by %s: set each variable once", v, by)
			}
			set[v] = "--key"
		}
	} else if !hasProviderRef(fileVars, a.environRefs()) {
		for _, flag := range []string{"ttl", "gateway"} {
			if cmd.Flags().Changed(flag) {
				return nil, fmt.Errorf("run: --%s goes with --key KEYNAME or a keygate://provider/ reference", flag)
			}
		}
	}
	var refs []secretRef
	for i, spec := range specs {
		r, err := parseSecretRef(i+1, spec)
		if err != nil {
			return nil, err
		}
		if by, ok := set[r.env]; ok {
			return nil, fmt.Errorf("run: %s is set twice, by --secret and by %s: set each variable once", r.env, by)
		}
		set[r.env] = "--secret " + r.env
		refs = append(refs, r)
	}
	return refs, nil
}

// What `keygate run --key` sends the gateway, and how to reach it over
// HTTPS, for checkCleartext.
const (
	runKeyWhat = "the run's keygate key"
	gatewayFix = "point --gateway (or " + EnvGatewayURL + ") at the gateway's https:// address"
)

// reachableGateway turns the gateway URL keygate reports, the address its
// gateway listener is bound to, into one to use from here, given the admin
// URL keygate was reached at. An unspecified host (0.0.0.0, ::) means every
// address of keygate's machine, so the admin URL's host is used. A loopback
// host reported by a keygate on another machine is refused: here it would
// name this machine, and the key would go to whatever listens on it.
func reachableGateway(gw, adminURL string) (string, error) {
	g, err := url.Parse(gw)
	if err != nil {
		return "", err
	}
	adm, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	host, port := g.Hostname(), g.Port()
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		switch h := adm.Hostname(); {
		case port != "":
			g.Host = net.JoinHostPort(h, port)
		case strings.Contains(h, ":"):
			g.Host = "[" + h + "]"
		default:
			g.Host = h
		}
		return strings.TrimRight(g.String(), "/"), nil
	}
	if adminclient.IsLoopbackHost(host) && !adminclient.IsLoopbackHost(adm.Hostname()) {
		return "", fmt.Errorf("keygate reports its gateway at %s, an address only keygate's own machine can reach, "+
			"but its admin API is at %s: pass the gateway's address as this machine reaches it with --gateway URL or %s", gw, adm.Host, EnvGatewayURL)
	}
	return gw, nil
}

// gatewayURL checks a gateway base URL and returns it without a trailing slash.
func gatewayURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("gateway URL %q is not valid: use http://HOST:PORT or https://HOST:PORT, as in http://127.0.0.1:8787", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// runKey creates the short-lived keygate key for --key and returns how
// the command reaches the gateway with it, and a function that revokes it.
func (a *app) runKey(cmd *cobra.Command, c *adminclient.Client, ref string, o runOptions) (runGateway, func(), error) {
	tmpl, err := c.GetKey(cmd.Context(), ref)
	if err != nil {
		return runGateway{}, nil, err
	}
	if tmpl.Status != "" && tmpl.Status != "active" {
		return runGateway{}, nil, fmt.Errorf("key %s is %s: model the credential on an active key", tmpl.Name, tmpl.Status)
	}
	return a.runKeyFrom(cmd, c, tmpl, o)
}

// runKeyFrom creates a short-lived keygate key with the scopes of tmpl,
// and the run's limits on top of its own.
func (a *app) runKeyFrom(cmd *cobra.Command, c *adminclient.Client, tmpl adminapi.Key, o runOptions) (runGateway, func(), error) {
	ctx := cmd.Context()
	gw := o.gateway
	if gw == "" {
		gw = strings.TrimSpace(a.io.Getenv(EnvGatewayURL))
	}
	reported := gw == ""
	if reported {
		st, err := c.Status(ctx)
		if err != nil {
			return runGateway{}, nil, fmt.Errorf("asking keygate for its gateway URL: %w", err)
		}
		if gw = st.GatewayURL; gw == "" {
			return runGateway{}, nil, fmt.Errorf("keygate did not report its gateway URL: pass --gateway URL or set %s", EnvGatewayURL)
		}
	}
	gw, err := gatewayURL(gw)
	if err != nil {
		return runGateway{}, nil, fmt.Errorf("%w: pass --gateway URL or set %s", err, EnvGatewayURL)
	}
	if reported {
		if gw, err = reachableGateway(gw, c.BaseURL()); err != nil {
			return runGateway{}, nil, err
		}
	}
	u, _ := url.Parse(gw)
	if err := a.checkCleartext(cmd, u, runKeyWhat, gatewayFix); err != nil {
		return runGateway{}, nil, err
	}
	base := tmpl.Name
	if n := maxKeyNameLen - len(runKeySuffix) - runKeyRandLen; len(base) > n {
		base = base[:n]
	}
	created, err := c.CreateKey(ctx, adminapi.CreateKeyRequest{
		Name:           base + runKeySuffix + strings.ToLower(rand.Text()[:runKeyRandLen]),
		Env:            tmpl.Env,
		AllowModels:    tmpl.AllowModels,
		AllowProviders: tmpl.AllowProviders,
		AllowServices:  tmpl.AllowServices,
		AllowPaths:     tmpl.AllowPaths,
		AllowIPs:       tmpl.AllowIPs,
		Hours:          tmpl.Hours,
		Limits:         o.limits(tmpl.Limits),
		Group:          tmpl.Group,
		ClientCert:     tmpl.ClientCert,
		ExpiresIn:      strings.TrimSpace(o.ttl),
	})
	if err != nil {
		return runGateway{}, nil, fmt.Errorf("creating the short-lived key: %w", err)
	}
	k := created.Key
	revoke := func() {
		// The command has ended, or keygate was interrupted: the request
		// must go out even though the command's context may be cancelled.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
		defer cancel()
		if _, err := c.RevokeKey(rctx, k.ID); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: could not revoke the short-lived key %s (%s): %v\n"+
				"warning: revoke it with `keygate key revoke %s`; otherwise it stops working at %s\n",
				k.Name, k.ID, err, k.ID, fmtTimePtr(k.ExpiresAt, "-"))
		}
	}
	key := secret.New(created.Secret)
	// Preferred: the command gets a loopback gateway and a credential that
	// works only there; keygate run holds the key and sends short-lived
	// access tokens, refreshed before they expire.
	if proxy, err := startTokenProxy(ctx, gw, key, a.resolvedCA(cmd)); err == nil {
		return runGateway{root: proxy.URL(), cred: secret.New(proxy.local), key: key, proxy: proxy},
			func() { proxy.Close(); revoke() }, nil
	}
	// A gateway that issues no tokens: hand over the short-lived key itself.
	return runGateway{root: gw, cred: key, key: key}, revoke, nil
}

// childEnv returns base without the variables in vars and without the admin
// credential, followed by vars.
func childEnv(base []string, vars []envVar) []string {
	drop := map[string]bool{EnvAdminToken: true}
	for _, v := range vars {
		drop[v.name] = true
	}
	env := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			env = append(env, kv)
		}
	}
	for _, v := range vars {
		env = append(env, v.name+"="+v.value.Reveal())
	}
	return env
}

// runChild starts args with env, passes standard streams and SIGINT and
// SIGTERM on to it, and waits for it to end. What it prints has every
// value of masks concealed, as it streams; on a terminal the command gets
// a terminal of its own (a pseudo-terminal whose output keygate masks),
// so interactive programs work as usual. It returns nil when the command
// succeeded and an *ExitCodeError when it did not.
func runChild(cmd *cobra.Command, args, env []string, masks *maskSet) error {
	child := exec.Command(args[0], args[1:]...)
	child.Env = env
	stdin, stdout, stderr := cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	finish := func() {}
	switch {
	case masks.empty():
		child.Stdin, child.Stdout, child.Stderr = stdin, stdout, stderr
	case isTerminalFile(stdin) && isTerminalFile(stdout):
		f, err := startOnTerminal(child, stdin.(*os.File), stdout, masks)
		if err != nil {
			return fmt.Errorf("run: starting %s: %w", args[0], err)
		}
		finish = f
	default:
		mo, me := newMasker(stdout, masks), newMasker(stderr, masks)
		child.Stdin, child.Stdout, child.Stderr = stdin, mo, me
		// A process the command left behind may hold its output open;
		// keygate stops waiting for it a little after the command ends.
		child.WaitDelay = childWaitDelay
		finish = func() { mo.Close(); me.Close() }
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if child.Process == nil {
		if err := child.Start(); err != nil {
			return fmt.Errorf("run: starting %s: %w", args[0], err)
		}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = child.Process.Signal(s) // it may have just exited
			case <-done:
				return
			}
		}
	}()
	err := child.Wait()
	close(done)
	finish()

	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return nil
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitCodeError{Code: 128 + int(ws.Signal())}
		}
		return &ExitCodeError{Code: exitErr.ExitCode()}
	default:
		return fmt.Errorf("run: %s: %w", args[0], err)
	}
}

// childWaitDelay is how long keygate waits for a finished command's
// output to close.
const childWaitDelay = 2 * time.Second
