package gateway

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"
)

// clientCert returns the verified client certificate of the connection,
// or nil: one the listener checked against the configured client CA.
func clientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// certMatches applies a key's rule to a verified certificate.
func certMatches(c *x509.Certificate, rule string) bool {
	kind, val, _ := strings.Cut(rule, ":")
	switch kind {
	case "cn":
		return c.Subject.CommonName == val
	case "uri":
		for _, u := range c.URIs {
			if u.String() == val {
				return true
			}
		}
	}
	return false
}

// thumbprint is a certificate's RFC 8705 x5t#S256: the base64url SHA-256
// of its DER encoding.
func thumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
