// Package cloudauth reaches upstream model APIs with cloud identity
// instead of static API keys: AWS Bedrock with SigV4 signatures (static
// keys sealed in keygate's vault, an assumed role, or the workload's web
// identity), Google Vertex AI with OAuth access tokens minted from a
// service-account key or workload identity, and Azure OpenAI with Entra ID
// tokens (client credentials or workload identity). Temporary credentials
// and tokens are cached until ExpiryWindow before they expire.
//
// The gateway calls an upstream's Authorizer once per upstream request, in
// place of its transport's RoundTrip (see route.Upstream.RoundTrip): the
// Authorizer strips the placeholder credential the gateway injected,
// adapts the Anthropic Messages request to the cloud's path and body where
// needed, signs or adds a token, and converts a Bedrock event stream back
// into the server-sent events Anthropic clients read.
package cloudauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/translate"
)

// Authorizer sends one upstream request with cloud identity, through next.
type Authorizer interface {
	RoundTrip(req *http.Request, next http.RoundTripper) (*http.Response, error)
}

// MessagesChecker is implemented by an Authorizer that may refuse an
// Anthropic Messages request it cannot send (Bedrock's, for a model it
// reaches through Converse, which has no counterpart for some fields). The
// gateway asks before it takes any limit, so a refusal costs nothing; the
// error says which field and what to change.
type MessagesChecker interface {
	CheckMessages(body []byte) error
}

// Presets served with cloud identity, as stored on a provider.
const (
	PresetBedrock      = "bedrock"            // Anthropic models on AWS Bedrock (anthropic dialect)
	PresetVertex       = "vertex"             // Anthropic models on Google Vertex AI (anthropic dialect)
	PresetVertexOpenAI = "vertex-openai"      // Gemini on Vertex AI's OpenAI-compatible endpoint (openai dialect)
	PresetAzureEntra   = "azure-openai-entra" // Azure OpenAI with Entra ID instead of an api-key (openai dialect)
)

// Preset describes a cloud-identity provider kind.
type Preset struct {
	Name, Dialect string
	// Kind is the credential document's kind: "aws", "google" or "entra".
	Kind string
	// BaseURLExample shows the base URL to give.
	BaseURLExample string
	// Wire is the provider preset whose paths the gateway applies
	// (azure-openai's deployments and api-version), "" for none.
	Wire string
}

// Presets lists the cloud-identity presets.
func Presets() []Preset {
	return []Preset{
		{Name: PresetBedrock, Dialect: "anthropic", Kind: "aws", BaseURLExample: "https://bedrock-runtime.us-east-1.amazonaws.com"},
		{Name: PresetVertex, Dialect: "anthropic", Kind: "google", BaseURLExample: "https://us-east5-aiplatform.googleapis.com/v1/projects/PROJECT/locations/us-east5"},
		{Name: PresetVertexOpenAI, Dialect: "openai", Kind: "google", BaseURLExample: "https://us-central1-aiplatform.googleapis.com/v1/projects/PROJECT/locations/us-central1/endpoints/openapi"},
		{Name: PresetAzureEntra, Dialect: "openai", Kind: "entra", BaseURLExample: "https://RESOURCE.openai.azure.com", Wire: "azure-openai"},
	}
}

// LookupPreset returns the cloud-identity preset called name.
func LookupPreset(name string) (Preset, bool) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// Credential is the document a cloud-identity provider keeps sealed in
// keygate's vault in place of an API key. Only the fields of its Kind are used.
type Credential struct {
	Kind string `json:"kind"` // "aws", "google" or "entra"

	// aws (see AWSIdentity)
	Region               string `json:"region,omitempty"`
	AccessKeyID          string `json:"access_key_id,omitempty"`
	SecretAccessKey      string `json:"secret_access_key,omitempty"`
	SessionToken         string `json:"session_token,omitempty"`
	RoleARN              string `json:"role_arn,omitempty"`
	ExternalID           string `json:"external_id,omitempty"`
	WebIdentityTokenFile string `json:"web_identity_token_file,omitempty"`
	STSEndpoint          string `json:"sts_endpoint,omitempty"`
	// BedrockAPI picks the Bedrock runtime API that Anthropic Messages
	// and OpenAI chat requests become (see BedrockAPIAuto): "auto" or ""
	// (InvokeModel for Anthropic models, Converse for every other),
	// "converse" (every model), "invoke" (every model, in Anthropic's body).
	BedrockAPI string `json:"bedrock_api,omitempty"`
	// BedrockGuardrail, when set, is applied to every Converse and
	// ConverseStream call keygate makes for the provider (Bedrock's
	// guardrailConfig); InvokeModel calls carry none.
	BedrockGuardrail *translate.ConverseGuardrail `json:"bedrock_guardrail,omitempty"`

	// google: a service-account key file's content; empty uses
	// Application Default Credentials (workload identity federation).
	ServiceAccount json.RawMessage `json:"service_account,omitempty"`

	// entra
	TenantID           string `json:"tenant_id,omitempty"`
	ClientID           string `json:"client_id,omitempty"`
	ClientSecret       string `json:"client_secret,omitempty"`
	FederatedTokenFile string `json:"federated_token_file,omitempty"`
	AuthorityHost      string `json:"authority_host,omitempty"`
}

// ParseCredential reads a sealed credential document. Errors never quote it.
func ParseCredential(doc secret.String) (Credential, error) {
	var c Credential
	if err := json.Unmarshal([]byte(doc.Reveal()), &c); err != nil {
		return Credential{}, errors.New("cloudauth: the provider's credential is not a cloud credential document (JSON with a kind)")
	}
	switch c.Kind {
	case "aws", "google", "entra":
		return c, nil
	}
	return Credential{}, fmt.Errorf("cloudauth: credential kind %q is not aws, google or entra", c.Kind)
}

// Seal encodes c for the vault.
func (c Credential) Seal() secret.String {
	b, _ := json.Marshal(c)
	defer clear(b)
	return secret.New(string(b))
}

// Options are what building an Authorizer may need from its surroundings.
type Options struct {
	// HTTP carries token and STS requests (nil: a client with a 15 s timeout).
	HTTP *http.Client
}

// New builds the Authorizer of preset p for a provider at baseURL with
// the sealed credential doc. It makes no network call: credentials and
// tokens are fetched on the first request.
func New(ctx context.Context, p Preset, baseURL *url.URL, doc secret.String, o Options) (Authorizer, error) {
	c, err := ParseCredential(doc)
	if err != nil {
		return nil, err
	}
	if c.Kind != p.Kind {
		return nil, fmt.Errorf("cloudauth: preset %s needs a %s credential, not %s", p.Name, p.Kind, c.Kind)
	}
	switch p.Kind {
	case "aws":
		return newBedrock(ctx, c, o)
	case "google":
		return newVertex(ctx, c, p.Name == PresetVertex, o)
	default:
		return newEntra(c, o)
	}
}

// Cache keeps Authorizers across provider table reloads, so cached
// credentials and tokens survive them: one per preset, base URL and
// credential. It is safe for concurrent use.
type Cache struct {
	mu sync.Mutex
	m  map[[32]byte]Authorizer
}

// maxCached bounds the cache; past it the cache starts over.
const maxCached = 1024

// Get returns the cached Authorizer for the provider, building it with New
// the first time.
func (c *Cache) Get(ctx context.Context, p Preset, baseURL *url.URL, doc secret.String, o Options) (Authorizer, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", p.Name, baseURL)
	h.Write([]byte(doc.Reveal()))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.m[k]; ok {
		return a, nil
	}
	a, err := New(ctx, p, baseURL, doc, o)
	if err != nil {
		return nil, err
	}
	if c.m == nil || len(c.m) >= maxCached {
		c.m = map[[32]byte]Authorizer{}
	}
	c.m[k] = a
	return a, nil
}

// stripCredential removes every header the gateway or a client may have
// put a credential in: the cloud request carries only its own.
func stripCredential(h http.Header) {
	for _, k := range []string{"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "X-Amz-Security-Token", "X-Amz-Date", "X-Amz-Content-Sha256"} {
		h.Del(k)
	}
}

// Transport returns an http.RoundTripper that sends every request through
// a, then next: for an HTTP client of one cloud upstream.
func Transport(a Authorizer, next http.RoundTripper) http.RoundTripper {
	return transport{a: a, next: next}
}

type transport struct {
	a    Authorizer
	next http.RoundTripper
}

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.a.RoundTrip(r, t.next)
}
