package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// Value is what a source holds for a reference.
type Value struct {
	Secret secret.String
	// Version is the source's own version id (AWS VersionId, Key Vault
	// version, Secret Manager version, KV v2 version number), so keygate
	// can tell a rotation from a re-read.
	Version string
}

// Item is one secret found by a listing, for imports.
type Item struct {
	Ref   Ref
	Value Value
}

// ErrNotFound means the source answered that the secret does not exist.
var ErrNotFound = errors.New("the source has no such secret")

// Config says how keygate reaches each source and with which identity.
// Every field is optional: a source without configuration uses its SDK's
// default credential chain (environment, workload identity, instance
// metadata), as a program running in that cloud would.
type Config struct {
	AWS   AWSConfig
	Azure AzureConfig
	GCP   GCPConfig
	Vault VaultConfig
	// Timeout bounds one read, retries included (default 15s).
	Timeout time.Duration
}

// Sources reads secrets through the official SDK of each source. It builds
// each client once, on first use, and is safe for concurrent use.
type Sources struct {
	cfg Config

	mu    sync.Mutex
	aws   *awsSource
	azure map[string]*azureSource // by key vault name
	gcp   *gcpSource
	vault *vaultSource
}

// New returns Sources configured by cfg.
func New(cfg Config) *Sources {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	return &Sources{cfg: cfg, azure: map[string]*azureSource{}}
}

// Read returns the current value of the secret ref points at. Errors name
// the reference and the source's answer, never a value.
func (s *Sources) Read(ctx context.Context, ref Ref) (Value, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var (
		v   Value
		err error
	)
	switch ref.Scheme {
	case SchemeAWS:
		var src *awsSource
		if src, err = s.awsSource(ctx); err == nil {
			v, err = src.read(ctx, ref.Name)
		}
	case SchemeAzure:
		var src *azureSource
		if src, err = s.azureSource(ref.Vault); err == nil {
			v, err = src.read(ctx, ref.Name)
		}
	case SchemeGCP:
		var src *gcpSource
		if src, err = s.gcpSource(ctx); err == nil {
			v, err = src.read(ctx, ref.Project, ref.Name)
		}
	case SchemeVault:
		var src *vaultSource
		if src, err = s.vaultSource(ctx); err == nil {
			var data map[string]any
			data, v.Version, err = src.read(ctx, ref.Mount, ref.Name)
			if err == nil {
				v.Secret, err = vaultField(data, ref.Field)
				return v, wrapRead(ref, err)
			}
		}
	default:
		err = fmt.Errorf("scheme %q is not known", ref.Scheme)
	}
	if err == nil && ref.Field != "" {
		v.Secret, err = jsonField(v.Secret, ref.Field)
	}
	if err == nil && v.Secret.IsZero() {
		err = errors.New("the secret is empty")
	}
	return v, wrapRead(ref, err)
}

func wrapRead(ref Ref, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("source %s: %w", ref, err)
}

// jsonField picks field out of a JSON object secret.
func jsonField(v secret.String, field string) (secret.String, error) {
	var obj map[string]any
	if err := json.Unmarshal([]byte(v.Reveal()), &obj); err != nil {
		return secret.String{}, fmt.Errorf("#%s asks for a field, but the secret is not a JSON object", field)
	}
	return vaultField(obj, field)
}

// vaultField picks one field of a key/value secret: the named one, or the
// only one when field is empty. Errors list field names, never values.
func vaultField(data map[string]any, field string) (secret.String, error) {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	sort.Strings(names)
	if field == "" {
		if len(data) != 1 {
			return secret.String{}, fmt.Errorf("the secret has fields %s; name one with #FIELD", strings.Join(names, ", "))
		}
		field = names[0]
	}
	raw, ok := data[field]
	if !ok {
		return secret.String{}, fmt.Errorf("the secret has no field %q (it has %s)", field, strings.Join(names, ", "))
	}
	str, ok := raw.(string)
	if !ok {
		return secret.String{}, fmt.Errorf("field %q is not a string", field)
	}
	return secret.New(str), nil
}

// httpClient returns hc, or a client with keygate's timeout.
func httpClient(hc *http.Client, timeout time.Duration) *http.Client {
	if hc != nil {
		return hc
	}
	return &http.Client{Timeout: timeout}
}
