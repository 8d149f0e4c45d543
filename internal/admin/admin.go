// Package admin serves keygate's admin REST API on the admin listener: the
// CLI and any automation manage providers and keys through it. Every route
// needs an admin credential (kg_admin_...) from the very first start; the
// wire types live in internal/adminapi.
package admin

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/leakreport"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/routing"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/web"
)

// Store is the persistence the admin API needs.
type Store interface {
	CreateProvider(ctx context.Context, p store.Provider) error
	GetProvider(ctx context.Context, name string) (store.Provider, error)
	ListProviders(ctx context.Context) ([]store.Provider, error)
	DeleteProvider(ctx context.Context, name string) error
	DeleteSecret(ctx context.Context, id string) error
	CreateKey(ctx context.Context, k store.Key) error
	GetKey(ctx context.Context, id string) (store.Key, error)
	GetKeyByName(ctx context.Context, name string) (store.Key, error)
	ListKeys(ctx context.Context) ([]store.Key, error)
	RevokeKey(ctx context.Context, id string, at time.Time) (store.Key, error)

	ListSecretVersions(ctx context.Context, id string) ([]store.SecretVersion, error)
	ScheduleDestroy(ctx context.Context, id string, below int, at time.Time) (int, error)
	CreateSecretMeta(ctx context.Context, m store.SecretMeta) error
	GetSecretMeta(ctx context.Context, name string) (store.SecretMeta, error)
	ListSecretMeta(ctx context.Context, includeDeleted bool) ([]store.SecretMeta, error)
	TouchSecretMeta(ctx context.Context, name string, at time.Time) error
	SoftDeleteSecret(ctx context.Context, name string, at, purgeAt time.Time) error
	RestoreSecretMeta(ctx context.Context, name string, at time.Time) error
	PurgeSecret(ctx context.Context, name string) error

	UpdateKeyLimits(ctx context.Context, id string, limits []byte) (store.Key, error)
	SetKeyGroup(ctx context.Context, id, group string) (store.Key, error)
	CreateGroup(ctx context.Context, g store.Group) error
	GetGroup(ctx context.Context, name string) (store.Group, error)
	ListGroups(ctx context.Context) ([]store.Group, error)
	UpdateGroupLimits(ctx context.Context, name string, limits []byte) error
	DeleteGroup(ctx context.Context, name string) error
	ListUsage(ctx context.Context, keyID, since string) ([]store.UsageRow, error)

	SetKeyScopes(ctx context.Context, id string, paths, ips []string, hours string) (store.Key, error)
	SetKeyServices(ctx context.Context, id string, services []string) (store.Key, error)
	SetKeySuspended(ctx context.Context, id string, at *time.Time) (store.Key, error)
	SetKeyStepUp(ctx context.Context, id string, until *time.Time) (store.Key, error)
	ShortenKeyExpiry(ctx context.Context, id string, at time.Time) (store.Key, error)
	AddRevocation(ctx context.Context, r store.Revocation) (int64, error)
	SetKeyRotation(ctx context.Context, id string, every, grace time.Duration, deliverTo string, next *time.Time) (store.Key, error)
	DueRotations(ctx context.Context, now time.Time) ([]store.Key, error)
	ClaimRotation(ctx context.Context, id string, due time.Time) (bool, error)
	SetKeyClientCert(ctx context.Context, id, match string) (store.Key, error)
	SetKeyLeakAction(ctx context.Context, id, action string) (store.Key, error)
	KeysExpiringInUse(ctx context.Context, now time.Time, window time.Duration) ([]store.Key, error)
}

// Vault encrypts secrets at rest.
type Vault interface {
	Put(ctx context.Context, id string, plaintext secret.String) (int, error)
	Get(ctx context.Context, id string) (secret.String, int, error)
	GetVersion(ctx context.Context, id string, version int) (secret.String, error)
	Forget(id string)
	KEKID() string
	Ensure(ctx context.Context, id string, n int) (secret.String, error)
}

// KEKRotator rotates the vault's key-encryption key.
type KEKRotator interface {
	Start(ctx context.Context, kek vault.KEK, url secret.String, batch int, interval time.Duration) (store.KEKRotation, error)
	Status(ctx context.Context) (vault.RotationStatus, error)
}

// KeyLifecycle changes keys' states with every side effect (store, this
// node's cache, the other nodes, the audit trail); *keylife.Service is one.
type KeyLifecycle interface {
	Suspend(ctx context.Context, id string, by keylife.Actor) (keylife.Change, error)
	Resume(ctx context.Context, id string, by keylife.Actor) (keylife.Change, error)
	Revoke(ctx context.Context, id string, by keylife.Actor) (keylife.Change, error)
	RequireStepUp(ctx context.Context, id string, until time.Time, by keylife.Actor) (keylife.Change, error)
	Rotate(ctx context.Context, id string, grace time.Duration, by keylife.Actor) (keylife.Rotation, error)
	Created(ctx context.Context, id string)
	Changed(ctx context.Context, id string)
}

// Hasher computes the stored HMAC of a key or admin credential.
type Hasher interface {
	Hash(raw string) [32]byte
}

// Options configures the admin API.
type Options struct {
	Store  Store
	Vault  Vault
	Hasher Hasher
	Log    *slog.Logger
	Now    func() time.Time

	// People keeps users, service accounts and teams; Credentials the
	// admin credentials; Approvals the requests waiting for a second
	// person. keygate's store is all three.
	People      PeopleStore
	Credentials CredentialStore
	Approvals   ApprovalStore
	// Invitations keeps invitations to join a team; nil turns invitations
	// off (their routes answer 501). InvitationTTL is how long a new one
	// works unless its request says; zero means DefaultInvitationTTL.
	Invitations   InvitationStore
	InvitationTTL time.Duration
	// Roles is the role table every route is decided with; nil means the
	// built-in roles alone.
	Roles *rbac.Table
	// Approval says which permissions need a second person's approval.
	Approval ApprovalPolicy
	// Authenticators turn credentials other than admin tokens and
	// sessions into principals; admin tokens are always accepted.
	Authenticators []Authenticator
	// SignIn, when set, signs people in (passwords, single sign-on,
	// passkeys, token exchange) to sessions, which every route accepts.
	SignIn *SignIn
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client address, for the audit trail and a credential's last use.
	TrustedProxies []netip.Prefix
	// AuthFailures throttles failed authentication per client address and
	// per admin token prefix; nil throttles nothing.
	AuthFailures *AuthFailureLimits
	// ProvidersChanged runs after a provider is added or removed, so the
	// gateway on this node routes with the change at once.
	ProvidersChanged func(ctx context.Context) error
	// Routing keeps the deployments, aliases and services managed through
	// the API; RoutingFile is what the configuration file defines, which
	// the API shows but does not change. Without Routing the routing
	// routes answer 501. A change runs ProvidersChanged, so this node
	// routes with it at once; other nodes follow the routing generation.
	Routing     RoutingStore
	RoutingFile routing.File
	// RoutingHealth reports the aliases this node routes with the health
	// of their deployments (breakers, recent upstream errors), for GET
	// /routing/health; without it that route answers 501. Node names this
	// node in the answer, since the health is its own.
	RoutingHealth func() []adminapi.AliasHealth
	Node          string
	// KeyRevoked makes this node's key cache forget a key, so the next
	// request reads it anew; the key service made without Keys calls it
	// after every change to a key.
	KeyRevoked func(keyID string)
	// Keys suspends, resumes, revokes and rotates keys, and announces new
	// and changed ones; keygate passes the one service its alert actions
	// and leak reports use too. Without it the API makes one from Store,
	// Hasher, KeyRevoked, Audit, Log and Now.
	Keys KeyLifecycle
	// UpstreamLeak, when set, answers a reported leak whose token is not a
	// keygate credential but may be a provider key keygate holds (see
	// leakreport.Responder.Upstream): a minted one is rotated at once.
	UpstreamLeak func(ctx context.Context, token secret.String, rep leakreport.Report) (target, action string, ok bool)
	// GroupsChanged runs after a group is created, changed or deleted, so
	// this node enforces the change at once.
	GroupsChanged func(ctx context.Context)
	// MCP keeps the MCP servers keygate fronts (the /mcp/servers routes
	// answer 501 without it); MCPChanged runs after one is added or
	// removed, so this node's gateway serves the change at once.
	MCP        MCPStore
	MCPChanged func(ctx context.Context)
	// MCPGrants keeps users' authorizations at MCP servers registered
	// with auth oauth (the /me/mcp/{name}/oauth routes answer 501
	// without it); MCPGrantChanged runs after one is made or revoked, so
	// this node's gateway uses the change at once.
	MCPGrants       MCPGrantStore
	MCPGrantChanged func(server, user string)
	// UsageLocation names usage days; nil means UTC.
	UsageLocation *time.Location

	// Rotator rotates the key-encryption key; OpenKEK opens (and probes)
	// the KEK a rotation names by URL. Without them the vault routes answer
	// 501.
	Rotator KEKRotator
	OpenKEK func(ctx context.Context, url string) (vault.KEK, error)
	// Backup writes an encrypted backup of keygate's state to w.
	Backup func(ctx context.Context, w io.Writer) error

	// Audit, when set, records admin actions and secret reads; AuditStore
	// and AuditKey (the checkpoint signing key's public half) serve search
	// and verification. With AuditFailClosed, changes are refused while
	// Audit is not Healthy.
	Audit interface {
		Record(ev audit.Event) error
		Healthy() bool
	}
	AuditStore AuditStore
	// Insights answers the overview, alerts and a key's recent events;
	// without it those routes answer 501.
	Insights        InsightStore
	AuditKey        ed25519.PublicKey
	AuditFailClosed bool

	// Egress decides where rotation webhooks may be delivered; the zero
	// policy allows public addresses only.
	Egress egress.Policy

	// Metrics, when set, is served at GET /metrics (Prometheus text
	// format), behind the admin credential like every admin route.
	Metrics http.Handler

	// Version and GatewayURL are reported by GET /status.
	Version    string
	GatewayURL string
	// ProviderKeyGrace is how long a rotated provider key is kept by
	// default (24h when zero); SecretRecoveryWindow how long a deleted
	// secret can be restored before it is purged (30 days when zero).
	ProviderKeyGrace     time.Duration
	SecretRecoveryWindow time.Duration

	// Sources lets provider keys and secrets be references to a cloud
	// secret manager or Vault (sources.go).
	Sources SourceOptions

	// AWSCredentials issues the AWS access key pairs bound to keygate
	// keys, for Bedrock clients that sign with SigV4 (awscreds.go); nil
	// turns the route off (501).
	AWSCredentials AWSCredentialIssuer
}

// API is the admin HTTP API.
type API struct {
	opts    Options
	handler http.Handler
	table   []endpoint // the route table, as registered
	public  *http.ServeMux
	csrf    *http.CrossOriginProtection
	warned  sync.Map // key id -> struct{}: expiry warnings given by this process
	// doc is the OpenAPI description (openapi.go), built on first request.
	docOnce sync.Once
	doc     []byte
	docErr  error
}

const maxAdminBody = 1 << 20

// New builds the admin API. It panics if a route has no permission
// decision: that is a programming error the tests catch.
func New(opts Options) *API {
	a, err := build(opts, nil)
	if err != nil {
		panic(err)
	}
	return a
}

// build makes the API; stub, when set, replaces every route's handler
// (the permission matrix test checks the decisions alone with it).
func build(opts Options, stub http.HandlerFunc) (*API, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProvidersChanged == nil {
		opts.ProvidersChanged = func(context.Context) error { return nil }
	}
	if opts.KeyRevoked == nil {
		opts.KeyRevoked = func(string) {}
	}
	if opts.GroupsChanged == nil {
		opts.GroupsChanged = func(context.Context) {}
	}
	if opts.Keys == nil {
		ko := keylife.Options{Store: opts.Store, Hasher: opts.Hasher, Forget: opts.KeyRevoked, Log: opts.Log, Now: opts.Now}
		if opts.Audit != nil {
			ko.Audit = opts.Audit.Record
		}
		opts.Keys = keylife.New(ko)
	}
	if opts.UsageLocation == nil {
		opts.UsageLocation = time.UTC
	}
	if opts.ProviderKeyGrace == 0 {
		opts.ProviderKeyGrace = 24 * time.Hour
	}
	if opts.SecretRecoveryWindow == 0 {
		opts.SecretRecoveryWindow = 30 * 24 * time.Hour
	}
	if opts.Roles == nil {
		t, err := rbac.NewTable(nil)
		if err != nil {
			return nil, err
		}
		opts.Roles = t
	}
	if opts.Approval.TTL == 0 {
		opts.Approval.TTL = time.Hour
	}
	for _, p := range opts.Approval.RequiredFor {
		if !rbac.Known(p) {
			return nil, fmt.Errorf("approvals.required_for: unknown permission %q", p)
		}
	}
	a := &API{opts: opts, public: http.NewServeMux(), csrf: http.NewCrossOriginProtection()}
	mux := http.NewServeMux()
	a.table = a.routes()
	if stub != nil {
		for i := range a.table {
			a.table[i].handler = stub
		}
	}
	if err := a.register(mux, a.table); err != nil {
		return nil, err
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no admin API route "+r.Method+" "+r.URL.Path)
	})
	// Outermost first: request id, access log, recovery, then authentication
	// before any route runs: there is no anonymous admin route. Every change
	// is recorded (auditActions); with audit.fail_closed, one the trail
	// cannot record is refused (auditGate). Each route then decides its
	// permission (authorize, in routes.go) before its handler runs.
	a.handler = web.Chain(mux,
		web.NewRequestIDs().Middleware,
		web.AccessLogRedacting(opts.Log, "admin request", nil, a.redactPath),
		web.Recover(opts.Log, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusInternalServerError, "internal", "keygate hit an internal error; see its log")
		}),
		securityHeaders,
		a.authenticate,
		a.auditActions,
		a.auditGate,
	)
	return a, nil
}

// ServeHTTP serves the admin API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	web.WriteJSON(w, http.StatusOK, adminapi.Status{Version: a.opts.Version, GatewayURL: a.opts.GatewayURL, KEKID: a.opts.Vault.KEKID()})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	web.WriteJSON(w, status, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: code, Message: msg}})
}

// newID returns prefix followed by 96 random bits in hex.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
