// Package token issues and verifies keygate's short-lived access tokens and
// keeps the refresh tokens they are renewed with.
//
// An access token is a JWT in the RFC 9068 profile (header typ "at+jwt"),
// signed with Ed25519 (alg "EdDSA"). Verification pins that algorithm: a
// token naming any other, "none" and HMAC included, is refused before any key
// is touched. Signing keys live in a Keyring: private halves sealed in the
// vault, public halves and their schedule in the store, rotated with overlap
// and published as a JSON Web Key Set so resource servers can check tokens
// themselves.
//
// Claims carried by an access token (see Claims):
//
//	iss        Options.Issuer
//	aud        Options.Audience
//	sub        the keygate key ID the token was exchanged for
//	client_id  the keygate key's name
//	iat, nbf, exp
//	jti        a random token ID, the subject of "token" revocations
//	amr        authentication methods (RFC 8176), such as "otp" after step-up
//	cnf        {"x5t#S256": ...}: the client certificate the token is bound to (RFC 8705)
//	keygate    {"providers", "models", "paths", "services", "secrets", "limits", "fam"}: the narrowed
//	           allowances and the refresh-token family
//
// The allowances are a private "keygate" claim rather than the space-separated
// "scope" string, because they are lists of patterns and a limits object that
// a scope string cannot carry without an ad-hoc grammar; keygate reads only
// that claim. No "scope" claim is written.
//
// A refresh token is opaque: "kgr_" and 43 base62 characters (256 random
// bits). keygate stores only its HMAC under a secret pepper. Each refresh
// token is single use: exchanging it yields the next one in the same family,
// and presenting a spent one revokes the whole family (see Families).
//
// Verify checks a token's signature and claims; it does not consult
// revocations. The caller applies those by jti, family (Claims.FamilyID) and
// key (Claims.Subject), and compares Claims.CnfX5t with the thumbprint of the
// client certificate when it is set.
package token

import (
	"errors"
	"time"
)

// Errors returned when an access or refresh token is refused. Every error
// Authority.Verify or Families.Exchange returns for a refused token also
// matches ErrInvalid, so a caller can map all of them to one response. No
// error ever contains the token.
var (
	// ErrInvalid matches every error Verify and Exchange return for a token
	// they refuse, and no other error.
	ErrInvalid = errors.New("token: invalid token")
	// ErrMalformed means the token is not shaped like a keygate token.
	ErrMalformed = errors.New("token: malformed token")
	// ErrUnsupportedAlg means the token names an algorithm other than EdDSA.
	ErrUnsupportedAlg = errors.New("token: unsupported signing algorithm")
	// ErrBadSignature means the signature does not verify under the key the
	// token names.
	ErrBadSignature = errors.New("token: bad signature")
	// ErrUnknownKey means the token names a signing key keygate does not
	// publish: never created, or retired from the key set.
	ErrUnknownKey = errors.New("token: unknown signing key")
	// ErrWrongIssuer means the token was issued by someone else.
	ErrWrongIssuer = errors.New("token: wrong issuer")
	// ErrWrongAudience means the token is meant for another audience.
	ErrWrongAudience = errors.New("token: wrong audience")
	// ErrExpired means the token, or its refresh family, has expired.
	ErrExpired = errors.New("token: expired")
	// ErrNotYetValid means the token's nbf or iat lies in the future.
	ErrNotYetValid = errors.New("token: not yet valid")
	// ErrTooLong means the token claims a lifetime longer than MaxLifetime.
	ErrTooLong = errors.New("token: lifetime too long")

	// ErrRefreshUnknown means a refresh token is well formed but keygate
	// never issued it.
	ErrRefreshUnknown = errors.New("token: unknown refresh token")
	// ErrRefreshReused means a refresh token was presented after it had
	// been exchanged. keygate revokes its family: someone holds a copy.
	// This is a security event worth an alert.
	ErrRefreshReused = errors.New("token: refresh token reused; its family is revoked")
	// ErrFamilyRevoked means the refresh token's family was revoked.
	ErrFamilyRevoked = errors.New("token: token family revoked")

	// ErrNoSigningKey means the keyring has no key that may sign now.
	ErrNoSigningKey = errors.New("token: no signing key is valid now")
)

// Lifetimes and tolerances keygate applies to tokens.
const (
	// DefaultLifetime is an access token's lifetime when none is asked for.
	DefaultLifetime = 15 * time.Minute
	// MaxLifetime is the longest access token lifetime keygate issues or accepts.
	MaxLifetime = time.Hour
	// Leeway is the clock difference tolerated when checking exp, nbf and iat.
	Leeway = 30 * time.Second

	// DefaultRotateEvery is how long a signing key signs new tokens.
	DefaultRotateEvery = 30 * 24 * time.Hour
	// DefaultOverlap is how long before a signing key's end its successor is
	// created, and how long past its last token's expiry it stays published.
	DefaultOverlap = time.Hour
	// DefaultRefreshInterval is the least time between two reloads of the
	// keyring caused by tokens naming an unknown key.
	DefaultRefreshInterval = 10 * time.Second

	// DefaultFamilyLifetime is a refresh family's absolute lifetime when none
	// is asked for.
	DefaultFamilyLifetime = 24 * time.Hour
	// MaxFamilyLifetime is the longest absolute lifetime of a refresh family.
	MaxFamilyLifetime = 30 * 24 * time.Hour
	// DefaultRefreshTTL is how long one refresh token stays exchangeable.
	DefaultRefreshTTL = 12 * time.Hour
)

// Revocation kinds keygate records for every node to apply (store.Revocation.Kind).
const (
	// RevokedKey revokes every token of a keygate key; the subject is the key ID.
	RevokedKey = "key"
	// RevokedFamily revokes every token of a refresh family; the subject is the family ID.
	RevokedFamily = "family"
	// RevokedToken revokes one access token; the subject is its jti.
	RevokedToken = "token"
	// RevokedMCPGrant says a person's authorization at an MCP server
	// changed (made again or revoked); the subject is SERVER/USER_ID (the
	// server's name). Every node drops the grant it holds and reads the
	// vault again at the next call.
	RevokedMCPGrant = "mcp_grant"
)

// invalid is an error Verify or Exchange returns for a refused token: it
// matches its kind and ErrInvalid, and says what failed without quoting the
// token.
type invalid struct {
	kind error
	msg  string
}

func (e *invalid) Error() string { return e.kind.Error() + ": " + e.msg }

func (e *invalid) Is(target error) bool { return target == e.kind || target == ErrInvalid }

func refuse(kind error, msg string) error { return &invalid{kind: kind, msg: msg} }
