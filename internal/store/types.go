package store

import (
	"errors"
	"time"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a record with the same unique name or id already exists.
var ErrConflict = errors.New("already exists")

// Provider is an upstream API that keygate forwards to, with a reference to
// the vault record holding its credential. The credential itself is never here.
type Provider struct {
	ID        string    // "prv_" + random; stable across renames
	Name      string    // unique, lower case, used as the model prefix ("openai/gpt-4o")
	Dialect   string    // wire dialect: "openai" or "anthropic"
	BaseURL   string    // as the provider's own SDK takes it ("https://api.openai.com/v1")
	Models    []string  // glob patterns of bare model names this provider serves ("gpt-*")
	IsDefault bool      // the default provider for its dialect when no pattern matches
	SecretID  string    // vault record that holds the upstream credential
	CreatedAt time.Time // UTC
	Env       string    // environment tag ("prod"); only keys of that env may use it; "" accepts any
	// Preset names the known service the provider is ("groq",
	// "azure-openai"; see provider.Presets), "" for a plain dialect.
	Preset string
	// APIVersion is the api-version the service wants (Azure OpenAI); "" its default.
	APIVersion string
}

// SecretVersion is one encrypted version of a vault record (envelope encryption:
// the ciphertext is sealed by a per-version data key, which is wrapped by a KEK).
type SecretVersion struct {
	ID         string     // record id, e.g. "provider/openai" or "system/pepper"
	Version    int        // 1, 2, ...; part of the associated data
	Format     int        // ciphertext format version
	KEKID      string     // which key-encryption key wrapped the data key
	WrappedDEK []byte     // data key, wrapped by the KEK
	Ciphertext []byte     // nonce || AES-256-GCM(ciphertext || tag)
	CreatedAt  time.Time  // UTC
	DestroyAt  *time.Time // a superseded version is destroyed after this; nil keeps it
}

// Key is a keygate API key as stored: only an HMAC of the secret is kept.
type Key struct {
	ID             string     // "key_" + random; the public identifier
	Name           string     // unique among keys, chosen by the operator
	Env            string     // environment tag from the key's prefix: "live", "test", "dev", ...
	Prefix         string     // the first characters of the key, for display ("kg_live_4fTq")
	Hash           []byte     // HMAC-SHA256(pepper, full key); unique
	AllowModels    []string   // glob patterns; empty means any model
	AllowProviders []string   // provider names; empty means any provider
	CreatedAt      time.Time  // UTC
	ExpiresAt      *time.Time // nil: never expires
	RevokedAt      *time.Time // nil: not revoked
	LastUsedAt     *time.Time // nil: never used
	Limits         []byte     // JSON of the key's limits (adminapi.Limits); nil or "{}" limits nothing
	Group          string     // the group whose limits the key also obeys; "" for none
	AllowPaths     []string   // "METHOD /path" rules; empty means any API path
	AllowIPs       []string   // CIDRs clients must call from; empty means anywhere
	Hours          string     // time windows the key may be used in; "" means any time
	SuspendedAt    *time.Time // set while suspended
	RotatedFrom    string     // the key this one succeeded, if any

	RotateEvery    time.Duration // rotate automatically this often (microsecond precision); 0 never
	RotateGrace    time.Duration // how long a rotated-out key keeps working
	DeliverTo      string        // where a rotated key is delivered: "secret:NAME" or "webhook:URL"
	NextRotationAt *time.Time    // when the next automatic rotation is due

	ClientCert string // "uri:spiffe://..." or "cn:NAME": the client certificate requests must present; "" none

	// StepUpUntil, while in the future, makes every request of the key
	// need an access token minted with a second factor: an alert whose
	// rule asks for step-up sets it; resuming the key clears it.
	StepUpUntil *time.Time

	// AllowServices names the passthrough services (/proxy/{service}/)
	// the key may reach; empty means none: services are deny-by-default.
	AllowServices []string
	// AllowTools names the MCP tools the key may call, as server/tool
	// patterns; entries starting with ! deny. Empty means none.
	AllowTools []string

	// LeakAction is what the outbound credential check does with the
	// key's requests and answers: block, redact or alert, overriding the
	// global leaks: policy; "" follows it.
	LeakAction string

	// Team is the team the key belongs to, "" for none. A team's keys are
	// in the team's key group (Group), so they share its limits.
	Team string
	// Owner is the user id of the key's owner within its team (a
	// developer's own key), "" for a key of the team or of nobody.
	Owner string
	// CreatedBy is who created the key: a user id or, for a credential
	// tied to no user, the credential's id; "" for keys from before users.
	CreatedBy string
}

// Group is a named set of limits shared by the keys in it.
type Group struct {
	Name      string
	Limits    []byte    // JSON (adminapi.Limits)
	CreatedAt time.Time // UTC
	Keys      int       // read-only: how many keys are in the group
}

// UsageRow is what one key consumed of one model on one day. Written rows
// are added to what is stored.
type UsageRow struct {
	KeyID        string
	Day          string // YYYY-MM-DD
	Model        string
	Requests     int64
	InputTokens  int64
	OutputTokens int64
	MicroUSD     int64
	Denials      int64
}

// Kinds of admin credential.
const (
	AdminTokenBootstrap = "bootstrap" // made by the first start, tied to no user
	AdminTokenAdmin     = "admin"     // tied to no user: made offline, or from before users existed
	AdminTokenPersonal  = "personal"  // a user's personal access token
	AdminTokenService   = "service"   // a service account's token
)

// AdminToken is a credential for the admin API, stored as an HMAC.
type AdminToken struct {
	ID   string // "adm_" + random
	Name string // "bootstrap", or what its maker chose
	Hash []byte // HMAC-SHA256(pepper, token); unique
	// Role is, for a credential of no user, its role (empty is stored as
	// "owner"); for a user's, the role it is capped at, "" for none.
	Role      string
	CreatedAt time.Time  // UTC
	RevokedAt *time.Time // nil: active

	UserID       string     // the user or service account it belongs to; "" for none
	Kind         string     // AdminTokenBootstrap, ...; empty is stored as AdminTokenAdmin
	Prefix       string     // its first characters, for display (kg_admin_4fTq); "" for tokens from before
	ExpiresAt    *time.Time // nil: never (tokens from before expiry existed)
	LastUsedAt   *time.Time // nil: never used since it was recorded
	LastUsedFrom string     // the client address of that use
}

// KEKRecord is what keygate keeps about one key-encryption key: never the
// key itself, only what is needed to find or re-derive it.
type KEKRecord struct {
	ID        string    // the KEK's ID, as stored with every version it wraps
	Kind      string    // "file", "passphrase" or "kms"
	Params    []byte    // kind-specific JSON that is not secret, such as a passphrase KEK's salt and argon2id cost
	CreatedAt time.Time // UTC
}

// SecretMeta is a user secret's name and lifecycle. Its values are vault
// record versions under RecordID.
type SecretMeta struct {
	Name      string     // unique, such as "payments/stripe"
	RecordID  string     // vault record holding the versions ("secret/sec_...")
	CreatedAt time.Time  // UTC
	UpdatedAt time.Time  // UTC; the last put, rollback or restore
	DeletedAt *time.Time // set while soft-deleted
	PurgeAt   *time.Time // when a soft-deleted secret is destroyed
	// Owner is what created the secret when keygate did: "rotation:NAME"
	// for a key's automatic rotation delivering into it; "" when a person
	// put it.
	Owner string

	// Read-only, filled in on reads from the record's versions.
	CurrentVersion int // highest version; 0 when none
	Versions       int // how many versions are stored
}

// KEKCount is how many stored versions have their data key wrapped by one
// key-encryption key in one ciphertext format.
type KEKCount struct {
	KEKID    string
	Format   int
	Versions int
}

// KEKRotation records one rewrap of every data key under a new
// key-encryption key.
type KEKRotation struct {
	ID            string        // "rot_" + random
	FromKEK       string        // KEK id before the rotation
	ToKEK         string        // KEK id every data key is rewrapped under
	BatchSize     int           // data keys rewrapped per transaction
	BatchInterval time.Duration // pause between batches (microsecond precision)
	Rewrapped     int64         // data keys rewrapped so far
	LastError     string        // the last error, empty when the rewrap is healthy
	StartedAt     time.Time     // UTC
	HeartbeatAt   time.Time     // UTC; the last time a node made progress or tried to
	FinishedAt    *time.Time    // nil while running
}

// Snapshot is the whole of keygate's state that a backup carries: every
// encrypted vault record exactly as stored, and the metadata around them.
type Snapshot struct {
	Providers      []Provider
	SecretVersions []SecretVersion
	Secrets        []SecretMeta
	Keys           []Key
	AdminTokens    []AdminToken
	KEKRecords     []KEKRecord
	KEKRotations   []KEKRotation
	Groups         []Group
	Users          []User
	Teams          []Team
	TeamMembers    []TeamMember
}

// Revocation is one revocation broadcast to every keygate node: each node
// polls for new ones and applies them to its caches, so a revocation made
// on one node takes effect on all within a poll interval.
type Revocation struct {
	Seq     int64     // increasing; assigned by the store
	Kind    string    // "key", "family" or "token" (an access token's jti)
	Subject string    // the key id, family id or jti
	At      time.Time // UTC
	Until   time.Time // UTC; after this the subject has expired anyway and the revocation may be forgotten
}

// SigningKey is the public half of a token-signing key and its schedule.
// The private half is a vault record ("system/signing-key/<kid>").
type SigningKey struct {
	KID          string
	Alg          string    // "EdDSA"
	PublicKey    []byte    // raw public key
	CreatedAt    time.Time // UTC
	SignFrom     time.Time // new tokens are signed with it from here...
	SignUntil    time.Time // ...until here
	PublishUntil time.Time // it stays in the JWKS until here, so tokens it signed still verify
}

// TokenFamily groups the refresh tokens descending from one token exchange.
// Presenting a spent refresh token revokes the whole family.
type TokenFamily struct {
	ID        string
	KeyID     string     // the keygate key the family was exchanged for
	Scope     []byte     // JSON: the narrowed scopes every token in the family carries
	Cnf       string     // the client certificate thumbprint tokens are bound to, if any
	AMR       []string   // authentication methods ("otp" after step-up)
	CreatedAt time.Time  // UTC
	ExpiresAt time.Time  // UTC; absolute lifetime of the family
	RevokedAt *time.Time // set when revoked
	Reason    string     // why it was revoked
	// UserID is the person who authorized the family (an MCP client's
	// sign-in through keygate), "" for a key's own exchange: every
	// refresh checks that the person may still use the key.
	UserID string
}

// RefreshToken is one opaque refresh token, stored as a hash.
type RefreshToken struct {
	Hash      []byte
	FamilyID  string
	CreatedAt time.Time  // UTC
	ExpiresAt time.Time  // UTC
	UsedAt    *time.Time // set when exchanged; a second use is reuse
}
