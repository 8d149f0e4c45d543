package scan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"hash/crc32"

	"github.com/keygate/keygate/internal/apikey"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Base62CRC32 returns the CRC-32 (IEEE) of b in 6 base62 digits, zero
// padded: the checksum GitHub and npm append to their tokens.
func Base62CRC32(b []byte) string {
	v := crc32.ChecksumIEEE(b)
	var c [6]byte
	for i := 5; i >= 0; i-- {
		c[i] = base62[v%62]
		v /= 62
	}
	return string(c[:])
}

// prefixedCRC32 checks tokens shaped like GitHub's and npm's: a prefix
// ending in '_', 30 random base62 characters, then the base62 CRC-32 of
// those 30 characters.
func prefixedCRC32(tok []byte) bool {
	i := bytes.IndexByte(tok, '_')
	if i < 0 || len(tok)-i-1 != 36 {
		return false
	}
	body := tok[i+1 : len(tok)-6]
	return Base62CRC32(body) == string(tok[len(tok)-6:])
}

// keygateKey checks a kg_ key's shape and checksum.
func keygateKey(tok []byte) bool {
	_, err := apikey.Parse(string(tok))
	return err == nil
}

// jwtShape checks that a JWT's header decodes to a JSON object naming an
// algorithm and its payload to a JSON object.
func jwtShape(tok []byte) bool {
	parts := bytes.Split(tok, []byte{'.'})
	if len(parts) != 3 {
		return false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if !decodeJSONSegment(parts[0], &hdr) || hdr.Alg == "" {
		return false
	}
	var claims map[string]any
	return decodeJSONSegment(parts[1], &claims)
}

func decodeJSONSegment(seg []byte, v any) bool {
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(seg)))
	n, err := base64.RawURLEncoding.Decode(raw, bytes.TrimRight(seg, "="))
	if err != nil {
		return false
	}
	return json.Unmarshal(raw[:n], v) == nil
}

// mixedValue checks a value assigned to a context keyword: not a single
// character class repeated (all letters spell a word, all digits a number).
func mixedValue(v []byte) bool {
	var lower, upper, digit bool
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		case '0' <= c && c <= '9':
			digit = true
		}
	}
	return digit && (lower || upper) || lower && upper
}
