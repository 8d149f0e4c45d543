// Package mint lets keygate hold a provider's admin credential and create,
// rotate and delete the upstream API keys it serves with, instead of being
// handed one. OpenAI is supported through its organization admin API
// (each key keygate serves with belongs to a project service account that
// keygate creates and, after a rotation's overlap, deletes), OpenRouter
// through its provisioning keys API.
package mint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// Minted is an upstream key keygate created.
type Minted struct {
	ID  string        // the upstream's id for what holds the key (an OpenAI service account)
	Key secret.String // the API key
}

// OpenAI mints project service-account keys with an OpenAI admin key.
type OpenAI struct {
	BaseURL  string // default https://api.openai.com
	AdminKey secret.String
	Project  string // proj_...
	HTTP     *http.Client
}

func (o *OpenAI) do(ctx context.Context, method, path string, in, out any) error {
	return callJSON(ctx, o.HTTP, "openai admin API", orDefault(o.BaseURL, "https://api.openai.com"), bearerAuth(o.AdminKey), method, path, in, out)
}

// Create makes a project service account called name and returns its key.
func (o *OpenAI) Create(ctx context.Context, name string) (Minted, error) {
	var out struct {
		ID     string `json:"id"`
		APIKey struct {
			Value string `json:"value"`
		} `json:"api_key"`
	}
	if err := o.do(ctx, http.MethodPost, "/v1/organization/projects/"+url.PathEscape(o.Project)+"/service_accounts", map[string]string{"name": name}, &out); err != nil {
		return Minted{}, err
	}
	if out.ID == "" || out.APIKey.Value == "" {
		return Minted{}, errors.New("openai admin API: the new service account came without an API key")
	}
	return Minted{ID: out.ID, Key: secret.New(out.APIKey.Value)}, nil
}

// Delete removes the service account id, and so its key.
func (o *OpenAI) Delete(ctx context.Context, id string) error {
	return o.do(ctx, http.MethodDelete, "/v1/organization/projects/"+url.PathEscape(o.Project)+"/service_accounts/"+url.PathEscape(id), nil, nil)
}

// Minter creates and deletes upstream keys.
type Minter interface {
	Create(ctx context.Context, name string) (Minted, error)
	Delete(ctx context.Context, id string) error
}

// Admin is the part of keygate's admin API a rotation uses (so every step
// is authorized and audited); *adminclient.Client implements it.
type Admin interface {
	CreateProvider(ctx context.Context, req adminapi.CreateProviderRequest) (adminapi.Provider, error)
	RotateProvider(ctx context.Context, name string, key secret.String, grace string) (adminapi.ProviderRotation, error)
	PutSecret(ctx context.Context, name string, value secret.String) (adminapi.Secret, error)
	SecretValue(ctx context.Context, name string, version int) (secret.String, int, error)
}

// State is what keygate remembers of a provider's minted keys, kept as a
// vault secret (mint/PROVIDER): the ids only, never a key.
type State struct {
	Current   string    `json:"current"`
	CreatedAt time.Time `json:"created_at"`
	Retiring  []Retired `json:"retiring,omitempty"`
}

// Retired is a replaced key, deleted upstream once DeleteAt has passed.
type Retired struct {
	ID       string    `json:"id"`
	DeleteAt time.Time `json:"delete_at"`
}

// Rotator creates, rotates and retires the keys of one provider.
type Rotator struct {
	Provider string // the keygate provider served with the minted keys
	Minter   Minter
	Admin    Admin
	Overlap  time.Duration // how long a replaced key keeps working (default 1h)
	Every    time.Duration // rotate when the current key is this old; 0 never on schedule
	Now      func() time.Time
}

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Rotator) stateName() string { return StateName(r.Provider) }

func (r *Rotator) load(ctx context.Context) (State, error) {
	v, _, err := r.Admin.SecretValue(ctx, r.stateName(), 0)
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal([]byte(v.Reveal()), &s); err != nil {
		return State{}, fmt.Errorf("mint: secret %s does not hold minting state", r.stateName())
	}
	return s, nil
}

func (r *Rotator) save(ctx context.Context, s State) error {
	b, _ := json.Marshal(s)
	_, err := r.Admin.PutSecret(ctx, r.stateName(), secret.New(string(b)))
	return err
}

// Start mints the first key and registers the provider with it.
func (r *Rotator) Start(ctx context.Context, req adminapi.CreateProviderRequest) error {
	m, err := r.Minter.Create(ctx, "keygate-"+r.Provider+"-"+r.now().UTC().Format("20060102T150405"))
	if err != nil {
		return err
	}
	req.Name, req.APIKey = r.Provider, m.Key.Reveal()
	if _, err := r.Admin.CreateProvider(ctx, req); err != nil {
		_ = r.Minter.Delete(ctx, m.ID)
		return fmt.Errorf("mint: register provider %s: %w", r.Provider, err)
	}
	return r.save(ctx, State{Current: m.ID, CreatedAt: r.now().UTC()})
}

// Rotate mints a new key, makes it the provider's key at once (requests
// in flight finish with the old one), and retires the old key: it is
// deleted upstream after Overlap, by RunDue. A leak report or an alert
// calls it for an immediate rotation.
func (r *Rotator) Rotate(ctx context.Context) error {
	s, err := r.load(ctx)
	if err != nil {
		return err
	}
	m, err := r.Minter.Create(ctx, "keygate-"+r.Provider+"-"+r.now().UTC().Format("20060102T150405"))
	if err != nil {
		return err
	}
	overlap := r.Overlap
	if overlap <= 0 {
		overlap = time.Hour
	}
	if _, err := r.Admin.RotateProvider(ctx, r.Provider, m.Key, overlap.String()); err != nil {
		_ = r.Minter.Delete(ctx, m.ID)
		return fmt.Errorf("mint: rotate provider %s: %w", r.Provider, err)
	}
	s.Retiring = append(s.Retiring, Retired{ID: s.Current, DeleteAt: r.now().Add(overlap).UTC()})
	s.Current, s.CreatedAt = m.ID, r.now().UTC()
	return r.save(ctx, s)
}

// Done is what RunDue did.
type Done struct {
	Rotated bool     // a new key was made current
	Deleted []string // ids of the replaced keys deleted upstream
}

// RunDue deletes retired keys whose overlap has passed and rotates when
// the current key is older than Every.
func (r *Rotator) RunDue(ctx context.Context) (Done, error) {
	var done Done
	s, err := r.load(ctx)
	if err != nil {
		return done, err
	}
	now := r.now()
	var keep []Retired
	for _, x := range s.Retiring {
		if now.Before(x.DeleteAt) {
			keep = append(keep, x)
			continue
		}
		if err := r.Minter.Delete(ctx, x.ID); err != nil {
			return done, err
		}
		done.Deleted = append(done.Deleted, x.ID)
	}
	if len(done.Deleted) > 0 {
		s.Retiring = keep
		if err := r.save(ctx, s); err != nil {
			return done, err
		}
	}
	if r.Every > 0 && !now.Before(s.CreatedAt.Add(r.Every)) {
		if err := r.Rotate(ctx); err != nil {
			return done, err
		}
		done.Rotated = true
	}
	return done, nil
}

// RotateUnlessNewer rotates unless the current key was made after seen:
// a key found leaked at seen is replaced once, however many nodes found
// it. It reports whether it rotated.
func (r *Rotator) RotateUnlessNewer(ctx context.Context, seen time.Time) (bool, error) {
	s, err := r.load(ctx)
	if err != nil {
		return false, err
	}
	if s.CreatedAt.After(seen) {
		return false, nil
	}
	return true, r.Rotate(ctx)
}

// NextDue is when RunDue next has work: the current key reaching Every,
// or the first replaced key's overlap ending. It is the zero time when
// there is none.
func (r *Rotator) NextDue(ctx context.Context) (time.Time, error) {
	s, err := r.load(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	if r.Every > 0 {
		next = s.CreatedAt.Add(r.Every)
	}
	for _, x := range s.Retiring {
		if next.IsZero() || x.DeleteAt.Before(next) {
			next = x.DeleteAt
		}
	}
	return next, nil
}
