package cli

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// baseAllowed are the inherited variables a `keygate run` command gets
// without --keep-env: what a program needs to find its tools, its home,
// its terminal and its language, and nothing that grants access.
var baseAllowed = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "TMPDIR", "TZ",
	"TERM", "COLORTERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR",
	"LANG", "LANGUAGE", "LC_*",
	"XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS",
}

// proxyVars are the outbound proxy settings, passed unless their value
// carries a user name or password.
var proxyVars = []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"}

// credentialWords mark a variable name as a likely credential: such a
// variable is never passed without --keep-env, even when an allow-list
// pattern matches it.
var credentialWords = []string{"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "CREDENTIAL", "AUTH", "SESSION", "COOKIE", "PRIVATE", "CERT_PASS", "SAS", "DSN"}

// looksLikeCredential reports whether a variable's name or value suggests
// it grants access to something.
func looksLikeCredential(name, value string) bool {
	up := strings.ToUpper(name)
	for _, w := range credentialWords {
		for _, part := range strings.FieldsFunc(up, func(r rune) bool { return r == '_' || r == '-' }) {
			if strings.HasSuffix(part, w) {
				return true
			}
		}
	}
	if u, err := url.Parse(value); err == nil && u.User != nil && u.Host != "" {
		return true // a URL with a user name or password in it
	}
	return strings.HasPrefix(value, "kg_") || strings.HasPrefix(value, "sk-") || strings.HasPrefix(value, "ghp_") ||
		strings.HasPrefix(value, "github_pat_") || strings.HasPrefix(value, "AKIA") || strings.HasPrefix(value, "xox")
}

// envPatterns is a list of variable names, each possibly ending in '*'
// to match every name with that prefix.
type envPatterns []string

func (p envPatterns) match(name string) bool {
	for _, pat := range p {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if pat == name {
			return true
		}
	}
	return false
}

// parseKeepEnv checks the --keep-env values: variable names, comma
// separated or repeated, each possibly ending in '*'.
func parseKeepEnv(values []string) (envPatterns, error) {
	var out envPatterns
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			name := strings.TrimSuffix(p, "*")
			if p == "" || p == "*" || (name != "" && !validEnvName(name)) {
				return nil, fmt.Errorf("run: --keep-env %q: give variable names such as AWS_REGION, or a prefix and '*' such as 'AWS_*' (to pass everything use --inherit-env)", p)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// cleanEnv returns the part of base a command gets: the allow-list, proxy
// settings without credentials, and what keep names, with loopback added
// to NO_PROXY so the command reaches keygate's local gateway directly. It
// also returns the names it dropped.
func cleanEnv(base []string, keep envPatterns) (env, dropped []string) {
	allowed := envPatterns(baseAllowed)
	var sawProxy bool
	for _, kv := range base {
		name, val, _ := strings.Cut(kv, "=")
		switch {
		case name == EnvAdminToken:
			dropped = append(dropped, name)
		case keep.match(name):
			env = append(env, kv)
		case slices.Contains(proxyVars, name) && !looksLikeCredential("", val):
			sawProxy = true
			env = append(env, kv)
		case allowed.match(name) && !looksLikeCredential(name, val):
			env = append(env, kv)
		default:
			dropped = append(dropped, name)
		}
	}
	if sawProxy {
		env = withLoopbackNoProxy(env)
	}
	return env, dropped
}

// withLoopbackNoProxy adds 127.0.0.1, ::1 and localhost to NO_PROXY and
// no_proxy, so a command's requests to keygate's loopback gateway do not go
// through an outbound proxy.
func withLoopbackNoProxy(env []string) []string {
	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		i := slices.IndexFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
		if i < 0 {
			env = append(env, name+"=127.0.0.1,::1,localhost")
			continue
		}
		cur := strings.TrimPrefix(env[i], name+"=")
		if cur == "*" {
			continue
		}
		if cur != "" {
			cur += ","
		}
		env[i] = name + "=" + cur + "127.0.0.1,::1,localhost"
	}
	return env
}

// inheritWarning lists what --inherit-env passes, by name, the likely
// credentials first.
func inheritWarning(base []string) string {
	var creds, rest []string
	for _, kv := range base {
		name, val, _ := strings.Cut(kv, "=")
		if name == EnvAdminToken {
			continue
		}
		if looksLikeCredential(name, val) {
			creds = append(creds, name)
		} else {
			rest = append(rest, name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "warning: --inherit-env passes the command all %d variables of this environment", len(creds)+len(rest))
	if len(creds) > 0 {
		fmt.Fprintf(&b, ", including %d that look like credentials: %s", len(creds), strings.Join(creds, ", "))
	}
	if len(rest) > 0 {
		fmt.Fprintf(&b, "; the others: %s", strings.Join(rest, ", "))
	}
	b.WriteString("\nwarning: pass only what the command needs with --keep-env NAME instead\n")
	return b.String()
}
