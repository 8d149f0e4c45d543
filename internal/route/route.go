// Package route decides which upstream provider serves a request. A Table is
// an immutable snapshot of the registered providers with their decrypted
// credentials; the gateway swaps in a new one when providers change, so a
// request never waits on the database or the vault to be routed.
package route

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// Upstream is one registered provider, ready to receive requests.
type Upstream struct {
	Name    string        // provider name, also the model prefix ("openai/gpt-4o")
	Dialect string        // "openai", "anthropic" or "gemini"
	BaseURL *url.URL      // as the provider's SDK takes it
	Models  []string      // glob patterns of bare model names it serves
	Default bool          // default provider for its dialect
	Key     secret.String // the real upstream credential
	Env     string        // environment tag: only keys of this env may use it; "" accepts any
	// Preset, for a known service other than plain OpenAI or Anthropic,
	// says how it wants its credential, paths and errors; nil otherwise.
	Preset     *provider.Preset
	APIVersion string // the api-version the preset sends, "" its default
	// Unavailable says why the provider cannot be used now (its key is kept
	// in a source keygate has not been able to read within its grace); Key
	// is then empty and Resolve refuses the provider with an
	// *UnavailableError.
	Unavailable string
	// Auth, for a provider reached with cloud identity (Bedrock, Vertex,
	// Azure OpenAI with Entra ID), signs or authorizes each request; Key
	// then holds only a placeholder that Auth strips. nil for API keys.
	Auth cloudauth.Authorizer
	// Cloud is the cloud preset of such a provider (cloudauth.PresetBedrock,
	// ...), "" for API keys.
	Cloud string
}

// CloudPlaceholder is the Key of a cloud-identity upstream: the gateway
// injects it like any key, and the upstream's Authorizer removes it.
const CloudPlaceholder = "keygate-cloud-identity"

// RoundTrip sends one request to this upstream through next: via its
// cloud Authorizer when it has one, else next.RoundTrip(req). The gateway
// calls it for every upstream request in place of next.RoundTrip.
func (u *Upstream) RoundTrip(req *http.Request, next http.RoundTripper) (*http.Response, error) {
	if u.Auth != nil {
		return u.Auth.RoundTrip(req, next)
	}
	return next.RoundTrip(req)
}

// UnavailableError means a provider's credential cannot be served now; the
// reason says why and what to do, and holds no secret.
type UnavailableError struct {
	Provider string
	Reason   string
}

func (e *UnavailableError) Error() string {
	if e.Provider == "" {
		return e.Reason
	}
	return fmt.Sprintf("provider %q cannot be used now: %s", e.Provider, e.Reason)
}

// Table is an immutable routing snapshot. Its methods are safe for concurrent use.
type Table struct {
	byName   map[string]*Upstream
	ordered  []*Upstream // by name, for deterministic pattern matching
	defaults map[string]*Upstream
	aliases  map[string]*Alias   // see WithRouting
	services map[string]*Service // see WithServices
}

// NewTable builds a table. For each dialect the default is the provider marked
// default (the first by name if several are), else the only provider of that dialect.
func NewTable(ups []*Upstream) *Table {
	t := &Table{byName: make(map[string]*Upstream, len(ups)), defaults: map[string]*Upstream{}}
	t.ordered = append([]*Upstream(nil), ups...)
	sort.Slice(t.ordered, func(i, j int) bool { return t.ordered[i].Name < t.ordered[j].Name })
	count := map[string]int{}
	for _, u := range t.ordered {
		t.byName[u.Name] = u
		count[u.Dialect]++
		if u.Default && t.defaults[u.Dialect] == nil {
			t.defaults[u.Dialect] = u
		}
	}
	for _, u := range t.ordered {
		if count[u.Dialect] == 1 && t.defaults[u.Dialect] == nil {
			t.defaults[u.Dialect] = u
		}
	}
	return t
}

// Upstreams returns the providers ordered by name.
func (t *Table) Upstreams() []*Upstream { return t.ordered }

// Get returns the provider with the given name.
func (t *Table) Get(name string) (*Upstream, bool) {
	u, ok := t.byName[name]
	return u, ok
}

// ErrNoProvider means no registered provider serves the requested model.
var ErrNoProvider = errors.New("no provider serves this model")

// WrongDialectError means the model is served by a provider that speaks
// the other API dialect, on an endpoint keygate cannot translate.
type WrongDialectError struct {
	Provider, ProviderDialect, RequestDialect string
}

func (e *WrongDialectError) Error() string {
	switch {
	case e.ProviderDialect == "gemini":
		return fmt.Sprintf("provider %q speaks Gemini's native API, which keygate does not translate; call it at /v1beta/models/{model}:generateContent as Gemini CLI and the Google Gen AI SDKs do, or register Google's OpenAI-compatible endpoint as a provider with --preset gemini", e.Provider)
	case e.RequestDialect == "gemini":
		endpoint := "/v1/chat/completions"
		if e.ProviderDialect == "anthropic" {
			endpoint = "/v1/messages"
		}
		return fmt.Sprintf("provider %q speaks the %s API, and keygate does not translate Gemini's native API; send this request to %s instead", e.Provider, e.ProviderDialect, endpoint)
	}
	endpoint := "/v1/chat/completions"
	if e.ProviderDialect == "anthropic" {
		endpoint = "/v1/messages"
	}
	return fmt.Sprintf("provider %q speaks the %s API, and keygate translates only chat requests between the two; send this request to %s instead", e.Provider, e.ProviderDialect, endpoint)
}

// Resolve picks the provider for a model requested in the given dialect and
// returns the model name to send upstream:
//  1. "name/model" where name is a registered provider: that provider, prefix stripped;
//  2. else the first provider of this dialect (by name) whose patterns match the model;
//  3. else the first provider of the other dialect whose patterns match it;
//  4. else the dialect's default provider.
//
// A provider of the other dialect is returned as is: the caller translates
// the request, or refuses it with a WrongDialectError where it cannot.
func (t *Table) Resolve(dialect, model string) (*Upstream, string, error) {
	u, sent, err := t.resolve(dialect, model)
	if err == nil && u.Unavailable != "" {
		return nil, "", &UnavailableError{Provider: u.Name, Reason: u.Unavailable}
	}
	return u, sent, err
}

func (t *Table) resolve(dialect, model string) (*Upstream, string, error) {
	if i := strings.IndexByte(model, '/'); i > 0 {
		if u, ok := t.byName[model[:i]]; ok {
			return u, model[i+1:], nil
		}
	}
	for _, u := range t.ordered {
		if u.Dialect == dialect && MatchAny(u.Models, model) {
			return u, model, nil
		}
	}
	for _, u := range t.ordered {
		if u.Dialect != dialect && MatchAny(u.Models, model) {
			return u, model, nil
		}
	}
	if u := t.defaults[dialect]; u != nil {
		return u, model, nil
	}
	return nil, "", ErrNoProvider
}

// MatchAny reports whether name matches one of the glob patterns (path.Match syntax).
func MatchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// ValidPattern reports whether p is a well-formed glob pattern.
func ValidPattern(p string) bool {
	_, err := path.Match(p, "")
	return p != "" && err == nil
}

// ProviderSource lists registered providers.
type ProviderSource interface {
	ListProviders(ctx context.Context) ([]store.Provider, error)
}

// SecretOpener decrypts a vault record. An error wrapping an
// *UnavailableError marks a record that exists but must not be served now
// (see internal/sources): its provider is kept in the table, unavailable.
type SecretOpener interface {
	Get(ctx context.Context, id string) (secret.String, int, error)
}

// Load reads every provider and decrypts its credential into a new Table.
// A provider whose credential cannot be opened fails the load: keygate does
// not route to a provider it cannot authenticate to. A provider whose
// credential the opener says is unavailable is loaded without it, marked
// Unavailable, so the rest of the table still loads.
func Load(ctx context.Context, src ProviderSource, vault SecretOpener, opts ...LoadOption) (*Table, error) {
	var lo loadOptions
	for _, o := range opts {
		o(&lo)
	}
	ps, err := src.ListProviders(ctx)
	if err != nil {
		return nil, fmt.Errorf("route: list providers: %w", err)
	}
	ups := make([]*Upstream, 0, len(ps))
	for _, p := range ps {
		u, err := url.Parse(p.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("route: provider %q has an invalid base URL: %w", p.Name, err)
		}
		key, _, err := vault.Get(ctx, p.SecretID)
		var unavailable *UnavailableError
		if errors.As(err, &unavailable) {
			key, err = secret.String{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("route: provider %q: open its credential: %w", p.Name, err)
		}
		up := &Upstream{Name: p.Name, Dialect: p.Dialect, BaseURL: u, Models: p.Models, Default: p.IsDefault, Key: key, Env: p.Env, APIVersion: p.APIVersion}
		if unavailable != nil {
			up.Unavailable = unavailable.Reason
		}
		if cp, ok := cloudauth.LookupPreset(p.Preset); ok {
			if err := lo.cloud(ctx, up, cp, key); err != nil {
				return nil, fmt.Errorf("route: provider %q: %w", p.Name, err)
			}
			ups = append(ups, up)
			continue
		}
		if p.Preset != "" && p.Preset != "openai" && p.Preset != "anthropic" {
			pre, ok := provider.LookupPreset(p.Preset)
			if !ok {
				return nil, fmt.Errorf("route: provider %q names preset %q, which this keygate does not know; upgrade keygate or re-add the provider", p.Name, p.Preset)
			}
			up.Preset = &pre
		}
		ups = append(ups, up)
	}
	return NewTable(ups), nil
}

// LoadOption adjusts Load.
type LoadOption func(*loadOptions)

type loadOptions struct {
	auth  *cloudauth.Cache
	authO cloudauth.Options
}

// WithCloudAuth lets Load serve cloud-identity providers (see
// cloudauth.Presets), keeping their Authorizers, and so their cached
// credentials and tokens, in cache across reloads. Without it such a
// provider is loaded unavailable.
func WithCloudAuth(cache *cloudauth.Cache, o cloudauth.Options) LoadOption {
	return func(lo *loadOptions) { lo.auth, lo.authO = cache, o }
}

// cloud readies up, a provider of cloud preset cp whose sealed credential
// document is doc.
func (lo *loadOptions) cloud(ctx context.Context, up *Upstream, cp cloudauth.Preset, doc secret.String) error {
	up.Cloud = cp.Name
	if cp.Wire != "" {
		pre, ok := provider.LookupPreset(cp.Wire)
		if !ok {
			return fmt.Errorf("preset %s needs preset %s, which this keygate does not know", cp.Name, cp.Wire)
		}
		up.Preset = &pre
	}
	switch {
	case up.Unavailable != "":
		return nil
	case lo.auth == nil:
		up.Unavailable = "this keygate node was started without cloud identity support for preset " + cp.Name
		return nil
	}
	a, err := lo.auth.Get(ctx, cp, up.BaseURL, doc, lo.authO)
	if err != nil {
		return err
	}
	up.Auth, up.Key = a, secret.New(CloudPlaceholder)
	return nil
}
