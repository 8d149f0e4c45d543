// Package apikey issues, parses and verifies keygate keys: the credentials
// keygate hands to apps and agents in place of real provider keys.
//
// A key looks like kg_<env>_<body><check>:
//
//   - env is the environment tag: a lower-case letter, then 1 to 9 lower-case
//     letters or digits ("live", "test", "dev"); "admin" marks admin API
//     credentials;
//   - body is 256 random bits in base62 (0-9A-Za-z), always 43 characters;
//   - check is the CRC-32 (IEEE) of everything before it, in 6 base62
//     characters.
//
// The fixed kg_ prefix lets secret scanners find leaked keys, and the
// checksum rejects a mistyped or truncated key before any database lookup.
// keygate stores only an HMAC of a key (see Hasher), never the key itself.
package apikey

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// ErrMalformed means a presented key is not shaped like a keygate key or its
// checksum does not match. Errors wrapping it never quote the key.
var ErrMalformed = errors.New("apikey: not a valid keygate key (they look like kg_<env>_...)")

// AdminEnv is the environment of admin API credentials, issued only by
// GenerateAdmin.
const AdminEnv = "admin"

// SessionEnv is the environment of admin sign-in session tokens, issued
// only by GenerateSession.
const SessionEnv = "session"

// InviteEnv is the environment of team invitation tokens, issued only by
// GenerateInvite.
const InviteEnv = "invite"

const (
	keyPrefix  = "kg_"
	minEnvLen  = 2
	maxEnvLen  = 10
	bodyLen    = 43 // ceil(256 / log2(62))
	checkLen   = 6  // ceil(32 / log2(62))
	tailLen    = 1 + bodyLen + checkLen
	minKeyLen  = len(keyPrefix) + minEnvLen + tailLen
	maxKeyLen  = len(keyPrefix) + maxEnvLen + tailLen
	prefixBody = 4 // body characters shown in Parsed.Prefix
	alphabet   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// maxBody is 2^256-1 in fixed-width base62. The alphabet is in ASCII
	// order, so comparing bodies as strings compares their values.
	maxBody = "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1"
)

// ErrUnknown means a well-formed key matches no key keygate has issued.
var ErrUnknown = errors.New("apikey: unknown keygate key")

// ErrRevoked means the key was revoked.
var ErrRevoked = errors.New("apikey: keygate key has been revoked")

// ErrExpired means the key is past its expiry time.
var ErrExpired = errors.New("apikey: keygate key has expired")

// malformed is a reason a key failed Parse. It matches ErrMalformed with
// errors.Is; being a constant, returning it costs no allocation.
type malformed string

const (
	errLength   malformed = "wrong length; copy the whole key"
	errPrefix   malformed = "it does not start with kg_"
	errEnv      malformed = "invalid environment tag after kg_"
	errChars    malformed = "it contains characters other than 0-9, A-Z and a-z after the environment"
	errRange    malformed = "its random part is out of range; copy the key exactly as issued"
	errChecksum malformed = "checksum mismatch: the key was mistyped or truncated; copy it again"
)

func (e malformed) Error() string        { return "apikey: not a valid keygate key: " + string(e) }
func (e malformed) Is(target error) bool { return target == ErrMalformed }

// Parsed is what Parse learns from a key's shape, without any lookup.
type Parsed struct {
	// Env is the environment tag ("live", "test", "admin", ...).
	Env string
	// Prefix is the part safe to display: "kg_<env>_" and the first 4 body
	// characters, such as "kg_live_4fTq".
	Prefix string
}

// ValidateEnv reports whether env can tag a keygate key: a lower-case letter,
// then 1 to 9 lower-case letters or digits.
func ValidateEnv(env string) error {
	if !validEnv(env) {
		return fmt.Errorf("apikey: environment %q must be 2-10 characters: a lower-case letter, then lower-case letters or digits (such as live, test, dev)", env)
	}
	return nil
}

func validEnv(env string) bool {
	if len(env) < minEnvLen || len(env) > maxEnvLen || env[0] < 'a' || env[0] > 'z' {
		return false
	}
	for i := 1; i < len(env); i++ {
		if c := env[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Generate issues a new key for environment env, with 256 bits from
// crypto/rand. The reserved environment "admin" is refused; use GenerateAdmin.
func Generate(env string) (secret.String, error) {
	if err := ValidateEnv(env); err != nil {
		return secret.String{}, err
	}
	if env == AdminEnv || env == SessionEnv || env == InviteEnv {
		return secret.String{}, fmt.Errorf("apikey: environment %q is reserved for admin API credentials; choose another (such as live or test)", env)
	}
	return generate(env)
}

// GenerateAdmin issues a new admin API credential, kg_admin_...
func GenerateAdmin() (secret.String, error) { return generate(AdminEnv) }

// GenerateSession issues a new sign-in session token, kg_session_...
func GenerateSession() (secret.String, error) { return generate(SessionEnv) }

// GenerateInvite issues a new team invitation token, kg_invite_...
func GenerateInvite() (secret.String, error) { return generate(InviteEnv) }

func generate(env string) (secret.String, error) {
	var n [32]byte
	if _, err := rand.Read(n[:]); err != nil {
		return secret.String{}, fmt.Errorf("apikey: read random bytes: %w", err)
	}
	buf := make([]byte, 0, maxKeyLen)
	buf = append(buf, keyPrefix...)
	buf = append(buf, env...)
	buf = append(buf, '_')
	buf = appendBody(buf, n)
	clear(n[:])
	check := checksum(buf)
	buf = append(buf, check[:]...)
	s := secret.New(string(buf))
	clear(buf)
	return s, nil
}

// appendBody appends n as fixed-width base62, most significant digit first.
func appendBody(dst []byte, n [32]byte) []byte {
	var digits [bodyLen]byte
	for i := bodyLen - 1; i >= 0; i-- {
		var rem uint32
		for j := range n {
			cur := rem<<8 | uint32(n[j])
			n[j] = byte(cur / 62)
			rem = cur % 62
		}
		digits[i] = alphabet[rem]
	}
	dst = append(dst, digits[:]...)
	clear(digits[:])
	return dst
}

// checksum returns the base62 CRC-32 (IEEE) of s, zero-padded to 6 characters.
func checksum[T string | []byte](s T) [checkLen]byte {
	v := crc32IEEE(s)
	var c [checkLen]byte
	for i := checkLen - 1; i >= 0; i-- {
		c[i] = alphabet[v%62]
		v /= 62
	}
	return c
}

// crc32IEEE equals crc32.ChecksumIEEE([]byte(s)). It runs the table-driven
// update over hash/crc32's IEEE table directly, so Parse can checksum a
// string without copying it to the heap.
func crc32IEEE[T string | []byte](s T) uint32 {
	tab := crc32.IEEETable
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = tab[byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}

func isBase62(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

// Parse checks that raw has the shape and checksum of a keygate key, without
// any lookup. Its errors wrap ErrMalformed and never contain raw. The
// returned strings share raw's memory.
func Parse(raw string) (Parsed, error) {
	if len(raw) < minKeyLen || len(raw) > maxKeyLen {
		return Parsed{}, errLength
	}
	if raw[:len(keyPrefix)] != keyPrefix {
		return Parsed{}, errPrefix
	}
	sep := len(raw) - tailLen
	env := raw[len(keyPrefix):sep]
	if raw[sep] != '_' {
		// Keys have a fixed-length tail: a missing or extra character
		// shifts the separator.
		return Parsed{}, errLength
	}
	if !validEnv(env) {
		return Parsed{}, errEnv
	}
	for i := sep + 1; i < len(raw); i++ {
		if !isBase62(raw[i]) {
			return Parsed{}, errChars
		}
	}
	bodyEnd := len(raw) - checkLen
	if raw[sep+1:bodyEnd] > maxBody {
		return Parsed{}, errRange
	}
	if c := checksum(raw[:bodyEnd]); string(c[:]) != raw[bodyEnd:] {
		return Parsed{}, errChecksum
	}
	return Parsed{Env: env, Prefix: raw[:sep+1+prefixBody]}, nil
}

// MalformedReason says why a key failed Parse, in words for its holder
// ("checksum mismatch: the key was mistyped or truncated; copy it again"),
// or "" when err is not a malformed-key error.
func MalformedReason(err error) string {
	var m malformed
	if errors.As(err, &m) {
		return string(m)
	}
	return ""
}

// Contains reports whether s holds a well-formed keygate key anywhere in
// it (a kg_<env>_ prefix, its random part and a matching checksum), so a
// key pasted into a header, query or body can be found without a lookup.
func Contains(s string) bool {
	for {
		i := strings.Index(s, keyPrefix)
		if i < 0 {
			return false
		}
		s = s[i:]
		for env := minEnvLen; env <= maxEnvLen; env++ {
			n := len(keyPrefix) + env + tailLen
			if n > len(s) {
				break
			}
			if _, err := Parse(s[:n]); err == nil {
				return true
			}
		}
		s = s[len(keyPrefix):]
	}
}
