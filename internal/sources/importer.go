package sources

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/secret"
)

// Import actions, as a plan shows them.
const (
	ActionCreate    = "create"    // not in keygate yet
	ActionUpdate    = "update"    // in keygate with another value: a new version is stored
	ActionUnchanged = "unchanged" // in keygate with this value already
	ActionExists    = "exists"    // a provider of this name exists; left as it is
)

// SecretImport is one secret an import stores in keygate's vault.
type SecretImport struct {
	Name   string        // the keygate secret name
	From   string        // where it was found (a reference, FILE:LINE), never the value
	Value  secret.String `json:"-"`
	Action string
	Note   string `json:",omitempty"`
}

// ProviderImport is one provider an import registers.
type ProviderImport struct {
	Request adminapi.CreateProviderRequest `json:"-"` // APIKey is filled in only when applying
	Name    string
	Preset  string `json:",omitempty"`
	BaseURL string `json:",omitempty"`
	Models  []string
	From    string
	Key     secret.String `json:"-"`
	Action  string
}

// Plan is what an import would do. It never holds a value in a form that
// prints: values are secret.String and excluded from JSON.
type Plan struct {
	Source    string
	Secrets   []SecretImport
	Providers []ProviderImport
	// Unmapped lists what the source configures that keygate does not
	// import, and what to do about each.
	Unmapped []string
}

// Admin is the part of keygate's admin API an import uses; every call is
// authorized and audited by the server. *adminclient.Client implements it.
type Admin interface {
	GetSecret(ctx context.Context, name string) (adminapi.Secret, error)
	SecretValue(ctx context.Context, name string, version int) (secret.String, int, error)
	PutSecret(ctx context.Context, name string, value secret.String) (adminapi.Secret, error)
	ListProviders(ctx context.Context) ([]adminapi.Provider, error)
	CreateProvider(ctx context.Context, req adminapi.CreateProviderRequest) (adminapi.Provider, error)
}

// Decide fills in each item's action by comparing with what keygate holds:
// an import run twice changes nothing the second time.
func (p *Plan) Decide(ctx context.Context, a Admin) error {
	for i := range p.Secrets {
		s := &p.Secrets[i]
		if err := adminapi.ValidSecretName(s.Name); err != nil {
			return fmt.Errorf("import: %s: %w (choose a name with --to)", s.From, err)
		}
		_, err := a.GetSecret(ctx, s.Name)
		if isStatus(err, 404) {
			s.Action = ActionCreate
			continue
		}
		if err != nil {
			return fmt.Errorf("import: look up secret %s: %w", s.Name, err)
		}
		cur, _, err := a.SecretValue(ctx, s.Name, 0)
		switch {
		case isStatus(err, 403):
			s.Action, s.Note = ActionUpdate, "an operator credential cannot compare values; a new version is stored"
		case err != nil:
			return fmt.Errorf("import: read secret %s to compare: %w", s.Name, err)
		case cur.Equal(s.Value):
			s.Action = ActionUnchanged
		default:
			s.Action = ActionUpdate
		}
	}
	if len(p.Providers) == 0 {
		return nil
	}
	have, err := a.ListProviders(ctx)
	if err != nil {
		return fmt.Errorf("import: list providers: %w", err)
	}
	names := map[string]bool{}
	for _, h := range have {
		names[h.Name] = true
	}
	for i := range p.Providers {
		if names[p.Providers[i].Name] {
			p.Providers[i].Action = ActionExists
		} else {
			p.Providers[i].Action = ActionCreate
		}
	}
	return nil
}

// Apply carries out a decided plan and returns how many items it stored.
// It stops at the first error, which names the item but not its value;
// what was stored before stays, and running the import again resumes.
func (p *Plan) Apply(ctx context.Context, a Admin) (int, error) {
	n := 0
	for _, s := range p.Secrets {
		if s.Action != ActionCreate && s.Action != ActionUpdate {
			continue
		}
		if _, err := a.PutSecret(ctx, s.Name, s.Value); err != nil {
			return n, fmt.Errorf("import: store secret %s (from %s): %w", s.Name, s.From, err)
		}
		n++
	}
	for _, pr := range p.Providers {
		if pr.Action != ActionCreate {
			continue
		}
		req := pr.Request
		req.APIKey = pr.Key.Reveal()
		if _, err := a.CreateProvider(ctx, req); err != nil {
			return n, fmt.Errorf("import: add provider %s (from %s): %w", pr.Name, pr.From, err)
		}
		n++
	}
	return n, nil
}

// Counts tallies the plan's actions.
func (p *Plan) Counts() map[string]int {
	c := map[string]int{}
	for _, s := range p.Secrets {
		c[s.Action]++
	}
	for _, pr := range p.Providers {
		c[pr.Action]++
	}
	return c
}

func isStatus(err error, status int) bool {
	var ae *adminclient.APIError
	return errors.As(err, &ae) && ae.Status == status
}

// SecretName turns a source's name into a keygate secret name under
// prefix: characters keygate does not allow become '-', and empty
// segments are dropped.
func SecretName(prefix, name string) string {
	var segs []string
	for _, seg := range strings.Split(strings.Trim(prefix, "/")+"/"+name, "/") {
		b := []byte(seg)
		for i, c := range b {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				b[i] = '-'
			}
		}
		seg = strings.TrimLeft(string(b), "._-")
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, "/")
}

// ListSource reads every secret of a source for an import: AWS secrets
// whose name starts with prefix, every enabled secret of an Azure key
// vault or a Google project, every secret under a Vault KV v2 path.
// scope is the prefix (awssm), the vault name (azkv), the project (gcpsm)
// or "MOUNT/PATH" (vault).
func (s *Sources) ListSource(ctx context.Context, scheme, scope string) ([]Item, error) {
	var refs []Ref
	switch scheme {
	case SchemeAWS:
		src, err := s.awsSource(ctx)
		if err != nil {
			return nil, err
		}
		names, err := src.list(ctx, scope)
		if err != nil {
			return nil, fmt.Errorf("aws secrets manager: list secrets: %w", err)
		}
		for _, n := range names {
			refs = append(refs, Ref{Scheme: SchemeAWS, Name: n})
		}
	case SchemeAzure:
		src, err := s.azureSource(scope)
		if err != nil {
			return nil, err
		}
		names, err := src.list(ctx)
		if err != nil {
			return nil, fmt.Errorf("azure key vault %s: list secrets: %w", scope, err)
		}
		for _, n := range names {
			refs = append(refs, Ref{Scheme: SchemeAzure, Vault: scope, Name: n})
		}
	case SchemeGCP:
		src, err := s.gcpSource(ctx)
		if err != nil {
			return nil, err
		}
		names, err := src.list(ctx, scope)
		if err != nil {
			return nil, fmt.Errorf("google secret manager project %s: list secrets: %w", scope, err)
		}
		for _, n := range names {
			refs = append(refs, Ref{Scheme: SchemeGCP, Project: scope, Name: n})
		}
	case SchemeVault:
		mount, dir, _ := strings.Cut(scope, "/")
		src, err := s.vaultSource(ctx)
		if err != nil {
			return nil, err
		}
		paths, err := src.list(ctx, mount, dir)
		if err != nil {
			return nil, fmt.Errorf("vault %s: list: %w", scope, err)
		}
		var items []Item
		for _, p := range paths {
			data, version, err := src.read(ctx, mount, p)
			if err != nil {
				return nil, fmt.Errorf("vault %s/%s: read: %w", mount, p, err)
			}
			fields := make([]string, 0, len(data))
			for f := range data {
				fields = append(fields, f)
			}
			sort.Strings(fields)
			for _, f := range fields {
				v, err := vaultField(data, f)
				if err != nil {
					continue // not a string field
				}
				items = append(items, Item{Ref: Ref{Scheme: SchemeVault, Mount: mount, Name: p, Field: f}, Value: Value{Secret: v, Version: version}})
			}
		}
		return items, nil
	default:
		return nil, fmt.Errorf("scheme %q is not known", scheme)
	}
	items := make([]Item, 0, len(refs))
	for _, r := range refs {
		v, err := s.Read(ctx, r)
		if err != nil {
			return nil, err
		}
		items = append(items, Item{Ref: r, Value: v})
	}
	return items, nil
}

// SecretPlan builds a plan that stores each item as a keygate secret named
// from its source name under prefix (see SecretName); a Vault secret with
// several fields gives one keygate secret per field, PATH/FIELD.
func SecretPlan(source, prefix string, items []Item) Plan {
	p := Plan{Source: source}
	perPath := map[string]int{}
	for _, it := range items {
		perPath[it.Ref.Mount+"/"+it.Ref.Name]++
	}
	for _, it := range items {
		name := it.Ref.Name
		if it.Ref.Scheme == SchemeVault && perPath[it.Ref.Mount+"/"+it.Ref.Name] > 1 {
			name += "/" + it.Ref.Field
		}
		p.Secrets = append(p.Secrets, SecretImport{Name: SecretName(prefix, name), From: it.Ref.String(), Value: it.Value.Secret})
	}
	return p
}
