package token

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	// accessTokenType is the JOSE typ of an access token (RFC 9068 §2.1).
	accessTokenType = "at+jwt"
	// maxTokenSize bounds the access tokens Verify will parse, in bytes.
	maxTokenSize = 8 << 10
)

// Options configures an Authority.
type Options struct {
	// Issuer is the iss of every token, such as keygate's public URL. Required.
	Issuer string
	// Audience is the aud of every token and the one Verify requires. Required.
	Audience string
	// Lifetime is an access token's lifetime when Claims.Expiry is zero
	// (DefaultLifetime); at most MaxLifetime.
	Lifetime time.Duration
	// Now is the clock used when Claims.IssuedAt is zero (time.Now).
	Now func() time.Time
	// CacheSize is how many verified tokens Verify remembers, so a token
	// presented again skips the signature check (DefaultCacheSize);
	// negative disables the cache.
	CacheSize int
}

// Scope is what an access token allows: narrowed allowances of the keygate
// key it was exchanged for. Its JSON form is the "keygate" claim's contents
// and what store.TokenFamily.Scope holds.
type Scope struct {
	// Providers are the provider names the token may call (patterns as in key scopes).
	Providers []string `json:"providers,omitempty"`
	// Models are the model patterns the token may use.
	Models []string `json:"models,omitempty"`
	// Paths are the "METHOD /path" patterns the token may call.
	Paths []string `json:"paths,omitempty"`
	// Services are the passthrough services the token may call.
	Services []string `json:"services,omitempty"`
	// Secrets are the vault secrets (names or patterns) the token may read
	// at the gateway's /secrets endpoint.
	Secrets []string `json:"secrets,omitempty"`
	// Tools are the MCP tool patterns (server/tool, !deny) the token may call.
	Tools []string `json:"tools,omitempty"`
	// Limits are the token's own limits, as a JSON object keygate's limiter reads.
	Limits json.RawMessage `json:"limits,omitempty"`
	// Resource, when set, binds the token to one protected resource (RFC
	// 8707), such as keygate's MCP endpoint https://host/mcp: the token
	// also names it in its aud claim, and is good there alone.
	Resource string `json:"resource,omitempty"`
}

// Claims are the contents of an access token.
type Claims struct {
	// Subject (sub) is the ID of the keygate key the token was exchanged for.
	Subject string
	// ClientID (client_id) is that key's name.
	ClientID string
	// Scope is what the token allows (the private "keygate" claim).
	Scope Scope
	// JTI (jti) identifies the token, for revocation. Issue fills it when empty.
	JTI string
	// IssuedAt (iat); Issue uses the clock when zero.
	IssuedAt time.Time
	// NotBefore (nbf); Issue uses IssuedAt when zero.
	NotBefore time.Time
	// Expiry (exp); Issue uses IssuedAt plus Options.Lifetime when zero.
	Expiry time.Time
	// AMR (amr) lists how the holder authenticated (RFC 8176), such as "otp".
	AMR []string
	// CnfX5t is the base64url SHA-256 thumbprint of the client certificate
	// the token is bound to ("cnf": {"x5t#S256": ...}, RFC 8705), or empty.
	CnfX5t string
	// FamilyID is the refresh family the token belongs to ("keygate.fam"), or empty.
	FamilyID string
}

// wireClaims is the JSON payload of an access token.
type wireClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	JTI       string           `json:"jti"`
	ClientID  string           `json:"client_id"`
	AMR       []string         `json:"amr,omitempty"`
	Cnf       *confirmation    `json:"cnf,omitempty"`
	Keygate   *keygateClaim    `json:"keygate,omitempty"`
}

type confirmation struct {
	X5tS256 string `json:"x5t#S256,omitempty"`
}

type keygateClaim struct {
	Scope
	FamilyID string `json:"fam,omitempty"`
}

// Authority issues and verifies keygate's access tokens with the keys of a
// Keyring. It is safe for concurrent use.
type Authority struct {
	ring     *Keyring
	issuer   string
	audience string
	lifetime time.Duration
	now      func() time.Time
	cache    *verifiedCache // nil when disabled
	// algs pins verification to EdDSA: go-jose refuses any other alg named
	// in a header before a key is ever used.
	algs []jose.SignatureAlgorithm
}

// NewAuthority returns an Authority that signs with ring's current key and
// verifies against every key ring still publishes.
func NewAuthority(ring *Keyring, opts Options) (*Authority, error) {
	if ring == nil {
		return nil, errors.New("token: an authority needs a keyring")
	}
	if opts.Issuer == "" || opts.Audience == "" {
		return nil, errors.New("token: access tokens need an issuer and an audience; set both")
	}
	a := &Authority{
		ring:     ring,
		issuer:   opts.Issuer,
		audience: opts.Audience,
		lifetime: orDefault(opts.Lifetime, DefaultLifetime),
		now:      opts.Now,
		algs:     []jose.SignatureAlgorithm{jose.EdDSA},
	}
	switch {
	case opts.CacheSize == 0:
		a.cache = newVerifiedCache(DefaultCacheSize)
	case opts.CacheSize > 0:
		a.cache = newVerifiedCache(opts.CacheSize)
	}
	if a.lifetime < 0 || a.lifetime > MaxLifetime {
		return nil, fmt.Errorf("token: access token lifetime %s must be between 0 and %s", a.lifetime, MaxLifetime)
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Lifetime returns the lifetime of a token issued without an explicit Expiry.
func (a *Authority) Lifetime() time.Duration { return a.lifetime }

// Issue signs an access token carrying c with the key that signs at
// c.IssuedAt. It refuses a token without subject or client ID, or one that
// would live longer than MaxLifetime.
func (a *Authority) Issue(ctx context.Context, c Claims) (string, error) {
	if c.Subject == "" || c.ClientID == "" {
		return "", errors.New("token: an access token needs a subject (key ID) and a client ID (key name)")
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = a.now()
	}
	c.IssuedAt = c.IssuedAt.Truncate(time.Second)
	if c.NotBefore.IsZero() {
		c.NotBefore = c.IssuedAt
	}
	if c.Expiry.IsZero() {
		c.Expiry = c.IssuedAt.Add(a.lifetime)
	}
	life := c.Expiry.Sub(c.IssuedAt)
	if life <= 0 || life > MaxLifetime {
		return "", fmt.Errorf("token: access token lifetime %s must be more than 0 and at most %s", life, MaxLifetime)
	}
	if c.NotBefore.After(c.Expiry) || c.NotBefore.Before(c.IssuedAt) {
		return "", errors.New("token: an access token's nbf must lie between its iat and exp")
	}
	if c.JTI == "" {
		id, err := randomID("")
		if err != nil {
			return "", fmt.Errorf("token: generate token ID: %w", err)
		}
		c.JTI = id
	}
	if len(c.Scope.Limits) > 0 && !json.Valid(c.Scope.Limits) {
		return "", errors.New("token: the token's limits are not valid JSON")
	}
	payload, err := json.Marshal(a.toWire(c))
	if err != nil {
		return "", fmt.Errorf("token: encode claims: %w", err)
	}
	rk, signer, err := a.ring.signer(ctx, c.IssuedAt)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: sign with key %q: %w", rk.rec.KID, err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("token: encode signed token: %w", err)
	}
	return raw, nil
}

func (a *Authority) toWire(c Claims) wireClaims {
	w := wireClaims{
		Issuer:    a.issuer,
		Subject:   c.Subject,
		Audience:  audience(a.audience, c.Scope.Resource),
		Expiry:    jwt.NewNumericDate(c.Expiry),
		NotBefore: jwt.NewNumericDate(c.NotBefore),
		IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
		JTI:       c.JTI,
		ClientID:  c.ClientID,
		AMR:       c.AMR,
	}
	if c.CnfX5t != "" {
		w.Cnf = &confirmation{X5tS256: c.CnfX5t}
	}
	s := c.Scope
	if len(s.Providers) > 0 || len(s.Models) > 0 || len(s.Paths) > 0 || len(s.Limits) > 0 || c.FamilyID != "" ||
		len(s.Services) > 0 || len(s.Secrets) > 0 || len(s.Tools) > 0 || s.Resource != "" {
		w.Keygate = &keygateClaim{Scope: s, FamilyID: c.FamilyID}
	}
	return w
}

// audience is a token's aud: keygate's audience and, for a token bound to
// a resource, that resource.
func audience(base, resource string) jwt.Audience {
	if resource == "" {
		return jwt.Audience{base}
	}
	return jwt.Audience{base, resource}
}

// Verify checks an access token at now and returns its claims. It accepts
// only EdDSA tokens of type at+jwt signed by a key the keyring publishes,
// issued by this Authority's issuer for its audience, within their validity
// (with Leeway for clock differences) and no longer-lived than MaxLifetime.
// A refused token gives an error matching ErrInvalid and one of the
// specific errors; other errors (such as the store failing while keys are
// reloaded) do not match ErrInvalid. Revocations are not checked here.
func (a *Authority) Verify(ctx context.Context, raw string, now time.Time) (Claims, error) {
	if len(raw) > maxTokenSize {
		return Claims{}, refuse(ErrMalformed, fmt.Sprintf("longer than %d bytes", maxTokenSize))
	}
	var sum [32]byte
	if a.cache != nil {
		sum = sha256.Sum256([]byte(raw))
		if e, ok := a.cache.get(sum); ok {
			if _, published := a.ring.ring.Load().published(e.kid, now); published {
				if err := checkTimes(&e.claims, now); err != nil {
					return Claims{}, err
				}
				return e.claims.clone(), nil
			}
			// The key left the key set: verify afresh for the right error.
		}
	}
	c, kid, err := a.verify(ctx, raw, now)
	if err != nil {
		return Claims{}, err
	}
	if err := checkTimes(&c, now); err != nil {
		return Claims{}, err
	}
	if a.cache != nil {
		a.cache.put(sum, &cachedClaims{kid: kid, claims: c.clone()}, now)
	}
	return c, nil
}

// verify checks everything about a token except its times, and returns its
// claims and the kid of the key that signed it.
func (a *Authority) verify(ctx context.Context, raw string, now time.Time) (Claims, string, error) {
	obj, err := jose.ParseSignedCompact(raw, a.algs)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return Claims{}, "", refuse(ErrUnsupportedAlg, fmt.Sprintf("alg %.20q; keygate accepts only %s", string(alg.Got), AlgEdDSA))
		}
		return Claims{}, "", refuse(ErrMalformed, "not a signed JWT in compact form")
	}
	if len(obj.Signatures) != 1 {
		return Claims{}, "", refuse(ErrMalformed, "not exactly one signature")
	}
	h := obj.Signatures[0].Protected
	if h.Algorithm != AlgEdDSA {
		// ParseSignedCompact already refused any other alg; this is a
		// second lock on the same door.
		return Claims{}, "", refuse(ErrUnsupportedAlg, fmt.Sprintf("alg %.20q; keygate accepts only %s", h.Algorithm, AlgEdDSA))
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return Claims{}, "", refuse(ErrMalformed, fmt.Sprintf("typ %.20q; keygate access tokens have typ %s", typ, accessTokenType))
	}
	if h.KeyID == "" {
		return Claims{}, "", refuse(ErrMalformed, "no kid in the header")
	}
	rk, err := a.ring.verifier(ctx, h.KeyID, now)
	if err != nil {
		return Claims{}, "", err
	}
	payload, err := obj.Verify(rk.pub)
	if err != nil {
		return Claims{}, "", refuse(ErrBadSignature, fmt.Sprintf("signature does not verify under key %q", rk.rec.KID))
	}
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil {
		return Claims{}, "", refuse(ErrMalformed, "claims are not a JSON object of the expected shape")
	}
	c, err := a.check(&w, rk)
	return c, rk.rec.KID, err
}

// isAccessTokenType reports whether typ names an RFC 9068 access token; the
// "application/" prefix may be left out and media types are case-insensitive.
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == accessTokenType || typ == "application/"+accessTokenType
}

// check validates the claims of a token signed by rk that do not depend on
// the time of the check.
func (a *Authority) check(w *wireClaims, rk *ringKey) (Claims, error) {
	if w.Issuer != a.issuer {
		return Claims{}, refuse(ErrWrongIssuer, fmt.Sprintf("issued by %.100q, not %q", w.Issuer, a.issuer))
	}
	if !w.Audience.Contains(a.audience) {
		return Claims{}, refuse(ErrWrongAudience, fmt.Sprintf("not meant for audience %q", a.audience))
	}
	if w.Subject == "" || w.ClientID == "" || w.JTI == "" || w.IssuedAt == nil || w.Expiry == nil {
		return Claims{}, refuse(ErrMalformed, "missing one of the required claims sub, client_id, jti, iat, exp")
	}
	iat, exp := w.IssuedAt.Time(), w.Expiry.Time()
	nbf := iat
	if w.NotBefore != nil {
		nbf = w.NotBefore.Time()
	}
	if life := exp.Sub(iat); life > MaxLifetime {
		return Claims{}, refuse(ErrTooLong, fmt.Sprintf("lifetime %s is longer than the %s keygate allows", life, MaxLifetime))
	}
	if iat.After(rk.rec.SignUntil.Add(Leeway)) {
		return Claims{}, refuse(ErrBadSignature, fmt.Sprintf("issued at %s by key %q, which stopped signing at %s",
			iat.UTC().Format(time.RFC3339), rk.rec.KID, rk.rec.SignUntil.UTC().Format(time.RFC3339)))
	}
	c := Claims{
		Subject:   w.Subject,
		ClientID:  w.ClientID,
		JTI:       w.JTI,
		IssuedAt:  iat,
		NotBefore: nbf,
		Expiry:    exp,
		AMR:       w.AMR,
	}
	if w.Cnf != nil {
		c.CnfX5t = w.Cnf.X5tS256
	}
	if w.Keygate != nil {
		c.Scope = w.Keygate.Scope
		c.FamilyID = w.Keygate.FamilyID
		if r := c.Scope.Resource; r != "" && !w.Audience.Contains(r) {
			return Claims{}, refuse(ErrWrongAudience, fmt.Sprintf("bound to resource %.200q, which its aud does not name", r))
		}
	}
	return c, nil
}

// checkTimes checks a token's exp, nbf and iat at now, with Leeway.
func checkTimes(c *Claims, now time.Time) error {
	if now.After(c.Expiry.Add(Leeway)) {
		return refuse(ErrExpired, "expired at "+c.Expiry.UTC().Format(time.RFC3339))
	}
	if now.Add(Leeway).Before(c.NotBefore) {
		return refuse(ErrNotYetValid, "not valid before "+c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.Add(Leeway).Before(c.IssuedAt) {
		return refuse(ErrNotYetValid, "issued in the future, at "+c.IssuedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// LooksLikeJWT reports whether raw is shaped like a compact JWS: three
// base64url segments separated by dots, the first starting with "eyJ" (the
// encoding of `{"`). It is a cheap test to tell access tokens from keygate
// keys, not a validation.
func LooksLikeJWT(raw string) bool {
	if len(raw) < 6 || len(raw) > maxTokenSize || !strings.HasPrefix(raw, "eyJ") {
		return false
	}
	dots, segLen := 0, 0
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '.':
			if segLen == 0 && dots < 2 {
				return false // the header and payload must not be empty
			}
			dots++
			segLen = 0
		case isBase62(c) || c == '-' || c == '_':
			segLen++
		default:
			return false
		}
	}
	return dots == 2
}
