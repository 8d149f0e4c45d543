// Package sigv4auth lets clients that sign their requests with AWS
// Signature Version 4 (the AWS SDKs, boto3, Claude Code's Bedrock mode with
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) use a keygate key: keygate
// issues an AWS-style access key pair bound to the key, and checks the
// signatures made with it before a request goes any further.
//
// The pair is derived, never stored. The access key id names the keygate
// key: AccessKeyPrefix, a scheme version, then the key id in base32
// ("KGAK1..."), so it cannot be mistaken for a live AWS key by a person or
// a secret scanner. The secret access key is HMAC-SHA256, under a 32-byte
// key sealed in keygate's vault (KeyRecord), of the access key id. SigV4 is
// a shared-secret scheme: to check a signature keygate must know the
// signer's secret. Deriving it means keygate recomputes it from the access
// key id at each request and keeps no table of secrets: the database holds
// only keygate keys' HMACs, as before, and a copy of the database alone
// yields no secret access key. The pair has no life of its own: every
// request looks up the keygate key its access key id names, so revoking,
// suspending or letting that key expire refuses the pair at once, and
// rotating the key (its successor has a new id) retires it with the old key.
package sigv4auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// KeyRecord is the vault record holding the key secret access keys are
// derived under.
const KeyRecord = "system/sigv4-key"

// KeySize is the size of that key, in bytes.
const KeySize = 32

// AccessKeyPrefix starts every access key id keygate issues. AWS's own
// start with AKIA, ASIA and the like; this one names keygate.
const AccessKeyPrefix = "KGAK"

// scheme is the derivation's version, the character after the prefix: a
// new derivation would take the next one, and old pairs would still be
// told apart.
const scheme = '1'

// keyIDPrefix starts every keygate key id.
const keyIDPrefix = "key_"

// secretLen is how many bytes of the HMAC the secret access key carries:
// 30 bytes, 40 base64 characters, the length of an AWS secret access key.
const secretLen = 30

// label separates this derivation from any other use of the key.
const label = "keygate sigv4 secret access key\x00"

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Credentials is an AWS-style access key pair bound to a keygate key.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey secret.String
}

// Deriver issues access key pairs for keygate keys and recomputes their
// secrets to verify signatures. It is safe for concurrent use.
type Deriver struct {
	key []byte
}

// NewDeriver returns a Deriver for key, the content of the vault record
// KeyRecord, which must be at least KeySize bytes. The key is copied.
func NewDeriver(key []byte) (*Deriver, error) {
	if len(key) < KeySize {
		return nil, fmt.Errorf("sigv4auth: the derivation key must be at least %d bytes, got %d; check the vault record %s", KeySize, len(key), KeyRecord)
	}
	return &Deriver{key: bytes.Clone(key)}, nil
}

// Issue returns the access key pair of the keygate key keyID. The same key
// always gets the same pair: it is derived, not stored, so issuing it again
// shows the same secret rather than making a second one.
func (d *Deriver) Issue(keyID string) (Credentials, error) {
	rest, ok := strings.CutPrefix(keyID, keyIDPrefix)
	if !ok || rest == "" {
		return Credentials{}, fmt.Errorf("sigv4auth: %q is not a keygate key id (they start with %s)", keyID, keyIDPrefix)
	}
	id := AccessKeyPrefix + string(scheme) + idEncoding.EncodeToString([]byte(rest))
	return Credentials{AccessKeyID: id, SecretAccessKey: secret.New(string(d.secret(id)))}, nil
}

// secret derives the secret access key of access key id id.
func (d *Deriver) secret(id string) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(label))
	m.Write([]byte(id))
	sum := m.Sum(nil)
	out := make([]byte, base64.StdEncoding.EncodedLen(secretLen))
	base64.StdEncoding.Encode(out, sum[:secretLen])
	return out
}

// errNotOurs means an access key id is not one keygate issued.
var errNotOurs = errors.New("not an access key id keygate issued")

// KeyID returns the keygate key id an access key id names, or an error
// when keygate did not issue it (an AWS key, a mistyped one).
func KeyID(accessKeyID string) (string, error) {
	rest, ok := strings.CutPrefix(accessKeyID, AccessKeyPrefix+string(scheme))
	if !ok || rest == "" {
		return "", errNotOurs
	}
	b, err := idEncoding.DecodeString(rest)
	if err != nil || len(b) == 0 || idEncoding.EncodeToString(b) != rest {
		return "", errNotOurs
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return "", errNotOurs
		}
	}
	return keyIDPrefix + string(b), nil
}
