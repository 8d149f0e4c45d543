// Package adminapi holds the wire types of keygate's admin REST API, shared by
// the server (internal/admin) and its clients (the keygate CLI), so the two
// cannot disagree about a field name.
//
// Every path is under /api/v1 on the admin listener and needs
// "Authorization: Bearer kg_admin_...".
//
//	GET    /api/v1/whoami                  -> WhoAmI
//	POST   /api/v1/providers               CreateProviderRequest -> 201 Provider
//	GET    /api/v1/providers               -> ProviderList
//	GET    /api/v1/providers/{name}        -> Provider
//	DELETE /api/v1/providers/{name}        -> 204
//	POST   /api/v1/keys                    CreateKeyRequest -> 201 CreatedKey
//	GET    /api/v1/keys                    -> KeyList
//	GET    /api/v1/keys/{ref}              -> Key        (ref: key id or name)
//	POST   /api/v1/keys/{ref}/revoke       -> Key
//
// Errors answer with the matching HTTP status and an ErrorBody.
package adminapi

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prefix is the path prefix of every admin API route.
const Prefix = "/api/v1"

// Provider is an upstream provider as the admin API shows it: never its key.
type Provider struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Dialect   string    `json:"dialect"`
	BaseURL   string    `json:"base_url"`
	Models    []string  `json:"models"`
	Default   bool      `json:"default"`
	CreatedAt time.Time `json:"created_at"`
	Env       string    `json:"env,omitempty"` // only keys of this environment may use it
	// Preset is the known service the provider is, such as groq or azure-openai.
	Preset     string `json:"preset,omitempty"`
	APIVersion string `json:"api_version,omitempty"` // the api-version sent (Azure OpenAI)
	// Source, for a provider whose key is kept in a cloud secret manager
	// or Vault, is that reference and how reading it goes.
	Source *SourceRef `json:"source,omitempty"`
}

// CreateProviderRequest registers an upstream provider and its real API key.
// Dialect may be empty: "anthropic" for a provider named anthropic, else "openai".
// With Preset, Dialect and BaseURL default to the preset's.
type CreateProviderRequest struct {
	Preset     string   `json:"preset,omitempty"`
	APIVersion string   `json:"api_version,omitempty"`
	Name       string   `json:"name"`
	Dialect    string   `json:"dialect,omitempty"`
	BaseURL    string   `json:"base_url"`
	Models     []string `json:"models,omitempty"`
	Default    bool     `json:"default,omitempty"`
	APIKey     string   `json:"api_key"`
	Env        string   `json:"env,omitempty"` // such as prod: only keys of that environment may use it
	// APIKeyRef, instead of APIKey, keeps the key in its source
	// (awssm://NAME, azkv://VAULT/NAME, gcpsm://PROJECT/NAME,
	// vault://MOUNT/PATH#FIELD): keygate reads it now, and again every
	// RefRefresh; RefGrace is how long the last value read is served
	// once the source cannot be read (defaults: sources.refresh, sources.grace).
	APIKeyRef  string `json:"api_key_ref,omitempty"`
	RefRefresh string `json:"ref_refresh,omitempty"`
	RefGrace   string `json:"ref_grace,omitempty"`
}

// ProviderList is the answer to GET /api/v1/providers.
type ProviderList struct {
	Providers []Provider `json:"providers"`
}

// Key is a keygate API key as the admin API shows it: never the secret.
type Key struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Env            string     `json:"env"`
	Prefix         string     `json:"prefix"`
	Status         string     `json:"status"` // active, expired or revoked
	AllowModels    []string   `json:"allow_models"`
	AllowProviders []string   `json:"allow_providers"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt     *time.Time `json:"last_used_at,omitempty"`
	Limits         Limits     `json:"limits"`
	Group          string     `json:"group,omitempty"`
	AllowServices  []string   `json:"allow_services"`         // passthrough services; empty: none
	AllowTools     []string   `json:"allow_tools"`            // MCP tools as server/tool patterns, !deny; empty: none
	AllowPaths     []string   `json:"allow_paths"`            // "METHOD /path" rules; empty: any path
	AllowIPs       []string   `json:"allow_ips"`              // CIDRs; empty: any address
	Hours          string     `json:"hours,omitempty"`        // time windows, such as "mon-fri 08:00-20:00 Europe/Berlin"
	SuspendedAt    *time.Time `json:"suspended_at,omitempty"` // set while suspended
	// StepUpUntil is set while an alert requires a second factor for the key's requests.
	StepUpUntil *time.Time `json:"step_up_until,omitempty"`
	RotatedFrom string     `json:"rotated_from,omitempty"` // the key this one succeeded
	Rotation    *Rotation  `json:"rotation,omitempty"`     // automatic rotation, if set
	ClientCert  string     `json:"client_cert,omitempty"`  // "uri:spiffe://..." or "cn:NAME": required mutual-TLS certificate
	LeakAction  string     `json:"leak_action,omitempty"`  // block, redact or alert for credentials in its traffic; "" the global policy
	Team        string     `json:"team,omitempty"`         // the team the key belongs to
	Owner       string     `json:"owner,omitempty"`        // the name of the user who owns it within its team
	OwnerID     string     `json:"owner_id,omitempty"`
	CreatedBy   string     `json:"created_by,omitempty"` // who created it: a user's name or an admin credential's id
}

// Rotation is a key's automatic rotation policy.
type Rotation struct {
	Every     string     `json:"every"`          // such as 30d
	Grace     string     `json:"grace"`          // how long the rotated-out key keeps working, such as 24h
	DeliverTo string     `json:"deliver_to"`     // "secret:NAME" (a vault secret the app reads with keygate run) or "webhook:https://..."
	Next      *time.Time `json:"next,omitempty"` // when the next rotation is due
}

// CreateKeyRequest asks for a new keygate key. ExpiresIn takes Go durations
// plus days ("30d", "12h", "1d12h"); empty means the key does not expire.
type CreateKeyRequest struct {
	Name           string    `json:"name"`
	Env            string    `json:"env,omitempty"` // default "live"
	AllowModels    []string  `json:"allow_models,omitempty"`
	AllowProviders []string  `json:"allow_providers,omitempty"`
	AllowServices  []string  `json:"allow_services,omitempty"` // passthrough services the key may reach; none by default
	AllowTools     []string  `json:"allow_tools,omitempty"`    // MCP tools (server/tool patterns, !deny); none by default
	ExpiresIn      string    `json:"expires_in,omitempty"`
	Limits         Limits    `json:"limits,omitempty"`
	Group          string    `json:"group,omitempty"`       // an existing group whose limits the key shares
	AllowPaths     []string  `json:"allow_paths,omitempty"` // "POST /v1/embeddings", "GET /v1/models", "* /v1/*"
	AllowIPs       []string  `json:"allow_ips,omitempty"`   // CIDRs or addresses, IPv4 or IPv6
	Hours          string    `json:"hours,omitempty"`       // "mon-fri 08:00-20:00 Europe/Berlin"; windows separated by ;
	Rotation       *Rotation `json:"rotation,omitempty"`    // rotate automatically and deliver the successor
	ClientCert     string    `json:"client_cert,omitempty"` // require this client certificate: uri:SPIFFE-ID or cn:NAME
	// LeakAction overrides the global leaks: policy for every credential
	// found in the key's requests and answers: block, redact or alert.
	LeakAction string `json:"leak_action,omitempty"`
	// Team puts the key in a team, whose policy it must follow and whose
	// shared limits it obeys; default: the caller's team when it has
	// exactly one.
	Team string `json:"team,omitempty"`
}

// CreatedKey is the answer to key creation: the only time the secret is shown.
type CreatedKey struct {
	Key    Key    `json:"key"`
	Secret string `json:"secret"`
}

// KeyList is the answer to GET /api/v1/keys.
type KeyList struct {
	Keys []Key `json:"keys"`
}

// ErrorBody is the JSON body of every admin API error.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: a stable code for programs and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"` // bad_request, unauthorized, forbidden, not_found, conflict, not_implemented, unavailable, internal
	Message string `json:"message"`
}

// maxDays bounds durations at about 100 years, far inside time.Duration's range.
const maxDays = 36500

// ParseDuration parses a Go duration that may also use a "d" (24h) unit, such
// as "30d" or "1d12h". It rejects zero and negative durations.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 || n > maxDays {
			return 0, fmt.Errorf("duration %q: the days part must be a whole number up to %d, as in 30d or 1d12h", s, maxDays)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("duration %q: use units d, h, m or s, as in 30d, 12h or 90m", s)
		}
		rest = d
	}
	if rest > time.Duration(maxDays)*24*time.Hour {
		return 0, fmt.Errorf("duration %q is longer than %d days", s, maxDays)
	}
	d := time.Duration(days)*24*time.Hour + rest
	if d <= 0 {
		return 0, fmt.Errorf("duration must be positive, as in 30d or 12h")
	}
	return d, nil
}
