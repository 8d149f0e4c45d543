// Package config holds keygate's typed configuration: defaults, then a YAML
// file, then KEYGATE_* environment variables, then command-line flags, each
// overriding the one before. Validate checks the result once at start and
// names the field at fault, so a typo fails loudly instead of half-working.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/jsonpeek"
)

// Config is everything `keygate serve` can be told. Field tags give the YAML
// key; the environment variable is KEYGATE_ followed by the YAML path in upper
// case joined by underscores (tls.cert -> KEYGATE_TLS_CERT).
type Config struct {
	// DataDir holds the SQLite database, the master key file and generated TLS files.
	DataDir string `yaml:"data_dir"`
	// Database is a PostgreSQL URL (postgres://...) or a SQLite file (sqlite:///path);
	// empty means <data_dir>/keygate.db.
	Database string `yaml:"database"`
	// MasterKeyFile is the local key-encryption key; empty means <data_dir>/master.key.
	MasterKeyFile string `yaml:"master_key_file"`
	// BootstrapCredential says what the first start does for the first
	// admin credential: print (the default) makes one and prints it once on
	// standard output; none makes none, for platforms whose standard output
	// is a log pipeline: issue one from inside with keygate admin token create.
	BootstrapCredential string `yaml:"bootstrap_credential"`
	// KEK is the URL of the key-encryption key that wraps every data key:
	// file:///path (a local key file; the default, at master_key_file),
	// passphrase://?env=NAME, passphrase://?file=/path or passphrase:// (asked
	// on the terminal), or a KMS key: awskms://, gcpkms://, azurekeyvault://,
	// hashivault://, or base64key:// (a local key, for trials).
	KEK string `yaml:"kek"`
	// KEKPrevious lists KEK URLs that still unwrap records not yet rewrapped
	// by a rotation. A rotation leaves a locator for a KEK whose URL holds
	// no key material, so this is needed only for one whose URL is its key
	// (base64key://), or to recover from an unusual state.
	KEKPrevious []string `yaml:"kek_previous"`
	// Vault tunes the secrets store.
	Vault Vault `yaml:"vault"`
	// Limits configures how keys' rate limits, quotas and budgets are kept.
	Limits Limits `yaml:"limits"`
	// Tokens configures the short-lived access tokens keys are exchanged for.
	Tokens Tokens `yaml:"tokens"`
	// Risk configures the zero-trust risk rules.
	Risk Risk `yaml:"risk"`
	// Audit configures where the audit trail is written besides the database.
	Audit Audit `yaml:"audit"`
	// Alerts configures where anomaly alerts go and what they do.
	Alerts Alerts `yaml:"alerts"`
	// OTP limits wrong one-time passwords (a key's step-up), across every node.
	OTP OTP `yaml:"otp"`
	// Metrics configures the Prometheus metrics on the admin listener.
	Metrics Metrics `yaml:"metrics"`
	// Syslog sets how audit.syslog and alerts.syslog write: format,
	// host name, facility and the collector's CA.
	Syslog Syslog `yaml:"syslog"`
	// Tracing exports OpenTelemetry traces of gateway requests; off
	// unless tracing.endpoint is set.
	Tracing Tracing `yaml:"tracing"`
	// Routing declares deployments and the model aliases clients call.
	Routing Routing `yaml:"routing"`
	// Services are HTTP APIs reachable through /proxy/{name}/..., with
	// their credential injected from the vault.
	Services map[string]Service `yaml:"services"`
	// Prices sets or overrides model prices in US dollars per million
	// tokens, for spend budgets: {"gpt-4o": {"input": 2.5, "output": 10}}.
	// A name ending in * covers every model it prefixes.
	Prices map[string]ModelPrice `yaml:"prices"`
	// Listen is the gateway (data plane) address.
	Listen string `yaml:"listen"`
	// AdminListen is the admin API address.
	AdminListen string `yaml:"admin_listen"`
	// TLS configures HTTPS on both listeners.
	TLS TLS `yaml:"tls"`
	// AllowPlainHTTP permits plain HTTP on a non-loopback address, for a
	// TLS-terminating proxy in front of keygate.
	AllowPlainHTTP bool `yaml:"allow_plain_http"`
	// MaxBodyBytes caps a client request body; larger requests get 413.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// MemoryLimit is the Go runtime's soft memory limit: near it the
	// collector runs more often rather than let the heap grow. 0 keeps
	// GOMEMLIMIT if set, else takes 90% of the container's memory limit,
	// else sets none (internal/memlimit).
	MemoryLimit ByteSize `yaml:"memory_limit"`
	// Client bounds how long, and with how much memory, keygate waits on
	// its clients, on both listeners.
	Client Client `yaml:"client"`
	// Upstream tunes the connections to providers.
	Upstream Upstream `yaml:"upstream"`
	// ShutdownGrace bounds how long in-flight requests and streams may run after a stop signal.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// KeyCacheTTL is how long a verified key is trusted before it is read again.
	// Revocations made through this node apply on the next request regardless.
	KeyCacheTTL time.Duration `yaml:"key_cache_ttl"`
	// KeyOutageGrace is how much longer a key this node verified lately
	// still answers while the database cannot be reached (0: not at all).
	KeyOutageGrace time.Duration `yaml:"key_outage_grace"`
	// ProviderRefresh is how often the provider table is reloaded, so changes
	// made through another node sharing the database are picked up.
	ProviderRefresh time.Duration `yaml:"provider_refresh"`
	// TrustedProxies lists CIDRs whose X-Forwarded-For (and, without
	// PublicURL, X-Forwarded-Proto and X-Forwarded-Host) is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// PublicURL is the gateway's URL as clients reach it, such as
	// https://keygate.example.com behind a TLS-terminating proxy: the
	// OAuth issuer and metadata URLs keygate hands MCP clients use it.
	// Empty: the request's own scheme and host, or a trusted proxy's
	// forwarded ones.
	PublicURL string `yaml:"public_url"`
	// Egress lists the internal addresses keygate's webhooks may reach.
	Egress Egress `yaml:"egress"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Roles defines custom roles beside the built-in ones: a role name
	// and the permissions it grants, as in {"release-manager":
	// ["keys.read", "keys.rotate"]}; "keys.update:own" grants on the
	// holder's own keys only. An unknown permission is an error naming it.
	Roles map[string][]string `yaml:"roles"`
	// Approvals makes sensitive admin actions wait for a second person.
	Approvals Approvals `yaml:"approvals"`
	// Leaks configures the outbound credential check on the data path.
	Leaks Leaks `yaml:"leaks"`
	// Workloads lets workloads sign in with OIDC identity tokens instead
	// of keygate keys, and grants keys vault secrets (workloads.go).
	Workloads Workloads `yaml:"workloads"`
	// SignIn configures how people sign in: sessions, second factors,
	// single sign-on and passkeys (signin.go).
	SignIn SignIn `yaml:"signin"`
	// Sources configures references to keys kept in cloud secret managers
	// and Vault, and the clouds' identity for upstreams (sources.go).
	Sources Sources `yaml:"sources"`
}

// TLS configures HTTPS. Cert and Key go together; SelfSigned generates a
// certificate for trials instead.
type TLS struct {
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	SelfSigned bool   `yaml:"self_signed"`
	// ClientCA is a PEM file of the CAs whose client certificates the
	// gateway accepts (mutual TLS); keys that require a certificate, and
	// tokens bound to one, work only with it.
	ClientCA string `yaml:"client_ca"`
}

// Enabled reports whether keygate serves HTTPS.
func (t TLS) Enabled() bool { return t.Cert != "" || t.SelfSigned }

// Client bounds what a client connection can hold of keygate: a client
// that sends its headers or body slowly, or stops half-way, is cut off,
// and request bodies held in memory at once are capped.
type Client struct {
	// ReadHeaderTimeout bounds the wait for a request's headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadBodyTimeout bounds the wait for a request's whole body, from the
	// end of its headers; a body that stalls is answered 408 and its
	// connection closed. It does not bound the response: streams run as
	// long as the upstream takes.
	ReadBodyTimeout time.Duration `yaml:"read_body_timeout"`
	// IdleTimeout closes a kept-alive connection that sends nothing more.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxInflightBodyBytes caps the request bodies (and their translated
	// copies) the gateway holds in memory at once; a request that would
	// pass it waits briefly, then gets 503 with Retry-After.
	MaxInflightBodyBytes ByteSize `yaml:"max_inflight_body_bytes"`
	// WebSocket bounds the Responses API's WebSocket mode (Codex CLI's
	// transport) on the gateway.
	WebSocket WebSocket `yaml:"websocket"`
}

// WebSocket bounds the gateway's WebSocket connections. A message is
// capped at max_body_bytes, after decompression.
type WebSocket struct {
	// IdleTimeout closes a connection that sends no request for this
	// long (default 10 minutes).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxLifetime closes a connection this long after it opened
	// (default 60 minutes, OpenAI's own limit); clients reconnect.
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// MaxPerKey caps the connections one key or token family holds open
	// on a node at once (default 32); one more is refused with 429
	// before the upgrade. Codex opens one per session.
	MaxPerKey int `yaml:"max_per_key"`
	// DisableCompression stops keygate negotiating permessage-deflate
	// (RFC 7692, without context takeover), which it otherwise accepts
	// from clients and offers to providers: an agent's full context,
	// sent again with every turn, shrinks several times on the wire.
	DisableCompression bool `yaml:"disable_compression"`
}

// Egress bounds where keygate sends webhooks: alert webhooks and Slack,
// the audit webhook, and rotation deliveries set through the admin API.
// Each connection is checked after DNS; by default only public addresses
// are reached, so no URL can point keygate at a cloud metadata endpoint or
// an internal service. Passthrough services use their own allow_private;
// providers are reached wherever their base URL says (a local model server
// is a provider like any other).
type Egress struct {
	// Allow lists the loopback, private or other special-purpose
	// addresses and CIDRs webhooks may reach, such as an internal SIEM
	// collector at 10.1.2.3 or 10.1.0.0/16.
	Allow []string `yaml:"allow"`
}

// EgressPolicy is the policy Egress describes; call it on a validated
// configuration.
func (c Config) EgressPolicy() egress.Policy {
	allow, _ := egress.ParsePrefixes(c.Egress.Allow)
	return egress.Policy{Allow: allow, What: "egress.allow"}
}

// Upstream tunes the HTTP client that talks to providers.
type Upstream struct {
	// DialTimeout bounds connecting to a provider.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for a provider's first response
	// byte; reasoning models can think for minutes, so the default is long.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// MaxIdleConnsPerHost sizes the keep-alive pool per provider.
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host"`
}

// Limits configures admission control.
type Limits struct {
	// Redis is a redis:// URL whose server keeps every node's counters, so
	// N nodes enforce one limit; empty keeps counters in this process.
	Redis string `yaml:"redis"`
	// Timezone is where quota and budget days and months start, and where
	// usage days are named (an IANA name such as Europe/Berlin).
	Timezone string `yaml:"timezone"`
	// DefaultMaxTokens is the output reserved for a request that sets no
	// max_tokens, until its real usage settles it.
	DefaultMaxTokens int64 `yaml:"default_max_tokens"`
	// AuthFailures failed authentications per AuthFailureWindow are
	// allowed from one client address and against one key prefix; then
	// requests are refused until the window refills. 0 disables it.
	AuthFailures      int64         `yaml:"auth_failures"`
	AuthFailureWindow time.Duration `yaml:"auth_failure_window"`
	// OutageLease is the share of each quota and budget in use that a
	// node leases from Redis while it answers, and spends from alone when
	// it does not (0 to 0.5; 0 refuses quotas and budgets while Redis is
	// down). See docs/limits.md.
	OutageLease float64 `yaml:"outage_lease"`
}

// Routing declares deployments (a model at a registered provider, with its
// weight, price and the provider's own rate limits) and the model aliases
// clients call, each served by a list of deployments with a strategy and
// failover.
type Routing struct {
	Deployments []Deployment     `yaml:"deployments"`
	Aliases     map[string]Alias `yaml:"aliases"`
	// Breaker takes a failing deployment out: after Failures failures in a
	// row (default 5) it is skipped for Cooldown (default 30s), then one
	// probe request decides whether it comes back.
	Breaker struct {
		Failures int           `yaml:"failures"`
		Cooldown time.Duration `yaml:"cooldown"`
	} `yaml:"breaker"`
}

// Deployment is one model at one or more registered providers.
type Deployment struct {
	Name string `yaml:"name" json:"name,omitempty"`
	// Provider is the registered provider (its credential, base URL and
	// API dialect) that serves the model.
	Provider string `yaml:"provider" json:"provider,omitempty"`
	// Providers, instead of Provider, is a pool of registered providers of
	// one service, each with its own key: requests spread over them, each
	// key with its own RPM and TPM.
	Providers []string `yaml:"providers" json:"providers,omitempty"`
	// Model is the model's name at the provider.
	Model string `yaml:"model" json:"model,omitempty"`
	// Weight is the deployment's share under the weighted strategy (default 1).
	Weight int `yaml:"weight" json:"weight,omitempty"`
	// Env, when set, is the environment the deployment serves (only keys
	// of that environment may reach it); else the provider's.
	Env string `yaml:"env" json:"env,omitempty"`
	// RPM and TPM are the provider's own limits for this key and model:
	// keygate never sends more (0: no limit).
	RPM int64 `yaml:"rpm" json:"rpm,omitempty"`
	TPM int64 `yaml:"tpm" json:"tpm,omitempty"`
	// Price overrides the price table for this deployment.
	Price *ModelPrice `yaml:"price" json:"price,omitempty"`
}

// Alias is a model name clients call, served by deployments.
type Alias struct {
	// Strategy orders the deployments per request: priority (default),
	// weighted, least-busy, lowest-latency or lowest-cost.
	Strategy    string   `yaml:"strategy" json:"strategy,omitempty"`
	Deployments []string `yaml:"deployments" json:"deployments,omitempty"`
	// MaxAttempts bounds the deployments tried per request (default: all, at most 3).
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts,omitempty"`
	// Timeout bounds the time to a response from any deployment, across
	// attempts (default 60s).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// AttemptTimeout bounds one deployment's time to response headers, so
	// a hung one leaves time for the next (default: the rest of Timeout).
	AttemptTimeout time.Duration `yaml:"attempt_timeout" json:"attempt_timeout,omitempty"`
}

// Service is an HTTP API keygate forwards /proxy/{name}/... to, with the
// credential a vault secret holds put where the API wants it.
type Service struct {
	// BaseURL is where requests go: https://api.stripe.com, or with a base
	// path, https://api.example.com/v2.
	BaseURL string `yaml:"base_url" json:"base_url,omitempty"`
	// Secret names the vault secret holding the credential (keygate secret put).
	Secret string `yaml:"secret" json:"secret,omitempty"`
	// Auth is how the credential is sent: bearer (Authorization: Bearer),
	// header (AuthName: AuthPrefix+credential), query (?AuthName=credential)
	// or basic (AuthUser as user name and the credential as password, or
	// the credential as user name when AuthUser is empty).
	Auth       string `yaml:"auth" json:"auth,omitempty"`
	AuthName   string `yaml:"auth_name" json:"auth_name,omitempty"`
	AuthPrefix string `yaml:"auth_prefix" json:"auth_prefix,omitempty"`
	AuthUser   string `yaml:"auth_user" json:"auth_user,omitempty"`
	// AllowPrivate lets keygate connect to private, loopback and
	// link-local addresses for this service; leave it off unless the API
	// is deliberately internal.
	AllowPrivate bool `yaml:"allow_private" json:"allow_private,omitempty"`
	// Headers are fixed headers sent on every request, such as an API version.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// Env, when set, is the environment the service serves: only keys of
	// that environment may call it.
	Env string `yaml:"env" json:"env,omitempty"`
}

// Metrics configures the Prometheus metrics.
type Metrics struct {
	// KeyLabels adds per-key request and spend series labelled by key id
	// (one series per key: keep it off for many thousands of keys).
	KeyLabels bool `yaml:"key_labels"`
	// OverheadHeader sends X-Keygate-Overhead on every forwarded answer:
	// what keygate itself added, in milliseconds.
	OverheadHeader bool `yaml:"overhead_header"`
}

// Syslog configures the syslog writer the audit trail and alerts share.
type Syslog struct {
	// Format is rfc5424 (structured data; the default) or cef (ArcSight
	// Common Event Format).
	Format string `yaml:"format"`
	// Hostname is the HOSTNAME of every message (default: the machine's).
	Hostname string `yaml:"hostname"`
	// Facility is the syslog facility, 0-23 (default 10, authpriv).
	Facility int `yaml:"facility"`
	// CAFile holds the PEM certificates that verify a tls:// collector
	// (default: the system's roots).
	CAFile string `yaml:"ca_file"`
}

// Tracing configures OpenTelemetry traces, exported over OTLP.
type Tracing struct {
	// Endpoint is the collector: http://host:4318 or https://... for
	// OTLP/HTTP, grpc://host:4317 or grpcs://... for OTLP/gRPC. Empty
	// (the default) turns tracing off. Headers a collector wants (an API
	// key) go in OTEL_EXPORTER_OTLP_HEADERS, never in this file.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the fraction of traces started here that are kept
	// (default 1); a caller's sampled trace is always kept.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName is service.name in the collector (default "keygate").
	ServiceName string `yaml:"service_name"`
}

// Alerts configures anomaly alerts. Every alert is logged, counted in the
// metrics and put on the audit trail; these send it further.
type Alerts struct {
	// Webhook receives each alert as JSON, signed (X-Keygate-Signature), with retries.
	Webhook string `yaml:"webhook"`
	// Slack is a Slack-compatible incoming-webhook URL.
	Slack string `yaml:"slack"`
	// Syslog is udp://host:port, tcp://host:port or tls://host:port
	// (RFC 5425); see syslog: for the format.
	Syslog string `yaml:"syslog"`
	// AuthFailures is how many failed authentications from one address, or
	// against one key prefix, in a minute raise an alert (default 20).
	AuthFailures int `yaml:"auth_failures"`
	// Actions maps a rule to notify (the default), suspend (the key is
	// suspended on every node until an administrator resumes it) or
	// step-up (the key's requests need an access token minted with a
	// one-time password for StepUpFor, or until the key is resumed).
	Actions map[string]string `yaml:"actions"`
	// StepUpFor is how long a step-up action lasts (default 24h).
	StepUpFor time.Duration `yaml:"step_up_for"`
	// Rate tunes the rate-spike detector: alert when a key's rate over
	// Window, or over ShortWindow, exceeds Factor times its moving baseline
	// over Baseline, once the baseline has formed for Forming. A key with
	// less than History of recent activity is judged against the larger of
	// the fleet's typical per-key rate and LimitShare of its configured
	// request-rate limit instead. Zero fields keep the defaults (6x, 10s,
	// 2s, 10m, 5m, 5m, 0.1).
	Rate struct {
		Factor      float64       `yaml:"factor"`
		Window      time.Duration `yaml:"window"`
		ShortWindow time.Duration `yaml:"short_window"`
		Baseline    time.Duration `yaml:"baseline"`
		Forming     time.Duration `yaml:"forming"`
		History     time.Duration `yaml:"history"`
		LimitShare  float64       `yaml:"limit_share"`
	} `yaml:"rate"`
	// ShiftThreshold is the Jensen-Shannon divergence between a key's recent
	// and usual mix of providers, models and paths that raises an alert
	// (default 0.5).
	ShiftThreshold float64 `yaml:"shift_threshold"`
	// SpendFactor: alert when a key spends this many times faster than
	// usual and would exhaust its budget within the hour (default 4).
	SpendFactor float64 `yaml:"spend_factor"`
	// PerMinute bounds the alerts sent in a minute (default 60).
	PerMinute int `yaml:"per_minute"`
	// Loop tunes the runaway-agent rules: agent-loop when Repeats of a
	// key's requests within Window end their conversation alike (default
	// 10 in 10m); context-growth when a request reads ContextTokens of
	// context after its key's context grew with each of its last Growing
	// requests (default 150,000 after 20). A negative Repeats or
	// ContextTokens turns that rule off.
	Loop struct {
		Repeats       int           `yaml:"repeats"`
		Window        time.Duration `yaml:"window"`
		ContextTokens int64         `yaml:"context_tokens"`
		Growing       int           `yaml:"growing"`
	} `yaml:"loop"`
}

// OTP limits wrong one-time passwords. Counts are kept in the database, so
// the limits hold across every node.
type OTP struct {
	// MaxFailures is how many wrong codes for one key within Window lock
	// its one-time passwords out for Lockout (default 5).
	MaxFailures int `yaml:"max_failures"`
	// MaxClientFailures is how many wrong codes from one client address
	// (an IPv6 address counts as its /64), across keys, within Window lock
	// the address out (default 20).
	MaxClientFailures int `yaml:"max_client_failures"`
	// Window is the counting window (default 15m).
	Window time.Duration `yaml:"window"`
	// Lockout is how long a lockout lasts (default 15m).
	Lockout time.Duration `yaml:"lockout"`
}

// Audit configures the audit trail. The database always receives it.
type Audit struct {
	// File is a JSON-lines file (rotated at 64 MiB, 10 kept), mode 0600.
	File string `yaml:"file"`
	// Syslog is udp://host:port, tcp://host:port or tls://host:port
	// (RFC 5425); see syslog: for the format.
	Syslog string `yaml:"syslog"`
	// Webhook receives batches as JSON, signed (X-Keygate-Signature).
	Webhook string `yaml:"webhook"`
	// FailClosed refuses requests and admin changes while no sink keeps up
	// with the trail.
	FailClosed bool `yaml:"fail_closed"`
	// FlushInterval is how often recorded events are written to every
	// sink (default 100ms): the most a kill -9 can lose.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Deadline bounds one sink write; a sink that has not answered by then
	// counts as down, which fail_closed acts on (default 2s).
	Deadline time.Duration `yaml:"deadline"`
	// CheckpointInterval is how often, while events flow, a signed
	// checkpoint of the newest stored event is made and sent to every sink
	// (default 5s); none is made while the trail is idle.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// Tokens configures access tokens (RFC 9068 JWTs, EdDSA).
type Tokens struct {
	// Issuer is every token's iss, such as keygate's public URL.
	Issuer string `yaml:"issuer"`
	// Audience is every token's aud and the one keygate accepts.
	Audience string `yaml:"audience"`
}

// Risk configures the zero-trust rules applied to every request: each
// rule's action is allow (record only), step-up (a token with a one-time
// password is needed) or deny.
type Risk struct {
	// GeoIPDatabase is a MaxMind-format City or Country database (such as
	// GeoLite2-City.mmdb); without one, only hours and networks are judged.
	GeoIPDatabase    string   `yaml:"geoip_database"`
	AllowCountries   []string `yaml:"allow_countries"`
	DenyCountries    []string `yaml:"deny_countries"`
	CountryAction    string   `yaml:"country_action"`
	ImpossibleTravel string   `yaml:"impossible_travel"`
	UnusualHour      string   `yaml:"unusual_hour"`
	NewNetwork       string   `yaml:"new_network"`
}

// ModelPrice is a model's price in US dollars per million tokens.
type ModelPrice struct {
	Input  float64 `yaml:"input" json:"input,omitempty"`
	Output float64 `yaml:"output" json:"output,omitempty"`
}

// Location returns the limits time zone (call after Validate).
func (l Limits) Location() *time.Location {
	loc, err := time.LoadLocation(l.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Vault tunes the secrets store.
type Vault struct {
	// ReadCacheTTL is how long a provider key read from the vault is reused
	// before it is read again (0 reads every time). Changes made through
	// this node apply at once.
	ReadCacheTTL time.Duration `yaml:"read_cache_ttl"`
	// ProviderKeyGrace is how long a rotated-out provider key is kept before
	// it is destroyed, unless the rotation names its own grace.
	ProviderKeyGrace time.Duration `yaml:"provider_key_grace"`
	// SecretRecoveryWindow is how long a deleted secret can be restored
	// before it is purged.
	SecretRecoveryWindow time.Duration `yaml:"secret_recovery_window"`
	// JanitorInterval is how often superseded provider keys past their grace
	// and deleted secrets past their recovery window are destroyed.
	JanitorInterval time.Duration `yaml:"janitor_interval"`
}

// Log configures the process log.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	// Output is where log lines go: stderr (the default) or stdout, as
	// container platforms expect. With stdout, everything keygate writes
	// there is a log line: the start-up banner and warnings become records.
	Output string `yaml:"output"`
	// Requests writes one access-log line per gateway request.
	Requests bool `yaml:"requests"`
}

// Default returns the configuration keygate runs with when told nothing.
func Default(home string) Config {
	return Config{
		DataDir:      filepath.Join(home, ".keygate"),
		Listen:       "127.0.0.1:8787",
		AdminListen:  "127.0.0.1:8788",
		MaxBodyBytes: 32 << 20,
		Client: Client{
			ReadHeaderTimeout:    10 * time.Second,
			ReadBodyTimeout:      time.Minute,
			IdleTimeout:          2 * time.Minute,
			MaxInflightBodyBytes: 256 << 20,
			WebSocket: WebSocket{
				IdleTimeout: 10 * time.Minute,
				MaxLifetime: time.Hour,
				MaxPerKey:   32,
			},
		},
		ShutdownGrace:   30 * time.Second,
		KeyCacheTTL:     10 * time.Second,
		KeyOutageGrace:  5 * time.Minute,
		ProviderRefresh: 10 * time.Second,
		Sources:         defaultSources,
		Upstream: Upstream{
			DialTimeout:           10 * time.Second,
			ResponseHeaderTimeout: 10 * time.Minute,
			MaxIdleConnsPerHost:   256,
		},
		Log:    Log{Level: "info", Format: "text", Output: "stderr", Requests: true},
		Tokens: Tokens{Issuer: "keygate", Audience: "keygate"},
		Audit:  Audit{FlushInterval: 100 * time.Millisecond, Deadline: 2 * time.Second, CheckpointInterval: 5 * time.Second},
		OTP:    OTP{MaxFailures: 5, MaxClientFailures: 20, Window: 15 * time.Minute, Lockout: 15 * time.Minute},
		Risk:   Risk{CountryAction: "deny", ImpossibleTravel: "step-up", UnusualHour: "allow", NewNetwork: "allow"},
		Limits: Limits{
			Timezone:          "UTC",
			DefaultMaxTokens:  4096,
			AuthFailures:      10,
			AuthFailureWindow: 10 * time.Minute,
			OutageLease:       0.05,
		},
		Vault: Vault{
			ReadCacheTTL:         5 * time.Second,
			ProviderKeyGrace:     24 * time.Hour,
			SecretRecoveryWindow: 30 * 24 * time.Hour,
			JanitorInterval:      time.Minute,
		},
	}
}

// MinMemoryLimit is the smallest memory_limit accepted.
const MinMemoryLimit = 64 << 20

// Load builds the configuration: defaults, then the YAML file at path (if
// path is not empty), then KEYGATE_* variables read through getenv.
func Load(path string, home string, getenv func(string) string) (Config, error) {
	c := Default(home)
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: read %s: %w", path, err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, getenv); err != nil {
		return c, err
	}
	return c, nil
}

// DatabaseURL returns the database to open, defaulting to SQLite in the data dir.
func (c Config) DatabaseURL() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite://" + filepath.Join(c.DataDir, "keygate.db")
}

// MasterKeyPath returns the local master key file, defaulting into the data dir.
func (c Config) MasterKeyPath() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, "master.key")
}

// KEKURL returns the URL of the key-encryption key: kek, or the master key
// file as a file:// URL.
func (c Config) KEKURL() string {
	if c.KEK != "" {
		return c.KEK
	}
	return "file://" + filepath.ToSlash(c.MasterKeyPath())
}

// PublicOrigin returns PublicURL as scheme://host, lower-cased, or ""
// when it is not set (call after Validate).
func (c Config) PublicOrigin() string {
	u, err := url.Parse(c.PublicURL)
	if c.PublicURL == "" || err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// TrustedProxyPrefixes returns the parsed trusted proxy CIDRs (call after Validate).
func (c Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

// Validate checks every field and returns all problems at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.Database != "" {
		u, err := url.Parse(c.Database)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && u.Scheme != "sqlite") {
			bad("database", "must be postgres://... or sqlite:///path/to/file.db")
		}
	}
	for _, l := range []struct{ field, addr string }{{"listen", c.Listen}, {"admin_listen", c.AdminListen}} {
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil || port == "" {
			bad(l.field, "%q is not host:port (for example 127.0.0.1:8787)", l.addr)
			continue
		}
		if !c.TLS.Enabled() && !c.AllowPlainHTTP && !IsLoopback(host) {
			bad(l.field, "%q is reachable from other machines, and keys must not cross a network in clear: "+
				"configure tls.cert and tls.key (or tls.self_signed for a trial), or set allow_plain_http "+
				"when a TLS-terminating proxy sits in front of keygate", l.addr)
		}
	}
	if c.Listen != "" && c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		bad("admin_listen", "must differ from listen: the admin API never shares the gateway's listener")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key go together: set both or neither")
	}
	if c.TLS.ClientCA != "" && !c.TLS.Enabled() {
		bad("tls.client_ca", "needs TLS: set tls.cert and tls.key (or tls.self_signed)")
	}
	if c.TLS.SelfSigned && c.TLS.Cert != "" {
		bad("tls.self_signed", "cannot be combined with tls.cert")
	}
	if c.KEK != "" && c.MasterKeyFile != "" {
		bad("kek", "set either kek or master_key_file, not both (kek: file:///path names a key file)")
	}
	for i, k := range append([]string{c.KEK}, c.KEKPrevious...) {
		field := "kek"
		if i > 0 {
			field = fmt.Sprintf("kek_previous[%d]", i-1)
		}
		if k == "" && i == 0 {
			continue
		}
		if u, err := url.Parse(k); err != nil || u.Scheme == "" {
			bad(field, "must be a URL such as file:///path/master.key, passphrase://?env=NAME or awskms://...; got something else (not shown: it may hold key material)")
		}
	}
	if _, err := time.LoadLocation(c.Limits.Timezone); err != nil || c.Limits.Timezone == "" {
		bad("limits.timezone", "%q is not a time zone name such as UTC or Europe/Berlin", c.Limits.Timezone)
	}
	if c.Limits.Redis != "" {
		if u, err := url.Parse(c.Limits.Redis); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("limits.redis", "must be a redis:// or rediss:// URL")
		}
	}
	for _, a := range []struct{ field, v string }{
		{"risk.country_action", c.Risk.CountryAction}, {"risk.impossible_travel", c.Risk.ImpossibleTravel},
		{"risk.unusual_hour", c.Risk.UnusualHour}, {"risk.new_network", c.Risk.NewNetwork},
	} {
		switch a.v {
		case "allow", "step-up", "deny":
		default:
			bad(a.field, "%q must be allow, step-up or deny", a.v)
		}
	}
	if c.Tokens.Issuer == "" || c.Tokens.Audience == "" {
		bad("tokens", "issuer and audience must not be empty")
	}
	if c.Limits.DefaultMaxTokens <= 0 || c.Limits.DefaultMaxTokens > jsonpeek.MaxTokensCeiling {
		bad("limits.default_max_tokens", "must be a whole number from 1 to %d", jsonpeek.MaxTokensCeiling)
	}
	if c.Limits.AuthFailures < 0 {
		bad("limits.auth_failures", "must not be negative (0 turns throttling off)")
	}
	if c.Limits.AuthFailures > 0 && c.Limits.AuthFailureWindow <= 0 {
		bad("limits.auth_failure_window", "must be a positive duration such as 10m")
	}
	if !(c.Limits.OutageLease >= 0 && c.Limits.OutageLease <= 0.5) {
		bad("limits.outage_lease", "must be a share from 0 (no leases: quotas and budgets are refused while Redis is down) to 0.5, such as 0.05")
	}
	for name, p := range c.Prices {
		if p.Input < 0 || p.Output < 0 {
			bad("prices", "model %q: prices must not be negative", name)
		}
	}
	if c.Vault.ReadCacheTTL < 0 {
		bad("vault.read_cache_ttl", "must not be negative")
	}
	if c.MaxBodyBytes <= 0 {
		bad("max_body_bytes", "must be positive")
	}
	if c.MemoryLimit < 0 || (c.MemoryLimit > 0 && c.MemoryLimit < MinMemoryLimit) {
		bad("memory_limit", "must be 0 (GOMEMLIMIT, else 90%% of the container's limit, else none) or at least 64MiB: below that the collector would run almost all the time")
	}
	if c.Client.MaxInflightBodyBytes < c.MaxBodyBytes {
		bad("client.max_inflight_body_bytes", "must be at least max_body_bytes (%d), or no request of the largest size could ever be read", c.MaxBodyBytes)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"shutdown_grace", c.ShutdownGrace}, {"key_cache_ttl", c.KeyCacheTTL}, {"provider_refresh", c.ProviderRefresh},
		{"upstream.dial_timeout", c.Upstream.DialTimeout}, {"upstream.response_header_timeout", c.Upstream.ResponseHeaderTimeout},
		{"vault.provider_key_grace", c.Vault.ProviderKeyGrace}, {"vault.secret_recovery_window", c.Vault.SecretRecoveryWindow},
		{"vault.janitor_interval", c.Vault.JanitorInterval}, {"audit.flush_interval", c.Audit.FlushInterval},
		{"client.read_header_timeout", c.Client.ReadHeaderTimeout}, {"client.read_body_timeout", c.Client.ReadBodyTimeout},
		{"client.idle_timeout", c.Client.IdleTimeout},
		{"client.websocket.idle_timeout", c.Client.WebSocket.IdleTimeout}, {"client.websocket.max_lifetime", c.Client.WebSocket.MaxLifetime},
		{"audit.deadline", c.Audit.Deadline}, {"audit.checkpoint_interval", c.Audit.CheckpointInterval},
		{"otp.window", c.OTP.Window}, {"otp.lockout", c.OTP.Lockout},
	} {
		if d.v <= 0 {
			bad(d.field, "must be a positive duration such as 10s")
		}
	}
	if c.Client.WebSocket.MaxPerKey <= 0 {
		bad("client.websocket.max_per_key", "must be positive (open WebSocket connections per key on a node), such as 32")
	}
	if c.KeyOutageGrace < 0 {
		bad("key_outage_grace", "must be 0 (off) or a positive duration such as 5m")
	}
	if c.OTP.MaxFailures <= 0 {
		bad("otp.max_failures", "must be positive (wrong one-time passwords per key before a lockout)")
	}
	if c.OTP.MaxClientFailures <= 0 {
		bad("otp.max_client_failures", "must be positive (wrong one-time passwords per client address before a lockout)")
	}
	if r := c.Alerts.Rate; r.LimitShare < 0 || r.LimitShare > 1 {
		bad("alerts.rate.limit_share", "%v must be between 0 and 1 (the share of a key's rate limit taken as its usual rate)", r.LimitShare)
	}
	if r := c.Alerts.Rate; r.ShortWindow < 0 || r.History < 0 {
		bad("alerts.rate", "short_window and history must not be negative")
	}
	if c.Upstream.MaxIdleConnsPerHost <= 0 {
		bad("upstream.max_idle_conns_per_host", "must be positive")
	}
	if _, err := egress.ParsePrefixes(c.Egress.Allow); err != nil {
		bad("egress.allow", "%v", err)
	}
	for _, p := range c.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			bad("trusted_proxies", "%q is not an IP address or CIDR", p)
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
			u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
			bad("public_url", "must be an http(s) URL with a host and no path, query or fragment, such as https://keygate.example.com")
		}
	}
	errs = append(errs, c.validatePeople()...)
	errs = append(errs, c.validateLeaks()...)
	c.validateWorkloads(bad)
	c.validateSignIn(bad)
	c.validateSources(bad)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	switch c.Log.Output {
	case "", "stderr", "stdout":
	default:
		bad("log.output", "%q is not one of stderr, stdout", c.Log.Output)
	}
	switch c.BootstrapCredential {
	case "", "print", "none":
	default:
		bad("bootstrap_credential", "%q is not one of print, none", c.BootstrapCredential)
	}
	c.validateMore(bad)
	return errors.Join(errs...)
}

// IsLoopback reports whether a listen host only accepts connections from this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}
