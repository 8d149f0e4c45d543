package vault

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// base64KeyChars is how long a 32-byte key is in unpadded base64.
var base64KeyChars = base64.RawURLEncoding.EncodedLen(MasterKeySize)

// parseBase64KeyURL returns the key of a base64key:// URL, whose host is the
// key itself in base64. keygate accepts the standard and the URL-safe
// alphabet, padded or not (gocloud.dev's own opener takes only padded
// URL-safe text), and refuses anything that does not decode to exactly 32
// bytes. canonical is the URL with the key in padded URL-safe base64: the
// KEK's ID is derived from it, so one key has one ID however it is written,
// and the ID of a URL in the form gocloud.dev accepted is unchanged. Errors
// never quote the key; the caller clears key when done.
func parseBase64KeyURL(raw string) (key []byte, canonical string, err error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(raw), ":")
	if keeperScheme(scheme) != "base64key" {
		return nil, "", errors.New("not a base64key:// URL")
	}
	text, ok := strings.CutPrefix(rest, "//")
	if !ok {
		return nil, "", errors.New("write a base64key URL as base64key://<32-byte key in base64>")
	}
	if strings.ContainsAny(text, "?#") {
		return nil, "", errors.New("a base64key URL takes no query or fragment: write it as base64key://<32-byte key in base64>")
	}
	body := strings.TrimRight(text, "=")
	pad := len(text) - len(body)
	if body == "" {
		return nil, "", errors.New("a base64key URL needs its key (base64key://<32 bytes in base64>); without one a new random key would be made on every start and nothing sealed before could be opened")
	}
	const notBase64 = "the key in the base64key URL is not base64 (standard or URL-safe, padded or not)"
	if strings.Contains(body, "=") || pad > 2 || (pad > 0 && (len(body)+pad)%4 != 0) {
		return nil, "", errors.New(notBase64 + ": its padding is wrong")
	}
	std, urlSafe := strings.ContainsAny(body, "+/"), strings.ContainsAny(body, "-_")
	if std && urlSafe {
		return nil, "", errors.New(notBase64 + ": it mixes the standard (+/) and URL-safe (-_) alphabets")
	}
	enc := base64.RawURLEncoding
	if std {
		enc = base64.RawStdEncoding
	}
	key = make([]byte, enc.DecodedLen(len(body)))
	n, err := enc.Strict().Decode(key, []byte(body))
	if err != nil {
		clear(key)
		return nil, "", errors.New(notBase64 + "; generate one with: openssl rand -base64 32")
	}
	if n != MasterKeySize {
		clear(key)
		return nil, "", fmt.Errorf("a base64key key must be %d bytes (%d base64 characters, %d with padding); this one is %d bytes: generate one with: openssl rand -base64 32",
			MasterKeySize, base64KeyChars, base64KeyChars+1, n)
	}
	key = key[:n]
	return key, "base64key://" + base64.URLEncoding.EncodeToString(key), nil
}
