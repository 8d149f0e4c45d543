package adminapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Some built-in role names (internal/rbac holds the role table). An owner
// may do everything; an admin everything but read secret values, export
// backups and rotate the KEK; an operator what operator tokens could do
// before users existed.
const (
	RoleOwner    = "owner"
	RoleAdmin    = "admin"
	RoleOperator = "operator"
)

// Status describes the running keygate: GET /api/v1/status.
type Status struct {
	Version    string `json:"version"`
	GatewayURL string `json:"gateway_url"` // the gateway's base URL, such as http://127.0.0.1:8787
	KEKID      string `json:"kek_id"`      // the key-encryption key new secrets are sealed under
}

// PutSecretRequest stores a new version of a secret:
// PUT /api/v1/secrets/{name}. A secret that does not exist is created.
type PutSecretRequest struct {
	Value string `json:"value,omitempty"` // the secret itself, at most 64 KiB
	// Ref, instead of Value, keeps the secret in its source, read now and
	// followed as for a provider's APIKeyRef (see CreateProviderRequest).
	Ref        string `json:"ref,omitempty"`
	RefRefresh string `json:"ref_refresh,omitempty"`
	RefGrace   string `json:"ref_grace,omitempty"`
}

// Secret is a secret's metadata; it never carries the value.
type Secret struct {
	Name           string     `json:"name"`            // such as payments/stripe
	CurrentVersion int        `json:"current_version"` // the version `secret get` returns
	Versions       int        `json:"versions"`        // how many versions are kept
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	DeletedAt      *time.Time `json:"deleted_at,omitempty"` // set while soft-deleted
	PurgeAt        *time.Time `json:"purge_at,omitempty"`   // when a soft-deleted secret is destroyed
	// Source, for a secret kept in a cloud secret manager or Vault, is
	// that reference and how reading it goes.
	Source *SourceRef `json:"source,omitempty"`
}

// SecretList answers GET /api/v1/secrets (add ?deleted=true to include
// soft-deleted secrets).
type SecretList struct {
	Secrets []Secret `json:"secrets"`
}

// SecretVersion describes one stored version of a secret, never its value.
type SecretVersion struct {
	Version   int        `json:"version"`
	Current   bool       `json:"current"`
	KEKID     string     `json:"kek_id"` // the key-encryption key that wraps its data key
	Format    int        `json:"format"` // ciphertext format
	CreatedAt time.Time  `json:"created_at"`
	DestroyAt *time.Time `json:"destroy_at,omitempty"` // when a superseded version is destroyed
}

// SecretVersionList answers GET /api/v1/secrets/{name}:versions.
type SecretVersionList struct {
	Name     string          `json:"name"`
	Versions []SecretVersion `json:"versions"`
}

// SecretValue answers GET /api/v1/secrets/{name}:value[?version=N]. Only
// admins may read it, and every read is recorded.
type SecretValue struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Value   string `json:"value"`
}

// RollbackSecretRequest makes an earlier version current again by storing its
// value as a new version: POST /api/v1/secrets/{name}:rollback.
type RollbackSecretRequest struct {
	Version int `json:"version"`
}

// RotateProviderRequest replaces a provider's upstream key:
// POST /api/v1/providers/{name}/rotate.
type RotateProviderRequest struct {
	APIKey string `json:"api_key"`
	// Grace is how long the previous key is kept before it is destroyed,
	// such as 24h or 7d; default 24h. Requests already in flight finish with
	// the previous key whatever the grace.
	Grace string `json:"grace,omitempty"`
}

// ProviderRotation answers a provider key rotation.
type ProviderRotation struct {
	Provider          Provider  `json:"provider"`
	Version           int       `json:"version"`             // the new key's version, now current
	PreviousVersion   int       `json:"previous_version"`    // the key it replaced
	PreviousDestroyAt time.Time `json:"previous_destroy_at"` // when the previous key is destroyed
}

// RotateKEKRequest starts rewrapping every data key under a new
// key-encryption key: POST /api/v1/vault/rotate-kek.
type RotateKEKRequest struct {
	To            string `json:"to"`                       // KEK URL, such as awskms://... or file:///path
	BatchSize     int    `json:"batch_size,omitempty"`     // data keys rewrapped per transaction; default 100
	BatchInterval string `json:"batch_interval,omitempty"` // pause between batches, such as 10ms; default none
}

// VaultStatus answers GET /api/v1/vault/status.
type VaultStatus struct {
	KEKID    string       `json:"kek_id"`   // the KEK new data keys are wrapped under
	KEKKind  string       `json:"kek_kind"` // file, passphrase or kms
	Counts   []KEKCount   `json:"counts"`   // stored versions by KEK and format
	KEKs     []KEKState   `json:"keks"`     // every KEK the vault has known, the current one first
	Rotation *KEKRotation `json:"rotation,omitempty"`
}

// KEKState is what one key-encryption key still opens in the vault. An old
// KEK that opens nothing can be destroyed once no keygate is configured
// with it: a copy of it, with a copy of the database, opens no secret.
type KEKState struct {
	KEKID   string `json:"kek_id"`
	Kind    string `json:"kind"`          // file, passphrase or kms
	URL     string `json:"url,omitempty"` // where it is, redacted: never key material
	Current bool   `json:"current"`       // new data keys are wrapped under it
	// Opens is how many stored versions it wraps, locators of other KEKs
	// included: everything a copy of this KEK opens.
	Opens int `json:"opens"`
	// Locators is how many of Opens locate a newer KEK, kept while nodes
	// may still follow a rotation.
	Locators int `json:"locators,omitempty"`
	// StoredKeys is how many of Locators hold another KEK's key, written
	// by an older keygate; configuring that KEK deletes them.
	StoredKeys int    `json:"stored_keys,omitempty"`
	Verdict    string `json:"verdict"` // one line: what it opens, and whether it can be destroyed
}

// KEKCount is how many stored versions have their data key wrapped by one
// KEK in one ciphertext format.
type KEKCount struct {
	KEKID    string `json:"kek_id"`
	Format   int    `json:"format"`
	Versions int    `json:"versions"`
}

// KEKRotation is the latest key-encryption key rotation.
type KEKRotation struct {
	ID         string     `json:"id"`
	From       string     `json:"from"`
	To         string     `json:"to"`
	State      string     `json:"state"` // running, finished, or paused (no node is working on it)
	Rewrapped  int        `json:"rewrapped"`
	Remaining  int        `json:"remaining"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      string     `json:"error,omitempty"` // the last error, if the rewrap is stuck
}

// MaxSecretNameLen bounds a secret's name.
const MaxSecretNameLen = 255

// ValidSecretName checks a secret's name: segments of letters, digits, '.',
// '_' and '-' separated by single slashes, each segment starting with a
// letter or digit, such as payments/stripe.
func ValidSecretName(name string) error {
	if name == "" || len(name) > MaxSecretNameLen {
		return fmt.Errorf("secret name must be 1 to %d characters", MaxSecretNameLen)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" {
			return fmt.Errorf("secret name %q has an empty segment; separate parts with single slashes, as in payments/stripe", name)
		}
		if !isAlnum(seg[0]) {
			return fmt.Errorf("secret name %q: each part must start with a letter or digit", name)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return fmt.Errorf("secret name %q may hold only letters, digits, '.', '_', '-' and '/'", name)
			}
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// TOTPEnrollment answers POST /api/v1/keys/{ref}/totp: the one-time-password
// secret for a key's step-up, shown once.
type TOTPEnrollment struct {
	KeyID  string `json:"key_id"`
	Secret string `json:"secret"` // base32, for an authenticator app
	URL    string `json:"url"`    // otpauth:// URL, for a QR code
}

// ValidClientCertMatch checks a key's client certificate rule: "uri:" and a
// URI SAN (a SPIFFE ID such as spiffe://example.org/agent), or "cn:" and a
// subject common name.
func ValidClientCertMatch(m string) error {
	kind, val, ok := strings.Cut(m, ":")
	if !ok || val == "" || (kind != "uri" && kind != "cn") {
		return fmt.Errorf("client certificate rule %q must be uri:URI (a SPIFFE ID such as spiffe://example.org/agent) or cn:NAME", m)
	}
	return nil
}

// AuditEvents answers GET /api/v1/audit/events?key=&type=&since=1h&limit=.
type AuditEvents struct {
	Events []json.RawMessage `json:"events"`
}

// AuditVerification answers GET /api/v1/audit/verify and is what
// `keygate audit verify` prints with --json: each node's chain, checked
// against its signed checkpoints (and, from the CLI, an external copy).
type AuditVerification struct {
	OK     bool              `json:"ok"`
	KeyID  string            `json:"key_id,omitempty"` // the key checkpoints were verified with
	Pinned bool              `json:"pinned,omitempty"` // that key was pinned with --public-key
	Error  string            `json:"error,omitempty"`  // a finding about the whole trail, such as a replaced signing key
	Nodes  []AuditNodeResult `json:"nodes"`
}

// AuditNodeResult is one node's chain check.
type AuditNodeResult struct {
	Node        string `json:"node"`
	Events      int    `json:"events"`
	Checkpoints int    `json:"checkpoints"`
	Error       string `json:"error,omitempty"` // the first tampered place, when any
	Seq         uint64 `json:"seq,omitempty"`   // its sequence number
	Kind        string `json:"kind,omitempty"`  // what was found there: "truncated", "checkpoint deleted", ...

	// How much of the tail signed checkpoints vouch for: the newest event
	// (LastSeq), the newest event a valid checkpoint covers (CheckpointSeq,
	// signed at CheckpointTime) and the Uncovered events after it.
	LastSeq        uint64 `json:"last_seq,omitempty"`
	LastTime       string `json:"last_time,omitempty"`
	CheckpointSeq  uint64 `json:"checkpoint_seq,omitempty"`
	CheckpointTime string `json:"checkpoint_time,omitempty"`
	Uncovered      uint64 `json:"uncovered,omitempty"`

	// What of an external copy (verify --against) was compared.
	CopyEvents      int    `json:"copy_events,omitempty"`
	CopyCheckpoints int    `json:"copy_checkpoints,omitempty"`
	CopyLastSeq     uint64 `json:"copy_last_seq,omitempty"`
}
