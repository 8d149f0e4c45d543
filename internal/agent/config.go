package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/keygate/keygate/internal/adminclient"
)

// Config is what an agent does, read from YAML (keygate agent --config).
type Config struct {
	// Gateway is the keygate gateway's URL, such as
	// https://keygate.keygate.svc:8787.
	Gateway string `yaml:"gateway"`
	// CAFile is a PEM file of the CAs to trust for the gateway's
	// certificate, besides the system's.
	CAFile string `yaml:"ca_file"`
	// InsecureHTTP allows a plain http:// gateway on another machine, for
	// a network trusted to protect the tokens (a mesh that encrypts every
	// connection). Loopback needs no permission.
	InsecureHTTP bool `yaml:"insecure_http"`
	// Identity is where the workload's identity token comes from.
	Identity Identity `yaml:"identity"`
	// Outputs are the files written, each time the token is renewed.
	Outputs []Output `yaml:"outputs"`
	// OnChange tells the app when a file's contents change.
	OnChange OnChange `yaml:"on_change"`
}

// Identity is where the agent reads the workload's OIDC identity token,
// which it exchanges at the gateway's /oauth/token. Set exactly one.
type Identity struct {
	// TokenFile is a file holding the token, read afresh each time: a
	// Kubernetes projected service-account token
	// (/var/run/secrets/tokens/keygate), or any file a platform keeps
	// current.
	TokenFile string `yaml:"token_file"`
	// Command prints the token on stdout, such as
	// ["gcloud", "auth", "print-identity-token", "--audiences=https://keygate.example.com"].
	Command []string `yaml:"command"`
	// GitHubActionsAudience asks the GitHub Actions runner for a token
	// with this audience (the job needs permissions: id-token: write).
	GitHubActionsAudience string `yaml:"github_actions_audience"`
}

// Output is one file the agent writes: its contents are rendered from
// templates that see the access token as {{ .Token }} and read vault
// secrets with {{ secret "NAME" }}. Files are written whole and atomically
// (a temporary file renamed over the old one), with mode 0600, and only
// when their contents change.
type Output struct {
	// Path is where the file is written.
	Path string `yaml:"path"`
	// Format is env (KEY=value lines), json (one object) or text
	// (Template as it renders).
	Format string `yaml:"format"`
	// Values are the env variables or JSON members, by name, each a
	// template.
	Values map[string]string `yaml:"values"`
	// Template is a text file's contents.
	Template string `yaml:"template"`
}

// OnChange tells the app that files changed: a signal to a process, a
// command run, or both. An error here is logged; the files stay written.
type OnChange struct {
	// Signal is sent to the process PID or the one PIDFile names: HUP,
	// INT, TERM, USR1, USR2 or QUIT.
	Signal  string `yaml:"signal"`
	PID     int    `yaml:"pid"`
	PIDFile string `yaml:"pid_file"`
	// Command is run (without a shell) after each change.
	Command []string `yaml:"command"`
}

// Output formats.
const (
	FormatEnv  = "env"
	FormatJSON = "json"
	FormatText = "text"
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Load reads and checks a configuration file.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("agent configuration: %w", err)
	}
	var c Config
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("agent configuration %s: %w", path, err)
	}
	return c, c.Validate()
}

// Validate checks the configuration, naming the field at fault.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("agent: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	u, err := url.Parse(strings.TrimSpace(c.Gateway))
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		bad("gateway", "must be the gateway's URL, https://HOST:PORT")
	case !c.InsecureHTTP && adminclient.CheckCleartext(u) != nil:
		bad("gateway", "%s is plain http:// to another machine, and keygate tokens and secrets would cross the network in clear: use https:// (with ca_file for a private CA), or set insecure_http: true if the network in between encrypts every connection", u.Host)
	}
	n := 0
	if c.Identity.TokenFile != "" {
		n++
	}
	if len(c.Identity.Command) > 0 {
		n++
	}
	if c.Identity.GitHubActionsAudience != "" {
		n++
	}
	if n != 1 {
		bad("identity", "set exactly one of token_file, command and github_actions_audience")
	}
	if len(c.Outputs) == 0 {
		bad("outputs", "list at least one file to write")
	}
	paths := map[string]bool{}
	for i, o := range c.Outputs {
		f := fmt.Sprintf("outputs[%d]", i)
		if o.Path == "" || !filepath.IsAbs(o.Path) {
			bad(f+".path", "must be an absolute path")
		} else if paths[filepath.Clean(o.Path)] {
			bad(f+".path", "%s is written by another output too", o.Path)
		}
		paths[filepath.Clean(o.Path)] = true
		switch o.Format {
		case FormatEnv, FormatJSON:
			if len(o.Values) == 0 || o.Template != "" {
				bad(f, "format %s takes values (name: template), not template", o.Format)
			}
			for name, v := range o.Values {
				if o.Format == FormatEnv && !envName.MatchString(name) {
					bad(f+".values", "%q is not an environment variable name (letters, digits and _, not starting with a digit)", name)
				}
				if _, err := parse(v); err != nil {
					bad(f+".values."+name, "%v", err)
				}
			}
		case FormatText:
			if o.Template == "" || len(o.Values) > 0 {
				bad(f, "format text takes template, not values")
			}
			if _, err := parse(o.Template); err != nil {
				bad(f+".template", "%v", err)
			}
		default:
			bad(f+".format", "%q must be env, json or text", o.Format)
		}
	}
	oc := c.OnChange
	if oc.Signal != "" {
		if _, err := parseSignal(oc.Signal); err != nil {
			bad("on_change.signal", "%v", err)
		}
		if (oc.PID > 0) == (oc.PIDFile != "") {
			bad("on_change", "a signal needs exactly one of pid and pid_file")
		}
	} else if oc.PID > 0 || oc.PIDFile != "" {
		bad("on_change.signal", "name the signal to send to the process (HUP, TERM, USR1...)")
	}
	return errors.Join(errs...)
}

// funcs are the template functions, checked at parse time; secret is
// bound to the renewal's reader when rendering.
var funcs = template.FuncMap{"secret": func(string) (string, error) { return "", nil }}

func parse(s string) (*template.Template, error) {
	return template.New("value").Option("missingkey=error").Funcs(funcs).Parse(s)
}
