package mint

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// Kinds of upstream that keygate mints keys with.
const (
	KindOpenAI     = "openai"     // project service accounts, with an organization admin key
	KindOpenRouter = "openrouter" // API keys, with a provisioning key
	// KindAnthropic holds an Anthropic Admin API key, which cannot create
	// keys: keygate disables a leaked key with it, and mints none.
	KindAnthropic = "anthropic"
)

// ErrCannotMint means the provider's admin API creates no keys (Anthropic's).
var ErrCannotMint = errors.New("this provider's admin API cannot create keys, so keygate does not mint or rotate them")

// DefaultOverlap is how long a replaced key keeps working when Config sets none.
const DefaultOverlap = time.Hour

// MinRotateEvery bounds how often a key is rotated on schedule.
const MinRotateEvery = time.Second

// Config is how keygate mints one provider's keys. It is kept as the
// vault secret ConfigName(provider) and holds no key: the admin credential
// is the vault secret AdminKeyName(provider).
type Config struct {
	Kind          string `json:"kind"`
	OpenAIProject string `json:"openai_project,omitempty"`
	AdminURL      string `json:"admin_url,omitempty"` // the admin API, when not the provider's public one
	// Overlap is how long a replaced key keeps working before it is
	// deleted upstream.
	Overlap time.Duration `json:"overlap"`
	// RotateEvery makes keygate serve rotate the key once it is this old;
	// 0 rotates only when asked or when the key is found leaked.
	RotateEvery time.Duration `json:"rotate_every,omitempty"`
}

// ConfigName names the vault secret holding a provider's Config.
func ConfigName(provider string) string { return "mint/" + provider + "/config" }

// StateName names the vault secret holding a provider's State.
func StateName(provider string) string { return "mint/" + provider }

// AdminKeyName names the vault secret holding a provider's admin credential.
func AdminKeyName(provider string) string { return "mint/" + provider + "/admin-key" }

// ProviderOfConfig returns the provider a secret named by ConfigName
// belongs to, and whether name is one.
func ProviderOfConfig(name string) (string, bool) {
	p, ok := strings.CutPrefix(name, "mint/")
	if !ok {
		return "", false
	}
	p, ok = strings.CutSuffix(p, "/config")
	return p, ok && p != "" && !strings.Contains(p, "/")
}

// Check reports what is wrong with c, naming the field.
func (c Config) Check() error {
	switch c.Kind {
	case KindOpenAI:
		if c.OpenAIProject == "" {
			return errors.New("openai_project is required: the OpenAI project (proj_...) the service accounts belong to")
		}
	case KindOpenRouter:
	case KindAnthropic:
		if c.RotateEvery != 0 {
			return errors.New("rotate_every cannot be set for anthropic: its Admin API creates no keys to rotate to")
		}
	default:
		return fmt.Errorf("kind %q is not one keygate holds an admin credential for: use %s, %s or %s", c.Kind, KindOpenAI, KindOpenRouter, KindAnthropic)
	}
	if c.Overlap < 0 {
		return errors.New("overlap must not be negative")
	}
	if c.RotateEvery != 0 && c.RotateEvery < MinRotateEvery {
		return fmt.Errorf("rotate_every must be at least %s, or 0 for no schedule", MinRotateEvery)
	}
	return nil
}

// Encode is c as it is stored.
func (c Config) Encode() secret.String {
	b, _ := json.Marshal(c)
	return secret.New(string(b))
}

// ParseConfig reads a stored Config. The first form keygate stored (three
// lines: OpenAI project, admin URL, overlap) is read as an OpenAI Config.
func ParseConfig(s string) (Config, error) {
	var c Config
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			return Config{}, fmt.Errorf("not minting configuration: %w", err)
		}
	} else {
		parts := strings.SplitN(s, "\n", 3)
		if len(parts) != 3 {
			return Config{}, errors.New("not minting configuration")
		}
		ov, err := time.ParseDuration(parts[2])
		if err != nil {
			return Config{}, fmt.Errorf("overlap: %w", err)
		}
		c = Config{Kind: KindOpenAI, OpenAIProject: parts[0], AdminURL: parts[1], Overlap: ov}
	}
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Minter returns what creates and deletes c's keys with the admin
// credential adminKey, reached through hc (nil: a client with a timeout).
func (c Config) Minter(adminKey secret.String, hc *http.Client) (Minter, error) {
	switch c.Kind {
	case KindOpenAI:
		return &OpenAI{BaseURL: c.AdminURL, AdminKey: adminKey, Project: c.OpenAIProject, HTTP: hc}, nil
	case KindOpenRouter:
		return &OpenRouter{BaseURL: c.AdminURL, ProvisioningKey: adminKey, HTTP: hc}, nil
	case KindAnthropic:
		return nil, fmt.Errorf("%s: %w", c.Kind, ErrCannotMint)
	}
	return nil, c.Check()
}

// Mints reports whether keygate mints and rotates c's keys (not Anthropic's).
func (c Config) Mints() bool { return c.Kind != KindAnthropic }

// Anthropic returns what disables c's leaked keys, for KindAnthropic.
func (c Config) Anthropic(adminKey secret.String, hc *http.Client) *Anthropic {
	return &Anthropic{BaseURL: c.AdminURL, AdminKey: adminKey, HTTP: hc}
}

// Rotator returns the rotator of provider's keys under c.
func (c Config) Rotator(provider string, m Minter, admin Admin) *Rotator {
	ov := c.Overlap
	if ov <= 0 {
		ov = DefaultOverlap
	}
	return &Rotator{Provider: provider, Minter: m, Admin: admin, Overlap: ov, Every: c.RotateEvery}
}
