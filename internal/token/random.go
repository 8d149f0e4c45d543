package token

import (
	"crypto/rand"
	"fmt"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns nbytes random bytes from crypto/rand as width base62
// digits, most significant first. width must be enough to hold the value
// (43 digits for 32 bytes, 22 for 16).
func randomBase62(nbytes, width int) ([]byte, error) {
	n := make([]byte, nbytes)
	defer clear(n)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	out := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		var rem uint32
		for j := range n {
			cur := rem<<8 | uint32(n[j])
			n[j] = byte(cur / 62)
			rem = cur % 62
		}
		out[i] = base62[rem]
	}
	return out, nil
}

// randomID returns prefix and 128 random bits in base62 (22 characters).
func randomID(prefix string) (string, error) {
	b, err := randomBase62(16, 22)
	if err != nil {
		return "", err
	}
	return prefix + string(b), nil
}

func isBase62(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}
