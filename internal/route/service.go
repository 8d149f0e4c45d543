package route

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// Service is an HTTP API behind /proxy/{name}/..., ready to receive
// requests: where it is, how its credential goes on, and the credential.
type Service struct {
	*passthrough.Service
	Key secret.String
	Env string // the environment it serves; "" any
	// Unavailable says why the service cannot be used now (its secret is
	// missing or deleted); empty when it can.
	Unavailable string
}

// ParseServices checks the configured services and builds them without
// their credentials.
func ParseServices(cfg map[string]config.Service) (map[string]*Service, error) {
	names := make([]string, 0, len(cfg))
	for n := range cfg {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make(map[string]*Service, len(cfg))
	var errs []error
	for _, n := range names {
		c := cfg[n]
		if c.Secret == "" {
			errs = append(errs, fmt.Errorf("config: services.%s: secret names the vault secret holding the credential (keygate secret put NAME), and is required", n))
			continue
		}
		svc, err := passthrough.ParseService(n, c.BaseURL, passthrough.Auth{Kind: c.Auth, Name: c.AuthName, Prefix: c.AuthPrefix, User: c.AuthUser}, c.AllowPrivate)
		if err == nil && len(c.Headers) > 0 {
			svc.Headers = c.Headers
			err = svc.Validate()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("config: services.%s: %w", n, err))
			continue
		}
		out[n] = &Service{Service: svc, Env: c.Env}
	}
	return out, errors.Join(errs...)
}

// SecretReader reads a named vault secret's current value.
type SecretReader interface {
	GetSecretMeta(ctx context.Context, name string) (store.SecretMeta, error)
}

// OpenServices returns the services, each with the current value of its
// secret. A service whose secret is missing or deleted is returned
// unavailable, with the reason.
func OpenServices(ctx context.Context, svcs map[string]*Service, cfg map[string]config.Service, meta SecretReader, vault SecretOpener) (map[string]*Service, error) {
	out := make(map[string]*Service, len(svcs))
	for name, s := range svcs {
		s := &Service{Service: s.Service, Env: s.Env}
		secretName := cfg[name].Secret
		m, err := meta.GetSecretMeta(ctx, secretName)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.Unavailable = fmt.Sprintf("its credential, vault secret %q, does not exist; store it with keygate secret put %s", secretName, secretName)
		case err != nil:
			return nil, fmt.Errorf("route: service %q: read secret %q: %w", name, secretName, err)
		case m.DeletedAt != nil:
			s.Unavailable = fmt.Sprintf("its credential, vault secret %q, is deleted", secretName)
		default:
			key, _, err := vault.Get(ctx, m.RecordID)
			if err != nil {
				return nil, fmt.Errorf("route: service %q: open secret %q: %w", name, secretName, err)
			}
			s.Key = key
		}
		out[name] = s
	}
	return out, nil
}

// WithServices returns a copy of the table that also serves the given
// passthrough services (see OpenServices).
func (t *Table) WithServices(svcs map[string]*Service) *Table {
	n := *t
	n.services = svcs
	return &n
}

// Service returns the passthrough service called name.
func (t *Table) Service(name string) (*Service, bool) {
	s, ok := t.services[name]
	return s, ok
}
