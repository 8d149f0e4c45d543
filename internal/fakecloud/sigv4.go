// Package fakecloud holds local stand-ins for the cloud services keygate
// talks to: AWS (Secrets Manager, STS, Bedrock runtime), Azure (Entra ID
// token endpoint, Key Vault, Azure OpenAI), Google (OAuth token endpoint,
// Secret Manager, Vertex AI), HashiCorp Vault KV v2 and the OpenAI admin
// API. Each speaks the real service's wire format closely enough for the
// official SDK clients to talk to it through an endpoint override, and
// each checks the caller's credential the way the service would: SigV4
// signatures are recomputed, bearer tokens must be ones the fake's token
// endpoint issued, JWT assertions must verify against the service
// account's public key. No real cloud is ever called.
package fakecloud

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// AWSKeys is the set of AWS access keys a fake accepts, by access key id.
// It is safe for concurrent use.
type AWSKeys struct {
	mu   sync.Mutex
	keys map[string]aws.Credentials
}

// Add makes the fake accept requests signed with c.
func (k *AWSKeys) Add(c aws.Credentials) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]aws.Credentials{}
	}
	k.keys[c.AccessKeyID] = c
}

func (k *AWSKeys) get(id string) (aws.Credentials, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.keys[id]
	return c, ok
}

// VerifySigV4 checks r's AWS Signature Version 4 the way AWS does: the
// access key must be known, the signature is recomputed over the method,
// path, query, the signed headers and the SHA-256 of body, and the signing
// time must be within five minutes of now. It returns the access key id
// and the region the request was signed for.
func (k *AWSKeys) VerifySigV4(r *http.Request, body []byte, service string, now time.Time) (string, string, error) {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return "", "", errors.New("missing AWS4-HMAC-SHA256 authorization")
	}
	parts := map[string]string{}
	for _, p := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		parts[k] = v
	}
	scope := strings.Split(parts["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return "", "", errors.New("malformed credential scope")
	}
	if scope[3] != service {
		return "", "", fmt.Errorf("signed for service %q, not %q", scope[3], service)
	}
	creds, ok := k.get(scope[0])
	if !ok {
		return "", "", errors.New("UnrecognizedClientException: the security token included in the request is invalid")
	}
	if creds.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != creds.SessionToken {
		return "", "", errors.New("the session token is missing or wrong")
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "", "", errors.New("missing X-Amz-Date")
	}
	if d := now.Sub(at); d > 5*time.Minute || d < -5*time.Minute {
		return "", "", errors.New("signature expired: X-Amz-Date is more than five minutes from the server's time")
	}
	// Rebuild the request from the signed headers alone and sign it again.
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != "UNSIGNED-PAYLOAD" && h != hash {
		return "", "", errors.New("X-Amz-Content-Sha256 does not match the body")
	}
	u := *r.URL
	u.Scheme, u.Host = "https", r.Host
	re, _ := http.NewRequest(r.Method, u.String(), bytes.NewReader(body))
	re.URL.RawPath = r.URL.RawPath
	re.Host = r.Host
	re.Header = http.Header{}
	for _, h := range strings.Split(parts["SignedHeaders"], ";") {
		if h == "host" {
			continue
		}
		if vs := r.Header.Values(h); len(vs) > 0 {
			re.Header[http.CanonicalHeaderKey(h)] = vs
		}
		if h == "content-length" {
			re.ContentLength = r.ContentLength
		}
	}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, re, hash, service, scope[2], at); err != nil {
		return "", "", err
	}
	want := re.Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(want), []byte(auth)) != 1 {
		return "", "", errors.New("SignatureDoesNotMatch: the request signature we calculated does not match the signature you provided")
	}
	return scope[0], scope[2], nil
}

// readBody reads a request body of at most 4 MiB.
func readBody(r *http.Request) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.Body, 4<<20))
}
