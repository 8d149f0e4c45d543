package provider

import (
	"errors"
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// Bedrock is the dialect of Amazon Bedrock's runtime API as a client in
// Bedrock mode speaks it (POST /model/{modelId}/invoke,
// invoke-with-response-stream, converse, converse-stream): the AWS SDKs
// with a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK), which carry the
// keygate key as "Authorization: Bearer kg_...", or with the AWS access key
// pair keygate issued for a keygate key, which sign with SigV4 (verified by
// the gateway, internal/sigv4auth). keygate signs the upstream request with
// its own cloud identity.
type Bedrock struct{}

// Name implements Dialect.
func (Bedrock) Name() string { return "bedrock" }

// UpstreamPath appends the client path to the base path.
func (Bedrock) UpstreamPath(basePath, clientPath string) string {
	return joinPath(basePath, clientPath)
}

// ClientKey implements Dialect: the Bearer credential (x-api-key is taken
// too, for clients that send it).
func (Bedrock) ClientKey(h http.Header) (string, bool) { return clientKey(h, false) }

// StripCredentials implements Dialect, and removes what a client's own
// SigV4 signature left: keygate signs the request anew.
func (Bedrock) StripCredentials(h http.Header) {
	stripCredentials(h)
	for _, k := range []string{"X-Amz-Security-Token", "X-Amz-Date", "X-Amz-Content-Sha256"} {
		h.Del(k)
	}
}

// InjectAuth sets the credential as a Bearer token: for a cloud-identity
// upstream, the placeholder its signer strips.
func (Bedrock) InjectAuth(h http.Header, key secret.String) {
	if !key.IsZero() {
		setHeader(h, "Authorization", "Bearer "+key.Reveal())
	}
}

// bedrockError is the AWS JSON error body; the type travels in the
// X-Amzn-Errortype header, which the AWS SDKs read.
type bedrockError struct {
	Message string `json:"message"`
}

// BedrockErrorType is the AWS error type a Bedrock client's SDK expects
// for an HTTP status.
func BedrockErrorType(status int) string {
	switch {
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		return "ValidationException"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "AccessDeniedException"
	case status == http.StatusNotFound:
		return "ResourceNotFoundException"
	case status == http.StatusTooManyRequests:
		return "ThrottlingException"
	case status == http.StatusServiceUnavailable:
		return "ServiceUnavailableException"
	case status == http.StatusGatewayTimeout || status == http.StatusRequestTimeout:
		return "ModelTimeoutException"
	case status == http.StatusMethodNotAllowed:
		return "ValidationException"
	}
	return "InternalServerException"
}

// WriteError answers in the AWS JSON error shape. code, keygate's own
// reason, is kept in the message so a person reading the SDK's error sees
// it. A refusal that already set X-Amzn-Errortype (a SigV4 signature
// refused with AWS's own error type and words) keeps both.
func (Bedrock) WriteError(w http.ResponseWriter, status int, code, message string) {
	if w.Header().Get("X-Amzn-Errortype") == "" {
		w.Header().Set("X-Amzn-Errortype", BedrockErrorType(status))
		if code != "" && !strings.Contains(message, code) {
			message = code + ": " + message
		}
	}
	writeJSON(w, status, bedrockError{Message: message})
}

// WriteModels is not part of the Bedrock runtime API; keygate answers it
// as Bedrock answers an unknown operation.
func (b Bedrock) WriteModels(w http.ResponseWriter, _ []Model) {
	b.WriteError(w, http.StatusNotFound, "unknown_url", "the Bedrock runtime API lists no models; use the Bedrock control plane")
}

// ParseModels implements Dialect; Bedrock runtime upstreams list no models.
func (Bedrock) ParseModels([]byte) ([]Model, error) {
	return nil, errors.New("bedrock: the runtime API lists no models")
}
