// Package password hashes and verifies the passwords of local users with
// argon2id (RFC 9106), kept as PHC strings:
//
//	$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>
//
// The parameters are stored with each hash, so they can be raised later
// and old hashes still verify (NeedsRehash says when to rewrite one). The
// defaults follow RFC 9106's second recommended option and OWASP: 64 MiB
// of memory, 3 passes, 2 lanes, a 16-byte random salt and a 32-byte tag.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// Default is the cost new hashes are made with.
var Default = Params{Memory: 64 * 1024, Time: 3, Threads: 2}

const (
	saltLen = 16
	keyLen  = 32
	// MinLength is the fewest characters a password may have.
	MinLength = 12
	// MaxLength bounds a password, so a huge one cannot cost the server.
	MaxLength = 1024
)

// ErrMismatch says a password does not match its hash.
var ErrMismatch = errors.New("password: wrong password")

// Check says why a new password is refused, or nil.
func Check(pw string) error {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinLength:
		return fmt.Errorf("a password needs at least %d characters; use a passphrase or a password manager", MinLength)
	case len(pw) > MaxLength:
		return fmt.Errorf("a password may have at most %d bytes", MaxLength)
	}
	return nil
}

// Hash returns the PHC string of pw under p with a fresh random salt.
func Hash(pw string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: read random bytes: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC string h, comparing in
// constant time. It returns ErrMismatch for a wrong password and another
// error for a hash it cannot read.
func Verify(pw, h string) error {
	p, salt, want, err := parse(h)
	if err != nil {
		return err
	}
	if len(pw) > MaxLength {
		return ErrMismatch
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// Dummy verifies pw against a hash of nothing at the default cost, so a
// sign-in for a user without a password takes as long as one with.
func Dummy(pw string) {
	salt := make([]byte, saltLen)
	_ = argon2.IDKey([]byte(pw), salt, Default.Time, Default.Memory, Default.Threads, keyLen)
}

// NeedsRehash reports whether h was made with parameters other than p.
func NeedsRehash(h string, p Params) bool {
	got, _, _, err := parse(h)
	return err != nil || got != p
}

func parse(h string) (Params, []byte, []byte, error) {
	bad := func(what string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("password: the stored hash is not an argon2id PHC string (%s); set the password again", what)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("its shape")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return bad("its version")
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Time == 0 || p.Threads == 0 || p.Memory < 8*uint32(p.Threads) || p.Memory > 4<<20 {
		return bad("its parameters")
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return bad("its salt")
	}
	key, err := enc.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return bad("its hash")
	}
	return p, salt, key, nil
}
