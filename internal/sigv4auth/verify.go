package sigv4auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// MaxSkew is how far a request's signing time may be from keygate's
// clock, either way: AWS's own bound.
const MaxSkew = 15 * time.Minute

// Algorithm is the only signing algorithm keygate takes.
const Algorithm = "AWS4-HMAC-SHA256"

// The AWS error types a refused signature is answered with, as the AWS
// SDKs read them from the X-Amzn-Errortype header.
const (
	// ErrTypeInvalidSignature: the signature, its time or its scope is wrong.
	ErrTypeInvalidSignature = "InvalidSignatureException"
	// ErrTypeIncompleteSignature: the Authorization header lacks a part.
	ErrTypeIncompleteSignature = "IncompleteSignatureException"
	// ErrTypeUnrecognizedClient: the access key id is not one keygate issued.
	ErrTypeUnrecognizedClient = "UnrecognizedClientException"
)

// MismatchMessage is what AWS answers when a signature does not verify.
const MismatchMessage = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."

// Error is a refused signature: Type is the AWS error type, Message AWS's
// words for it, with keygate's advice where it has some. Neither ever
// holds a secret or the signature.
type Error struct {
	Type    string
	Message string
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

func invalid(format string, args ...any) *Error {
	return &Error{Type: ErrTypeInvalidSignature, Message: fmt.Sprintf(format, args...)}
}

func incomplete(format string, args ...any) *Error {
	return &Error{Type: ErrTypeIncompleteSignature, Message: fmt.Sprintf(format, args...)}
}

// amzDate is the layout of X-Amz-Date.
const amzDate = "20060102T150405Z"

// Signed is a request's SigV4 authorization, read and checked for shape,
// time and scope by Parse; Verify checks its signature.
type Signed struct {
	// AccessKeyID is the access key id the request was signed with.
	AccessKeyID string
	// KeyID is the keygate key it names.
	KeyID string
	// Region and Service are the credential scope's.
	Region, Service string
	// At is the signing time, from X-Amz-Date.
	At time.Time

	signedHeaders string // as sent: lower case, sorted, ';'-separated
	signature     string // lower-case hex
}

// Presented reports whether r carries a SigV4 authorization, in its
// Authorization header or, presigned, in its query, so the caller knows to
// take it through Parse rather than as a bearer credential.
func Presented(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-") {
		return true
	}
	return r.URL.RawQuery != "" && presigned(r.URL.Query())
}

// presigned reports whether a query carries a presigned URL's signature.
func presigned(q url.Values) bool {
	return q.Has("X-Amz-Signature") || q.Has("X-Amz-Credential")
}

// Parse reads r's SigV4 Authorization header and checks what can be checked
// without the secret and the body: the algorithm, the credential scope
// (an access key id keygate issued, a well-formed region, service, the
// date matching X-Amz-Date), the signing time within MaxSkew of now, and
// that the signed headers cover host, x-amz-date and, when sent,
// x-amz-content-sha256 and x-amz-security-token. Its errors are *Error.
func Parse(r *http.Request, service string, now time.Time) (*Signed, error) {
	if r.URL.RawQuery != "" && presigned(r.URL.Query()) {
		return nil, incomplete("keygate does not take presigned URLs: sign the request's Authorization header, as the AWS SDKs do by default")
	}
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 {
		return nil, incomplete("the request needs exactly one Authorization header signed with %s", Algorithm)
	}
	algo, params, _ := strings.Cut(auth[0], " ")
	if algo != Algorithm {
		return nil, incomplete("keygate verifies %s signatures (SigV4), not %q; SigV4a and other schemes are not taken", Algorithm, truncate(algo, 32))
	}
	var cred, signed, sig string
	var seen int
	for p := range strings.SplitSeq(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "Credential":
			cred, seen = v, seen|1
		case "SignedHeaders":
			signed, seen = v, seen|2
		case "Signature":
			sig, seen = v, seen|4
		}
	}
	var missing []string
	for i, name := range []string{"Credential", "SignedHeaders", "Signature"} {
		if seen&(1<<i) == 0 {
			missing = append(missing, "Authorization header requires '"+name+"' parameter.")
		}
	}
	if len(missing) > 0 {
		return nil, incomplete("%s", strings.Join(missing, " "))
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return nil, incomplete("Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request")
	}
	s := &Signed{AccessKeyID: scope[0], Region: scope[2], Service: scope[3], signedHeaders: signed, signature: sig}
	keyID, err := KeyID(s.AccessKeyID)
	if err != nil {
		return nil, &Error{Type: ErrTypeUnrecognizedClient, Message: "The security token included in the request is invalid. keygate takes the access keys `keygate key aws-credentials KEY` prints (they start with " + AccessKeyPrefix + "), not AWS's own."}
	}
	s.KeyID = keyID
	if s.Service != service {
		return nil, invalid("Credential should be scoped to correct service: '%s'.", service)
	}
	if !validRegion(s.Region) {
		return nil, invalid("Credential should be scoped to a valid region.")
	}
	if len(sig) != 64 || strings.ToLower(sig) != sig {
		return nil, invalid("the Signature must be 64 lower-case hexadecimal digits")
	}
	if _, err := hex.DecodeString(sig); err != nil {
		return nil, invalid("the Signature must be 64 lower-case hexadecimal digits")
	}
	date := r.Header.Values("X-Amz-Date")
	if len(date) != 1 {
		return nil, incomplete("the request must carry one X-Amz-Date header, signed; keygate does not take the Date header in its place")
	}
	if s.At, err = time.Parse(amzDate, date[0]); err != nil {
		return nil, incomplete("X-Amz-Date must be a time such as 20250102T150405Z")
	}
	if scope[1] != s.At.Format("20060102") {
		return nil, invalid("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", truncate(scope[1], 8), s.At.Format("20060102"), date[0])
	}
	now = now.UTC()
	if s.At.Before(now.Add(-MaxSkew)) {
		return nil, invalid("Signature expired: %s is now earlier than %s (%s - 15 min.)", date[0], now.Add(-MaxSkew).Format(amzDate), now.Format(amzDate))
	}
	if s.At.After(now.Add(MaxSkew)) {
		return nil, invalid("Signature not yet current: %s is still later than %s (%s + 15 min.)", date[0], now.Add(MaxSkew).Format(amzDate), now.Format(amzDate))
	}
	names := strings.Split(signed, ";")
	if !slices.IsSorted(names) || slices.Contains(names, "") {
		return nil, invalid("SignedHeaders must be lower-case header names, sorted and separated by ';'")
	}
	for _, n := range names {
		if strings.ToLower(n) != n {
			return nil, invalid("SignedHeaders must be lower-case header names, sorted and separated by ';'")
		}
		if n != "host" && n != "content-length" && len(r.Header.Values(n)) == 0 {
			return nil, invalid("the signed header %q is not in the request", truncate(n, 64))
		}
	}
	for _, must := range []string{"host", "x-amz-date"} {
		if !slices.Contains(names, must) {
			return nil, invalid("'%s' must be a 'SignedHeader' in the AWS Authorization.", must)
		}
	}
	for _, h := range []string{"X-Amz-Content-Sha256", "X-Amz-Security-Token"} {
		if r.Header.Get(h) != "" && !slices.Contains(names, strings.ToLower(h)) {
			return nil, invalid("'%s' is sent, so it must be a 'SignedHeader' in the AWS Authorization.", strings.ToLower(h))
		}
	}
	return s, nil
}

// Verify checks s's signature over r and body: the body's SHA-256 against
// x-amz-content-sha256 when sent, then the signature recomputed by the AWS
// SDK's own signer over the canonical request (method, path, query, the
// signed headers, the body's hash) with the secret access key of
// s.AccessKeyID, compared in constant time. Its errors are *Error.
func (d *Deriver) Verify(r *http.Request, s *Signed, body []byte) error {
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		// UNSIGNED-PAYLOAD and the streaming forms too: keygate holds the
		// whole body and checks it.
		return invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	// Rebuild the request from what the client signed alone, and sign it
	// again as the client's SDK did.
	re := &http.Request{Method: r.Method, Header: http.Header{}, Host: r.Host}
	re.URL = &url.URL{Scheme: "http", Host: r.Host, Opaque: rawPath(r), RawQuery: r.URL.RawQuery}
	if r.TLS != nil {
		re.URL.Scheme = "https"
	}
	for n := range strings.SplitSeq(s.signedHeaders, ";") {
		switch n {
		case "host":
		case "content-length":
			// The signer signs the length it is given, from the header.
			re.ContentLength = r.ContentLength
		default:
			re.Header[http.CanonicalHeaderKey(n)] = r.Header.Values(n)
		}
	}
	secret := d.secret(s.AccessKeyID)
	defer clear(secret)
	creds := aws.Credentials{AccessKeyID: s.AccessKeyID, SecretAccessKey: string(secret)}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, re, payload, s.Service, s.Region, s.At); err != nil {
		return invalid("keygate could not compute the signature: %v", err)
	}
	_, params, _ := strings.Cut(re.Header.Get("Authorization"), " ")
	var wantHeaders, want string
	for p := range strings.SplitSeq(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "SignedHeaders":
			wantHeaders = v
		case "Signature":
			want = v
		}
	}
	if wantHeaders != s.signedHeaders {
		// A header the client signed that the SDK's signer never signs
		// (User-Agent, Expect, ...), or a zero Content-Length: keygate
		// cannot recompute such a signature, so it cannot accept it.
		return invalid("%s keygate checks signatures over the headers the AWS SDKs sign, and this one signs %q.", MismatchMessage, s.signedHeaders)
	}
	if !hmac.Equal([]byte(want), []byte(s.signature)) {
		return &Error{Type: ErrTypeInvalidSignature, Message: MismatchMessage}
	}
	return nil
}

// rawPath is the request's path exactly as the client sent it, which is
// what it signed.
func rawPath(r *http.Request) string {
	if u := r.RequestURI; strings.HasPrefix(u, "/") {
		p, _, _ := strings.Cut(u, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// validRegion reports whether s is shaped like an AWS region name
// (us-east-1, eu-central-2, us-gov-west-1).
func validRegion(s string) bool {
	if len(s) < 4 || len(s) > 32 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// truncate bounds a client-supplied string quoted in a message.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
