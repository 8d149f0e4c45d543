// Package admin serves keygate's admin REST API on the admin listener: the
// CLI and any automation manage providers and keys through it. Every route
// needs an admin credential (kg_admin_...) from the very first start; the
// wire types live in internal/adminapi.
package admin

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/egress"
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
	GetAdminTokenByHash(ctx context.Context, hash []byte) (store.AdminToken, error)

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
	// ProvidersChanged runs after a provider is added or removed, so the
	// gateway on this node routes with the change at once.
	ProvidersChanged func(ctx context.Context) error
	// KeyRevoked runs after a revocation or a change to a key, so this
	// node's key cache forgets the key before the next request.
	KeyRevoked func(keyID string)
	// GroupsChanged runs after a group is created, changed or deleted, so
	// this node enforces the change at once.
	GroupsChanged func(ctx context.Context)
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
	AuditStore      AuditStore
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
}

// API is the admin HTTP API.
type API struct {
	opts    Options
	handler http.Handler
	warned  sync.Map // key id -> struct{}: expiry warnings given by this process
}

const maxAdminBody = 1 << 20

// New builds the admin API.
func New(opts Options) *API {
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
	if opts.UsageLocation == nil {
		opts.UsageLocation = time.UTC
	}
	if opts.ProviderKeyGrace == 0 {
		opts.ProviderKeyGrace = 24 * time.Hour
	}
	if opts.SecretRecoveryWindow == 0 {
		opts.SecretRecoveryWindow = 30 * 24 * time.Hour
	}
	a := &API{opts: opts}
	mux := http.NewServeMux()
	p := adminapi.Prefix
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	mux.HandleFunc("GET "+p+"/whoami", a.whoAmI)
	mux.HandleFunc("GET "+p+"/status", a.status)
	mux.HandleFunc("GET "+p+"/audit/events", a.auditEvents)
	mux.HandleFunc("GET "+p+"/audit/verify", a.auditVerify)
	mux.HandleFunc("POST "+p+"/audit/ref", a.auditRef)
	mux.HandleFunc("GET "+p+"/audit/public-key", a.auditPublicKey)
	mux.HandleFunc("GET "+p+"/audit/nodes", a.auditNodes)
	mux.HandleFunc("GET "+p+"/audit/trail", a.auditRows(false))
	mux.HandleFunc("GET "+p+"/audit/checkpoints", a.auditRows(true))
	mux.HandleFunc("GET "+p+"/audit/webhook-key", a.webhookKey)
	mux.HandleFunc("POST "+p+"/audit/webhook-key/rotate", a.rotateWebhookKey)
	mux.HandleFunc("GET "+p+"/secrets", a.listSecrets)
	mux.HandleFunc(p+"/secrets/{path...}", a.secretRoute)
	mux.HandleFunc("POST "+p+"/providers/{name}/rotate", a.rotateProvider)
	mux.HandleFunc("POST "+p+"/vault/rotate-kek", a.rotateKEK)
	mux.HandleFunc("GET "+p+"/vault/status", a.vaultStatus)
	mux.HandleFunc("GET "+p+"/vault/backup", a.backup)
	mux.HandleFunc("POST "+p+"/providers", a.createProvider)
	mux.HandleFunc("GET "+p+"/providers", a.listProviders)
	mux.HandleFunc("GET "+p+"/providers/{name}", a.getProvider)
	mux.HandleFunc("DELETE "+p+"/providers/{name}", a.deleteProvider)
	mux.HandleFunc("POST "+p+"/keys", a.createKey)
	mux.HandleFunc("GET "+p+"/keys", a.listKeys)
	mux.HandleFunc("GET "+p+"/keys/{ref}", a.getKey)
	mux.HandleFunc("POST "+p+"/keys/{ref}/revoke", a.revokeKey)
	mux.HandleFunc("POST "+p+"/leaks", a.reportLeak)
	mux.HandleFunc("PATCH "+p+"/keys/{ref}", a.updateKey)
	mux.HandleFunc("POST "+p+"/keys/{ref}/suspend", a.suspendKey)
	mux.HandleFunc("POST "+p+"/keys/{ref}/resume", a.resumeKey)
	mux.HandleFunc("POST "+p+"/keys/{ref}/rotate", a.rotateKey)
	mux.HandleFunc("POST "+p+"/keys/{ref}/totp", a.enrollTOTP)
	mux.HandleFunc("GET "+p+"/keys/{ref}/usage", a.keyUsage)
	mux.HandleFunc("POST "+p+"/groups", a.createGroup)
	mux.HandleFunc("GET "+p+"/groups", a.listGroups)
	mux.HandleFunc("GET "+p+"/groups/{name}", a.getGroup)
	mux.HandleFunc("PATCH "+p+"/groups/{name}", a.updateGroup)
	mux.HandleFunc("DELETE "+p+"/groups/{name}", a.deleteGroup)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no admin API route "+r.Method+" "+r.URL.Path)
	})
	// Outermost first: request id, access log, recovery, then authentication
	// before any route runs: there is no anonymous admin route. Every change
	// is recorded (auditActions); with audit.fail_closed, one the trail
	// cannot record is refused (auditGate).
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
	return a
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

type tokenKey struct{}

// authenticate admits a request only with an active admin credential.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused := func() { a.auditAuthFailure(r) }
		raw, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			refused()
			writeError(w, http.StatusUnauthorized, "unauthorized", "send the admin credential as 'Authorization: Bearer kg_admin_...'")
			return
		}
		p, err := apikey.Parse(raw)
		if err != nil || p.Env != "admin" {
			refused()
			writeError(w, http.StatusUnauthorized, "unauthorized", "invalid admin credential")
			return
		}
		h := a.opts.Hasher.Hash(raw)
		tok, err := a.opts.Store.GetAdminTokenByHash(r.Context(), h[:])
		switch {
		case errors.Is(err, store.ErrNotFound):
			refused()
			writeError(w, http.StatusUnauthorized, "unauthorized", "invalid admin credential")
			return
		case err != nil:
			a.opts.Log.Error("admin credential lookup failed", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "keygate could not check the admin credential; try again")
			return
		}
		if subtle.ConstantTimeCompare(tok.Hash, h[:]) != 1 || tok.RevokedAt != nil {
			refused()
			writeError(w, http.StatusUnauthorized, "unauthorized", "invalid admin credential")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

func bearer(h string) (string, bool) {
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(h[len(p):])
	return t, t != ""
}

func (a *API) whoAmI(w http.ResponseWriter, r *http.Request) {
	tok, _ := r.Context().Value(tokenKey{}).(store.AdminToken)
	web.WriteJSON(w, http.StatusOK, adminapi.WhoAmI{TokenID: tok.ID, Name: tok.Name, Role: tok.Role})
}

// caller returns the admin credential the request was authenticated with.
func caller(r *http.Request) store.AdminToken {
	tok, _ := r.Context().Value(tokenKey{}).(store.AdminToken)
	return tok
}

// requireAdmin answers 403 unless the caller's role is admin.
func requireAdmin(w http.ResponseWriter, r *http.Request, what string) bool {
	if caller(r).Role == adminapi.RoleAdmin {
		return true
	}
	writeError(w, http.StatusForbidden, "forbidden", "only an admin credential may "+what+"; this one has role "+caller(r).Role)
	return false
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

// TokenStore keeps admin credentials.
type TokenStore interface {
	CountAdminTokens(ctx context.Context) (int, error)
	CreateAdminToken(ctx context.Context, t store.AdminToken) error
}

// EnsureBootstrapToken creates the first admin credential when none exists
// and returns it for a one-time display. On later starts it returns created=false.
func EnsureBootstrapToken(ctx context.Context, st TokenStore, h Hasher, now time.Time) (secret.String, bool, error) {
	n, err := st.CountAdminTokens(ctx)
	if err != nil {
		return secret.String{}, false, err
	}
	if n > 0 {
		return secret.String{}, false, nil
	}
	tok, err := NewToken(ctx, st, h, "bootstrap", adminapi.RoleAdmin, now)
	return tok, err == nil, err
}

// NewToken issues an admin credential with the given name and role (admin
// or operator) and returns it for a one-time display; only its HMAC is stored.
func NewToken(ctx context.Context, st TokenStore, h Hasher, name, role string, now time.Time) (secret.String, error) {
	if role != adminapi.RoleAdmin && role != adminapi.RoleOperator {
		return secret.String{}, fmt.Errorf("role %q must be %s or %s", role, adminapi.RoleAdmin, adminapi.RoleOperator)
	}
	tok, err := apikey.GenerateAdmin()
	if err != nil {
		return secret.String{}, err
	}
	hash := h.Hash(tok.Reveal())
	err = st.CreateAdminToken(ctx, store.AdminToken{ID: newID("adm_"), Name: name, Role: role, Hash: hash[:], CreatedAt: now.UTC()})
	if err != nil {
		return secret.String{}, fmt.Errorf("store the admin credential: %w", err)
	}
	return tok, nil
}
