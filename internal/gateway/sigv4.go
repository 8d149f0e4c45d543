package gateway

import (
	"errors"
	"net/http"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/sigv4auth"
	"github.com/keygate/keygate/internal/web"
)

// SigV4Verifier checks the AWS Signature Version 4 of a request signed
// with an access key pair keygate issued for a keygate key;
// internal/sigv4auth's Deriver implements it.
type SigV4Verifier interface {
	Verify(r *http.Request, s *sigv4auth.Signed, body []byte) error
}

// bedrockService is the name Bedrock's runtime API is signed for.
const bedrockService = "bedrock"

// bedrockCaller runs callerAndBody's steps for a Bedrock call, whichever
// way its client authenticates: a keygate key as a Bedrock API key
// (bearer), or a SigV4 signature made with the access key pair bound to one.
func (g *Gateway) bedrockCaller(r *http.Request, c *call) (*principal.Principal, []byte, *Denial) {
	if !sigv4auth.Presented(r) {
		return g.callerAndBody(r, c)
	}
	return g.sigV4CallerAndBody(r, c)
}

// sigV4CallerAndBody authenticates a SigV4-signed Bedrock call, then runs
// the steps a bearer call takes after it (the key's scope and risk rules,
// the body's credential check). A signature covers the body, so the body
// is read before the signature can be checked; what can be checked without
// it is checked first (the header's shape, the signing time and scope, that
// the access key names a key that exists), so a stranger makes keygate read
// a body only with an access key id of a real key, each failure charged to
// its address. The key's concurrency slots are not taken before the body
// (admitEarly): nothing of the key's may be spent before its signature
// verifies. Refusals are AWS's own (403 and X-Amzn-Errortype, as Bedrock
// answers), before any byte goes upstream; the client's Authorization
// header never goes upstream, where the provider's signer signs anew.
func (g *Gateway) sigV4CallerAndBody(r *http.Request, c *call) (*principal.Principal, []byte, *Denial) {
	if g.opts.SigV4 == nil {
		return nil, nil, deny(http.StatusForbidden, "invalid_api_key",
			"this keygate does not take SigV4-signed requests; send your keygate key as a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK) instead")
	}
	now := g.opts.Now()
	s, err := sigv4auth.Parse(r, bedrockService, now)
	if err != nil {
		return nil, nil, g.sigV4Failure(r, c, err)
	}
	c.cred, c.presentedPrefix = s.AccessKeyID, s.AccessKeyID
	key, keyErr := g.opts.Keys.ByID(r.Context(), s.KeyID, now)
	if errors.Is(keyErr, apikey.ErrUnknown) {
		return nil, nil, g.sigV4Failure(r, c, &sigv4auth.Error{Type: sigv4auth.ErrTypeUnrecognizedClient,
			Message: "The security token included in the request is invalid. Its keygate key no longer exists: ask for new credentials with `keygate key aws-credentials KEY`."})
	}
	body, den := g.readBody(r, c)
	if den != nil {
		return nil, nil, den
	}
	if err := g.opts.SigV4.Verify(r, s, body); err != nil {
		return nil, nil, g.sigV4Failure(r, c, err)
	}
	// Signed by the holder of the pair: from here the key's own state and
	// rules decide, as for its bearer form.
	switch {
	case keyErr == nil:
	case errors.Is(keyErr, apikey.ErrRevoked):
		return nil, nil, deny(http.StatusUnauthorized, "revoked_api_key", "the keygate key these AWS credentials belong to has been revoked")
	case errors.Is(keyErr, apikey.ErrExpired):
		return nil, nil, deny(http.StatusUnauthorized, "expired_api_key", "the keygate key these AWS credentials belong to has expired")
	default:
		g.opts.Log.Error("key lookup failed", "request_id", web.RequestID(r.Context()), "key_id", s.KeyID, "err", keyErr)
		return nil, nil, deny(http.StatusServiceUnavailable, "auth_unavailable", "keygate could not verify the AWS credentials right now; try again shortly")
	}
	if g.opts.KeyUsed != nil {
		g.opts.KeyUsed(key.ID, now)
	}
	c.keyID = key.ID
	if den := g.checkScope(r, c, key); den != nil {
		return nil, nil, den
	}
	if den := g.assessRisk(r, c, key); den != nil {
		return nil, nil, den
	}
	if body, den = g.checkLeaks(c, key, body); den != nil {
		return nil, nil, den
	}
	return key, body, nil
}

// sigV4Failure charges a failed signature to its source and answers it
// as AWS does: 403, the error type in X-Amzn-Errortype, AWS's message.
func (g *Gateway) sigV4Failure(r *http.Request, c *call, err error) *Denial {
	if den := g.authFailure(r, c.cred); den != nil {
		return den
	}
	var e *sigv4auth.Error
	if !errors.As(err, &e) {
		e = &sigv4auth.Error{Type: sigv4auth.ErrTypeInvalidSignature, Message: sigv4auth.MismatchMessage}
	}
	code := "invalid_signature"
	if e.Type == sigv4auth.ErrTypeUnrecognizedClient {
		code = "invalid_api_key"
	}
	den := deny(http.StatusForbidden, code, e.Message)
	den.Header = http.Header{"X-Amzn-Errortype": {e.Type}}
	return den
}
