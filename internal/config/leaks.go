package config

import (
	"fmt"
	"slices"
)

// Leaks configures the outbound credential check on the data path: every
// request body keygate forwards (prompts, tool arguments, passthrough
// bodies) and every answer it returns is checked for values held in the
// vault, keygate's own credentials, and other credential formats.
type Leaks struct {
	// Off turns the check off. It is on by default.
	Off bool `yaml:"off"`
	// Vault, Keygate and Provider are the actions for a body that holds a
	// value held in the vault, a keygate key or token, or another
	// credential format: block (refuse it with a 400 naming the rule),
	// redact (replace the credential by [REDACTED:rule] and go on) or
	// alert (go on unchanged). Empty means block, block and alert.
	Vault    string `yaml:"vault"`
	Keygate  string `yaml:"keygate"`
	Provider string `yaml:"provider"`
	// Rules sets the action per scanner rule ID (as keygate scan --format
	// json names them, such as openai-project-key), over the kind's.
	Rules map[string]string `yaml:"rules"`
	// StreamText is how a credential a model streams across events is
	// handled: "hold" (the default) holds the stream's last few dozen
	// characters back until no credential can still be growing across
	// them, so one is redacted before any piece of it is sent; "find"
	// sends every event at once and only records what it finds.
	StreamText string `yaml:"stream_text"`
	// GitHub serves GitHub's secret scanning partner endpoint on the
	// gateway listener, at POST /leaks/github: a keygate key GitHub finds
	// in a public repository is revoked (or suspended) at once, with an
	// alert. Off unless enabled.
	GitHub LeakReports `yaml:"github"`
}

// LeakReports configures an endpoint that receives signed leak reports.
type LeakReports struct {
	// Enabled turns the endpoint on.
	Enabled bool `yaml:"enabled"`
	// KeysURL is where the reporter publishes the public keys its reports
	// are signed with; empty means GitHub's.
	KeysURL string `yaml:"keys_url"`
	// KeysTokenEnv names an environment variable holding a token sent when
	// fetching the keys (GitHub rate-limits anonymous requests).
	KeysTokenEnv string `yaml:"keys_token_env"`
	// Action is what happens to a reported keygate key: revoke (the
	// default) or suspend.
	Action string `yaml:"action"`
}

// leakActions are the actions Leaks accepts.
var leakActions = []string{"block", "redact", "alert"}

// validateLeaks checks leaks:, naming what is at fault.
func (c Config) validateLeaks() []error {
	var errs []error
	check := func(field, v string) {
		if v != "" && !slices.Contains(leakActions, v) {
			errs = append(errs, fmt.Errorf("config: leaks.%s: %q is not an action; use block, redact or alert", field, v))
		}
	}
	check("vault", c.Leaks.Vault)
	check("keygate", c.Leaks.Keygate)
	check("provider", c.Leaks.Provider)
	for rule, v := range c.Leaks.Rules {
		check("rules."+rule, v)
		if v == "" {
			errs = append(errs, fmt.Errorf("config: leaks.rules.%s: empty; use block, redact or alert", rule))
		}
	}
	switch c.Leaks.StreamText {
	case "", "hold", "find":
	default:
		errs = append(errs, fmt.Errorf("config: leaks.stream_text: %q; use hold (redact a credential split across a stream's events, holding its last few dozen characters back) or find (send at once, record only)", c.Leaks.StreamText))
	}
	switch c.Leaks.GitHub.Action {
	case "", "revoke", "suspend":
	default:
		errs = append(errs, fmt.Errorf("config: leaks.github.action: %q; use revoke or suspend", c.Leaks.GitHub.Action))
	}
	return errs
}
