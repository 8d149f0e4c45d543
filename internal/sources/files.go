package sources

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/secret"
)

// providerEnv maps the environment variables SDKs and tools read provider
// keys from to keygate's presets.
var providerEnv = map[string]string{
	"OPENAI_API_KEY": "openai", "ANTHROPIC_API_KEY": "anthropic", "GROQ_API_KEY": "groq", "MISTRAL_API_KEY": "mistral",
	"GEMINI_API_KEY": "gemini", "DEEPSEEK_API_KEY": "deepseek", "XAI_API_KEY": "xai", "OPENROUTER_API_KEY": "openrouter",
	"TOGETHER_API_KEY": "together", "TOGETHERAI_API_KEY": "together",
}

// presetEnv is the environment variable each preset's key is usually in.
func presetEnv(preset string) string {
	for k, v := range providerEnv {
		if v == preset && !strings.HasPrefix(k, "TOGETHERAI") {
			return k
		}
	}
	return ""
}

// EnvPlan reads a .env file: each provider key a known SDK variable holds
// (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) becomes a provider with its
// preset; every other variable becomes a secret under prefix.
func EnvPlan(file string, data []byte, prefix string) (Plan, error) {
	p := Plan{Source: file}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]int{}
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		text = strings.TrimPrefix(text, "export ")
		name, val, ok := strings.Cut(text, "=")
		name = strings.TrimSpace(name)
		from := fmt.Sprintf("%s:%d", file, line)
		if !ok || !validEnv(name) {
			// Not echoed: a malformed line may be a value.
			return Plan{}, fmt.Errorf("import env: %s is not NAME=value", from)
		}
		val, err := envValue(strings.TrimSpace(val))
		if err != nil {
			return Plan{}, fmt.Errorf("import env: %s: %v", from, err)
		}
		if prev, dup := seen[name]; dup {
			return Plan{}, fmt.Errorf("import env: %s sets %s again (first at line %d)", from, name, prev)
		}
		seen[name] = line
		if val == "" {
			p.Unmapped = append(p.Unmapped, fmt.Sprintf("%s: %s is empty; nothing to import", from, name))
			continue
		}
		if preset, ok := providerEnv[name]; ok {
			p.Providers = append(p.Providers, presetProvider(preset, preset, "", nil, secret.New(val), from+" "+name))
			continue
		}
		p.Secrets = append(p.Secrets, SecretImport{Name: SecretName(prefix, name), From: from + " " + name, Value: secret.New(val)})
	}
	return p, sc.Err()
}

func validEnv(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' && i > 0) {
			return false
		}
	}
	return s != ""
}

// envValue unquotes a .env value: "double" (with escapes), 'single' or bare
// (a trailing " # comment" dropped).
func envValue(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, `"`):
		s, err := strconv.Unquote(v)
		if err != nil {
			return "", fmt.Errorf("the double-quoted value is not closed or has a bad escape")
		}
		return s, nil
	case strings.HasPrefix(v, "'"):
		if len(v) < 2 || !strings.HasSuffix(v, "'") {
			return "", fmt.Errorf("the single-quoted value is not closed")
		}
		return v[1 : len(v)-1], nil
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v, nil
}

func presetProvider(name, preset, baseURL string, models []string, key secret.String, from string) ProviderImport {
	pr, _ := provider.LookupPreset(preset)
	req := adminapi.CreateProviderRequest{Name: name, Preset: preset, BaseURL: baseURL, Models: models}
	if baseURL == "" {
		baseURL = pr.BaseURL
	}
	return ProviderImport{Request: req, Name: name, Preset: preset, BaseURL: baseURL, Models: models, From: from, Key: key}
}

// litellmPrefix maps LiteLLM's model prefixes to keygate presets.
var litellmPrefix = map[string]string{
	"openai": "openai", "anthropic": "anthropic", "azure": "azure-openai", "groq": "groq", "mistral": "mistral",
	"gemini": "gemini", "deepseek": "deepseek", "xai": "xai", "openrouter": "openrouter", "together_ai": "together",
	"ollama": "ollama", "ollama_chat": "ollama", "hosted_vllm": "vllm",
}

// providerGroup collects the models of one upstream account.
type providerGroup struct {
	preset, base, apiVersion, keyRef string
	key                              secret.String
	models                           []string
	from                             []string
}

// LiteLLMPlan maps a LiteLLM proxy config.yaml: each distinct upstream
// (preset, api_base, key) of model_list becomes a provider serving the
// models listed for it. Keys given as os.environ/VAR are read from getenv.
// Model aliases, virtual keys and settings keygate has no API for are
// listed in Unmapped with what to do.
func LiteLLMPlan(file string, data []byte, getenv func(string) string) (Plan, error) {
	var cfg struct {
		ModelList []struct {
			ModelName string `yaml:"model_name"`
			Params    struct {
				Model      string `yaml:"model"`
				APIKey     string `yaml:"api_key"`
				APIBase    string `yaml:"api_base"`
				APIVersion string `yaml:"api_version"`
			} `yaml:"litellm_params"`
		} `yaml:"model_list"`
		General  map[string]any `yaml:"general_settings"`
		Settings map[string]any `yaml:"litellm_settings"`
		Router   map[string]any `yaml:"router_settings"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return Plan{}, fmt.Errorf("import litellm: %s is not a LiteLLM config: %v", file, yamlErr(err))
	}
	p := Plan{Source: file}
	var groups []*providerGroup
	for i, m := range cfg.ModelList {
		from := fmt.Sprintf("%s model_list[%d] (%s)", file, i, m.ModelName)
		prefix, model, ok := strings.Cut(m.Params.Model, "/")
		if !ok {
			prefix, model = "openai", m.Params.Model
		}
		preset, known := litellmPrefix[prefix]
		if !known {
			p.Unmapped = append(p.Unmapped, fmt.Sprintf("%s: provider %q (%s) has no keygate preset; add it with keygate provider add --base-url", from, prefix, m.Params.Model))
			continue
		}
		key, keyRef, why := resolveKey(m.Params.APIKey, "os.environ/", preset, getenv)
		if why != "" {
			p.Unmapped = append(p.Unmapped, from+": "+why)
			continue
		}
		g := findGroup(&groups, preset, m.Params.APIBase, m.Params.APIVersion, keyRef, key)
		g.models = appendUnique(g.models, model)
		g.from = append(g.from, from)
		if m.ModelName != "" && m.ModelName != model {
			p.Unmapped = append(p.Unmapped, fmt.Sprintf("%s: model_name %q is an alias of %s; keygate routes aliases from its config file: add it under routing.aliases", from, m.ModelName, model))
		}
	}
	p.Providers = groupProviders(groups)
	if _, ok := cfg.General["master_key"]; ok {
		p.Unmapped = append(p.Unmapped, file+": general_settings.master_key is LiteLLM's admin key; keygate has its own admin credential and per-app keys (keygate key create)")
	}
	for _, sec := range []struct {
		name string
		m    map[string]any
	}{{"litellm_settings", cfg.Settings}, {"router_settings", cfg.Router}} {
		keys := make([]string, 0, len(sec.m))
		for k := range sec.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p.Unmapped = append(p.Unmapped, fmt.Sprintf("%s: %s.%s is not imported", file, sec.name, k))
		}
	}
	return p, nil
}

// BifrostPlan maps a Bifrost config.json: each key of each provider
// becomes a keygate provider serving that key's models. Keys given as
// env.VAR are read from getenv. Virtual keys and plugins are listed in
// Unmapped.
func BifrostPlan(file string, data []byte, getenv func(string) string) (Plan, error) {
	var cfg struct {
		Providers map[string]struct {
			Keys []struct {
				Value  string   `json:"value"`
				Models []string `json:"models"`
				Azure  *struct {
					Endpoint    string            `json:"endpoint"`
					Deployments map[string]string `json:"deployments"`
					APIVersion  *string           `json:"api_version"`
				} `json:"azure_key_config"`
				Bedrock json.RawMessage `json:"bedrock_key_config"`
				Vertex  json.RawMessage `json:"vertex_key_config"`
			} `json:"keys"`
			Network struct {
				BaseURL string `json:"base_url"`
			} `json:"network_config"`
		} `json:"providers"`
		Governance struct {
			VirtualKeys []struct {
				ID, Name string
			} `json:"virtual_keys"`
		} `json:"governance"`
		Plugins []struct {
			Name string `json:"name"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Plan{}, fmt.Errorf("import bifrost: %s is not a Bifrost config.json: %v", file, jsonErr(err))
	}
	p := Plan{Source: file}
	names := make([]string, 0, len(cfg.Providers))
	for n := range cfg.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	var groups []*providerGroup
	for _, n := range names {
		pc := cfg.Providers[n]
		preset := n
		if n == "azure" {
			preset = "azure-openai"
		}
		if _, ok := provider.LookupPreset(preset); !ok {
			p.Unmapped = append(p.Unmapped, fmt.Sprintf("%s: provider %q has no keygate preset; add it with keygate provider add --base-url", file, n))
			continue
		}
		for i, k := range pc.Keys {
			from := fmt.Sprintf("%s providers.%s.keys[%d]", file, n, i)
			if len(k.Bedrock) > 0 || len(k.Vertex) > 0 {
				p.Unmapped = append(p.Unmapped, from+": cloud-identity keys are configured with keygate provider add --preset bedrock|vertex")
				continue
			}
			key, keyRef, why := resolveKey(k.Value, "env.", preset, getenv)
			if why != "" {
				p.Unmapped = append(p.Unmapped, from+": "+why)
				continue
			}
			base, version, models := pc.Network.BaseURL, "", k.Models
			if k.Azure != nil {
				base = k.Azure.Endpoint
				if k.Azure.APIVersion != nil {
					version = *k.Azure.APIVersion
				}
				models = nil
				for _, d := range k.Azure.Deployments {
					models = appendUnique(models, d)
				}
				sort.Strings(models)
			}
			g := findGroup(&groups, preset, base, version, keyRef, key)
			for _, m := range models {
				g.models = appendUnique(g.models, m)
			}
			g.from = append(g.from, from)
		}
	}
	p.Providers = groupProviders(groups)
	for _, vk := range cfg.Governance.VirtualKeys {
		p.Unmapped = append(p.Unmapped, fmt.Sprintf("%s: virtual key %q: create its keygate key with keygate key create %s (with --allow-models and limits to match)", file, vk.Name, SecretName("", vk.Name)))
	}
	for _, pl := range cfg.Plugins {
		p.Unmapped = append(p.Unmapped, fmt.Sprintf("%s: plugin %q is not imported", file, pl.Name))
	}
	return p, nil
}

// resolveKey reads a config's key: envPrefix+VAR from getenv, a literal, or
// when empty the preset's usual variable. why says what is missing.
func resolveKey(raw, envPrefix, preset string, getenv func(string) string) (secret.String, string, string) {
	ref := raw
	if raw == "" {
		pr, _ := provider.LookupPreset(preset)
		if v := presetEnv(preset); v != "" {
			raw, ref = envPrefix+v, envPrefix+v
		} else if pr.KeyOptional {
			return secret.String{}, "", ""
		}
	}
	if v, ok := strings.CutPrefix(raw, envPrefix); ok {
		val := strings.TrimSpace(getenv(v))
		if val == "" {
			return secret.String{}, "", fmt.Sprintf("its key is read from $%s, which is not set here; export it and import again", v)
		}
		return secret.New(val), ref, ""
	}
	if raw == "" {
		return secret.String{}, "", "no API key is configured"
	}
	// A literal key: grouped by a fingerprint-free marker, never printed.
	return secret.New(raw), "literal", ""
}

func findGroup(groups *[]*providerGroup, preset, base, version, keyRef string, key secret.String) *providerGroup {
	for _, g := range *groups {
		if g.preset == preset && g.base == base && g.apiVersion == version && g.key.Equal(key) {
			return g
		}
	}
	g := &providerGroup{preset: preset, base: base, apiVersion: version, keyRef: keyRef, key: key}
	*groups = append(*groups, g)
	return g
}

func groupProviders(groups []*providerGroup) []ProviderImport {
	count := map[string]int{}
	var out []ProviderImport
	for _, g := range groups {
		count[g.preset]++
		name := g.preset
		if count[g.preset] > 1 {
			name = fmt.Sprintf("%s-%d", g.preset, count[g.preset])
		}
		pi := presetProvider(name, g.preset, g.base, g.models, g.key, strings.Join(g.from, "; "))
		pi.Request.APIVersion = g.apiVersion
		out = append(out, pi)
	}
	return out
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// yamlErr and jsonErr keep a parser's error short: they may quote input,
// which could be a key, so only the position is kept.
func yamlErr(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		end := strings.IndexByte(msg[i:], ':')
		if end > 0 {
			return msg[i : i+end]
		}
	}
	return "it does not parse as YAML"
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	if ok := asSyntax(err, &se); ok {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if asType(err, &te) {
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	return "it does not parse as JSON"
}

func asSyntax(err error, t **json.SyntaxError) bool      { return errors.As(err, t) }
func asType(err error, t **json.UnmarshalTypeError) bool { return errors.As(err, t) }
