package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// envFileVar is one NAME=value from a dotenv file or, for references,
// from keygate's own environment.
type envFileVar struct {
	name, value string
	file        string // where it came from, for messages
}

// readEnvFiles reads dotenv files: NAME=value lines, # comments, an
// optional "export " and values in single or double quotes. Errors name
// the file and line, never a value.
func readEnvFiles(paths []string) ([]envFileVar, error) {
	var out []envFileVar
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("run: --env-file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] == '#' {
				continue
			}
			line = strings.TrimPrefix(line, "export ")
			name, val, ok := strings.Cut(line, "=")
			name = strings.TrimSpace(name)
			if !ok || !validEnvName(name) {
				return nil, fmt.Errorf("run: --env-file %s:%d: each line must be NAME=value with NAME a variable name", p, n)
			}
			val = strings.TrimSpace(val)
			switch {
			case len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"':
				uq, err := strconv.Unquote(val)
				if err != nil {
					return nil, fmt.Errorf("run: --env-file %s:%d: the value of %s is not a valid double-quoted string", p, n, name)
				}
				val = uq
			case len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'':
				val = val[1 : len(val)-1]
			default:
				if i := strings.Index(val, " #"); i >= 0 {
					val = strings.TrimSpace(val[:i])
				}
			}
			out = append(out, envFileVar{name: name, value: val, file: fmt.Sprintf("%s:%d", p, n)})
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("run: --env-file %s: %w", p, err)
		}
	}
	return out, nil
}

// environRefs lists the variables of keygate's own environment whose
// values are keygate references.
func (a *app) environRefs() []envFileVar {
	var out []envFileVar
	for _, kv := range a.io.Environ() {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(val, "keygate://") && validEnvName(name) {
			out = append(out, envFileVar{name: name, value: val, file: "the environment"})
		}
	}
	return out
}

func hasProviderRef(lists ...[]envFileVar) bool {
	for _, l := range lists {
		for _, v := range l {
			if strings.HasPrefix(v.value, refProvider) {
				return true
			}
		}
	}
	return false
}

// resolveRefs returns the variables of env files, with keygate references
// (there and in keygate's environment) resolved, and a function that
// revokes the short-lived keys provider references made.
func (a *app) resolveRefs(cmd *cobra.Command, c *adminclient.Client, fileVars []envFileVar, already []envVar, o runOptions, masks *maskSet) ([]envVar, func(), error) {
	var closers []func()
	closeAll := func() {
		for _, f := range closers {
			f()
		}
	}
	ctx := cmd.Context()
	// File variables win over the environment's.
	byName := map[string]envFileVar{}
	var order []string
	for _, v := range append(a.environRefs(), fileVars...) {
		if _, ok := byName[v.name]; !ok {
			order = append(order, v.name)
		}
		byName[v.name] = v
	}
	set := map[string]bool{}
	for _, v := range already {
		set[v.name] = true
	}
	for _, n := range order {
		set[n] = true
	}
	var out []envVar
	for _, n := range order {
		v := byName[n]
		switch {
		case strings.HasPrefix(v.value, refSecret):
			name, version := strings.TrimPrefix(v.value, refSecret), 0
			if nm, ver, ok := strings.Cut(name, "@"); ok {
				x, err := strconv.Atoi(ver)
				if err != nil || x < 1 {
					return nil, closeAll, fmt.Errorf("%s (from %s): the version after '@' must be a whole number of 1 or more", v.name, v.file)
				}
				name, version = nm, x
			}
			if err := adminapi.ValidSecretName(name); err != nil {
				return nil, closeAll, fmt.Errorf("%s (from %s): %w", v.name, v.file, err)
			}
			val, _, err := c.SecretValue(ctx, name, version)
			if err != nil {
				return nil, closeAll, fmt.Errorf("%s (from %s): reading secret %s: %w", v.name, v.file, name, err)
			}
			masks.add(val.Reveal())
			out = append(out, envVar{v.name, val})
		case strings.HasPrefix(v.value, refProvider):
			pname := strings.TrimPrefix(v.value, refProvider)
			p, err := c.GetProvider(ctx, pname)
			if err != nil {
				return nil, closeAll, fmt.Errorf("%s (from %s): provider %s: %w", v.name, v.file, pname, err)
			}
			tmpl := adminapi.Key{Name: "provider-" + slugSegment(pname), Env: firstNonEmpty(p.Env, "live"), AllowProviders: []string{pname}}
			gw, revoke, err := a.runKeyFrom(cmd, c, tmpl, o)
			if err != nil {
				return nil, closeAll, fmt.Errorf("%s (from %s): a key for provider %s: %w", v.name, v.file, pname, err)
			}
			closers = append(closers, revoke)
			masks.add(gw.cred.Reveal())
			masks.add(gw.key.Reveal())
			out = append(out, envVar{v.name, gw.cred})
			base, baseURL := envOpenAIBase, gw.root+"/v1"
			switch p.Dialect {
			case "anthropic":
				base, baseURL = envAnthropicBase, gw.root
			case "gemini":
				base, baseURL = "GOOGLE_GEMINI_BASE_URL", gw.root
			}
			if !set[base] {
				set[base] = true
				out = append(out, envVar{base, secret.New(baseURL)})
			}
		case strings.HasPrefix(v.value, "keygate://"):
			return nil, closeAll, fmt.Errorf("%s (from %s): keygate references are keygate://secret/NAME or keygate://provider/NAME", v.name, v.file)
		default:
			out = append(out, envVar{v.name, secret.New(v.value)})
		}
	}
	return out, closeAll, nil
}
