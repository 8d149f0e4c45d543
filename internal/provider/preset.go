package provider

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// AzureAPIVersion is the api-version keygate sends to Azure OpenAI when the
// provider does not configure one: the newest generally available version
// of the Azure OpenAI data-plane inference API.
const AzureAPIVersion = "2024-10-21"

// Preset is a known provider: its dialect, default base URL, and how its
// upstream wants credentials and paths. Presets are plain values; the table
// Presets returns is rebuilt on every call, so callers may modify their copy.
type Preset struct {
	// Name identifies the preset, as stored on a provider: "openai",
	// "anthropic", "azure-openai", "gemini", "mistral", "groq", "deepseek",
	// "xai", "openrouter", "together", "ollama" or "vllm".
	Name string
	// Dialect is the client-facing dialect, "openai" or "anthropic".
	Dialect string
	// BaseURL is the base URL as the service documents it for the dialect's
	// SDK. It is empty when each user must give their own (Azure OpenAI
	// resources, vLLM servers).
	BaseURL string
	// BaseURLExample shows the shape of a base URL the user must give when
	// BaseURL is empty; it is used in error messages.
	BaseURLExample string
	// AuthHeader is the header carrying the upstream key: "Authorization"
	// (sent as "Bearer <key>"), "api-key" (Azure OpenAI) or "x-api-key"
	// (Anthropic).
	AuthHeader string
	// KeyOptional is set for servers that may run without authentication
	// (Ollama, vLLM without --api-key). keygate then sends no credential
	// when the provider has no key stored.
	KeyOptional bool
	// Deployments is set when the upstream addresses a model by a deployment
	// in the URL path and wants an api-version query parameter (Azure
	// OpenAI): a client's POST /v1/chat/completions for model M goes to
	// {base}/openai/deployments/M/chat/completions?api-version=V.
	Deployments bool
	// DefaultAPIVersion is the api-version sent when neither the provider
	// nor its base URL sets one. Only Deployments presets send one.
	DefaultAPIVersion string
}

// Presets returns every known preset, in a stable order.
func Presets() []Preset {
	const bearer = "Authorization"
	return []Preset{
		{Name: "openai", Dialect: "openai", BaseURL: "https://api.openai.com/v1", AuthHeader: bearer},
		{Name: "anthropic", Dialect: "anthropic", BaseURL: "https://api.anthropic.com", AuthHeader: "x-api-key"},
		{Name: "azure-openai", Dialect: "openai", BaseURLExample: "https://RESOURCE.openai.azure.com",
			AuthHeader: "api-key", Deployments: true, DefaultAPIVersion: AzureAPIVersion},
		{Name: "gemini", Dialect: "openai", BaseURL: "https://generativelanguage.googleapis.com/v1beta/openai", AuthHeader: bearer},
		{Name: "mistral", Dialect: "openai", BaseURL: "https://api.mistral.ai/v1", AuthHeader: bearer},
		{Name: "groq", Dialect: "openai", BaseURL: "https://api.groq.com/openai/v1", AuthHeader: bearer},
		// DeepSeek documents its base without a version; /chat/completions
		// sits directly under it.
		{Name: "deepseek", Dialect: "openai", BaseURL: "https://api.deepseek.com", AuthHeader: bearer},
		{Name: "xai", Dialect: "openai", BaseURL: "https://api.x.ai/v1", AuthHeader: bearer},
		{Name: "openrouter", Dialect: "openai", BaseURL: "https://openrouter.ai/api/v1", AuthHeader: bearer},
		{Name: "together", Dialect: "openai", BaseURL: "https://api.together.xyz/v1", AuthHeader: bearer},
		{Name: "ollama", Dialect: "openai", BaseURL: "http://localhost:11434/v1", AuthHeader: bearer, KeyOptional: true},
		{Name: "vllm", Dialect: "openai", BaseURLExample: "http://HOST:8000/v1", AuthHeader: bearer, KeyOptional: true},
	}
}

// LookupPreset returns the preset called name.
func LookupPreset(name string) (Preset, bool) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// Validate checks a provider configuration for this preset before it is
// stored: baseURL is the user's base URL (empty for the preset's default)
// and keySet whether an upstream key will be stored with it.
func (p Preset) Validate(baseURL string, keySet bool) error {
	raw := baseURL
	if raw == "" {
		raw = p.BaseURL
	}
	if raw == "" {
		return fmt.Errorf("provider preset %q has no default base URL: give the base URL of your %s endpoint, such as %s",
			p.Name, p.Name, p.BaseURLExample)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("provider preset %q: base URL %q is not an absolute http or https URL; give one such as %s",
			p.Name, raw, p.example())
	}
	if u.User != nil {
		return fmt.Errorf("provider preset %q: base URL must not carry a user name or password; store the credential as the provider's key instead", p.Name)
	}
	if u.Fragment != "" {
		return fmt.Errorf("provider preset %q: base URL must not have a #fragment; remove it", p.Name)
	}
	path := strings.TrimRight(u.Path, "/")
	if p.Deployments && strings.Contains(path+"/", "/deployments/") {
		return fmt.Errorf("provider preset %q: give the resource endpoint only, such as %s; keygate adds /openai/deployments/{model} itself",
			p.Name, p.example())
	}
	if p.Dialect == "anthropic" && strings.HasSuffix(path, "/v1") {
		return fmt.Errorf("provider preset %q: base URL must not end in /v1, because client paths already start with it; use %s",
			p.Name, p.example())
	}
	if !keySet && !p.KeyOptional {
		return fmt.Errorf("provider preset %q needs an API key: store the key %s issued for this provider", p.Name, p.Name)
	}
	return nil
}

func (p Preset) example() string {
	if p.BaseURL != "" {
		return p.BaseURL
	}
	return p.BaseURLExample
}

// Prepare adapts an outbound request for this preset. It sets out's URL
// from base and the client's path (/v1/...) and query (read from
// out.URL.RawQuery, which holds the client's query when called from the
// gateway's rewrite step), removes every client credential from out's
// headers and sets the upstream credential in AuthHeader. An empty key sends
// no credential, which only KeyOptional presets accept.
//
// For Deployments presets (Azure OpenAI) model is the deployment name: keygate
// routes a request to the model it names, and the Azure deployment serving
// that model must have that name. Paths that take a deployment
// (/chat/completions, /completions, /embeddings, /audio/*, /images/*) go to
// {base}/openai/deployments/{model}/..., every other path to {base}/openai/...
// (such as /openai/models). The api-version query parameter is apiVersion,
// else the one in base's query, else DefaultAPIVersion; one the client sent is
// replaced. Other presets ignore model and apiVersion.
func (p Preset) Prepare(out *http.Request, base *url.URL, clientPath string, model string, key secret.String, apiVersion string) error {
	if base == nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return fmt.Errorf("provider preset %q: the provider has no usable base URL; set one such as %s", p.Name, p.example())
	}
	if key.IsZero() && !p.KeyOptional {
		return fmt.Errorf("provider preset %q needs an API key and none is stored; store the provider's key", p.Name)
	}
	var u *url.URL
	if p.Deployments {
		var err error
		if u, err = p.deploymentURL(base, clientPath, out.URL.RawQuery, model, apiVersion); err != nil {
			return err
		}
	} else {
		var d Dialect = OpenAI{}
		if p.Dialect == "anthropic" {
			d = Anthropic{}
		}
		u = UpstreamURL(d, base, &url.URL{Path: clientPath, RawQuery: out.URL.RawQuery})
		u.User = nil
	}
	out.URL = u
	out.Host = ""

	stripCredentials(out.Header)
	switch {
	case p.Dialect == "anthropic":
		Anthropic{}.InjectAuth(out.Header, key)
	case key.IsZero():
	case strings.EqualFold(p.AuthHeader, "Authorization"):
		setHeader(out.Header, "Authorization", "Bearer "+key.Reveal())
	case p.AuthHeader != "":
		setHeader(out.Header, http.CanonicalHeaderKey(p.AuthHeader), key.Reveal())
	}
	return nil
}

// deploymentOperations are the client paths (after /v1) Azure OpenAI serves
// under a deployment.
var deploymentOperations = [...]string{
	"/chat/completions", "/completions", "/embeddings",
	"/audio/speech", "/audio/transcriptions", "/audio/translations",
	"/images/generations", "/images/edits",
}

func (p Preset) deploymentURL(base *url.URL, clientPath, clientQuery, model, apiVersion string) (*url.URL, error) {
	rest := clientPath
	if strings.HasPrefix(rest, "/v1/") {
		rest = rest[len("/v1"):]
	} else if rest == "/v1" {
		rest = ""
	}
	prefix := strings.TrimSuffix(strings.TrimRight(base.Path, "/"), "/openai") + "/openai"
	path := prefix + rest
	for _, op := range deploymentOperations {
		if rest != op {
			continue
		}
		if !validDeployment(model) {
			return nil, fmt.Errorf("provider preset %q: model %q is not a usable deployment name (1 to 64 letters, digits, '.', '_' or '-'); route the model under the name of its Azure deployment", p.Name, model)
		}
		path = prefix + "/deployments/" + model + rest
		break
	}
	q, err := url.ParseQuery(clientQuery)
	if err != nil {
		return nil, errors.New("the request's query string is malformed; fix its encoding")
	}
	bq, err := url.ParseQuery(base.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("provider preset %q: the base URL's query string is malformed; fix it", p.Name)
	}
	version := apiVersion
	if version == "" {
		version = bq.Get("api-version")
	}
	if version == "" {
		version = p.DefaultAPIVersion
	}
	for k, vs := range bq {
		if k != "api-version" {
			q[k] = append(vs, q[k]...)
		}
	}
	q.Set("api-version", version)
	return &url.URL{Scheme: base.Scheme, Host: base.Host, Path: path, RawQuery: q.Encode()}, nil
}

// validDeployment reports whether name can be an Azure OpenAI deployment
// name, which also makes it safe to place in a URL path unescaped.
func validDeployment(name string) bool {
	if name == "" || len(name) > 64 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
