package token_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/internal/token"
)

func TestIssueVerifyRoundTrip(t *testing.T) {
	_, n := rotatedNode(t)
	want := token.Claims{
		Subject:  "key_123",
		ClientID: "ci-agent",
		Scope: token.Scope{
			Providers: []string{"openai"},
			Models:    []string{"gpt-4o*"},
			Paths:     []string{"POST /v1/chat/completions"},
			Limits:    json.RawMessage(`{"rpm":10}`),
		},
		JTI:      "jti_abc",
		AMR:      []string{"otp"},
		CnfX5t:   "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2",
		FamilyID: "fam_1",
	}
	raw := n.issue(t, want)
	if !token.LooksLikeJWT(raw) {
		t.Fatalf("an issued token does not look like a JWT")
	}
	got, err := n.auth.Verify(ctx(t), raw, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Subject != want.Subject || got.ClientID != want.ClientID || got.JTI != want.JTI ||
		got.CnfX5t != want.CnfX5t || got.FamilyID != want.FamilyID || !slices.Equal(got.AMR, want.AMR) {
		t.Errorf("claims = %+v, want %+v", got, want)
	}
	if !slices.Equal(got.Scope.Providers, want.Scope.Providers) || !slices.Equal(got.Scope.Models, want.Scope.Models) ||
		!slices.Equal(got.Scope.Paths, want.Scope.Paths) || string(got.Scope.Limits) != string(want.Scope.Limits) {
		t.Errorf("scope = %+v, want %+v", got.Scope, want.Scope)
	}
	if !got.IssuedAt.Equal(t0) || !got.NotBefore.Equal(t0) || !got.Expiry.Equal(t0.Add(token.DefaultLifetime)) {
		t.Errorf("times iat=%s nbf=%s exp=%s, want iat=nbf=%s exp=%s", got.IssuedAt, got.NotBefore, got.Expiry, t0, t0.Add(token.DefaultLifetime))
	}

	// The header is the RFC 9068 one.
	hdr, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	if err := json.Unmarshal(hdr, &h); err != nil {
		t.Fatal(err)
	}
	if h["typ"] != "at+jwt" || h["alg"] != "EdDSA" || h["kid"] != n.currentKID(t) {
		t.Errorf("header = %v, want typ at+jwt, alg EdDSA, kid %s", h, n.currentKID(t))
	}
}

func TestIssueDefaultsAndLimits(t *testing.T) {
	_, n := rotatedNode(t)
	c := token.Claims{Subject: "key_1", ClientID: "one"}
	raw := n.issue(t, c)
	got, err := n.auth.Verify(ctx(t), raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got.JTI == "" {
		t.Error("Issue did not fill in a jti")
	}
	other := n.issue(t, c)
	if o, _ := n.auth.Verify(ctx(t), other, t0); o.JTI == got.JTI {
		t.Error("two tokens got the same jti")
	}

	for name, c := range map[string]token.Claims{
		"no subject":      {ClientID: "one"},
		"no client ID":    {Subject: "key_1"},
		"lifetime > 1h":   {Subject: "key_1", ClientID: "one", IssuedAt: t0, Expiry: t0.Add(time.Hour + time.Second)},
		"exp before iat":  {Subject: "key_1", ClientID: "one", IssuedAt: t0, Expiry: t0.Add(-time.Second)},
		"nbf after exp":   {Subject: "key_1", ClientID: "one", IssuedAt: t0, NotBefore: t0.Add(20 * time.Minute)},
		"invalid limits":  {Subject: "key_1", ClientID: "one", Scope: token.Scope{Limits: json.RawMessage(`{`)}},
		"before any keys": {Subject: "key_1", ClientID: "one", IssuedAt: t0.Add(-48 * time.Hour)},
	} {
		if _, err := n.auth.Issue(ctx(t), c); err == nil {
			t.Errorf("Issue with %s succeeded", name)
		}
	}
	if _, err := n.auth.Issue(ctx(t), token.Claims{Subject: "key_1", ClientID: "one", IssuedAt: t0, Expiry: t0.Add(time.Hour)}); err != nil {
		t.Errorf("Issue with a 1h lifetime: %v", err)
	}
	if _, err := token.NewAuthority(n.ring, token.Options{Issuer: testIssuer, Audience: testAudience, Lifetime: 2 * time.Hour}); err == nil {
		t.Error("NewAuthority accepted a 2h default lifetime")
	}
	if _, err := token.NewAuthority(n.ring, token.Options{Issuer: testIssuer}); err == nil {
		t.Error("NewAuthority accepted an empty audience")
	}
}

// TestVerifyRefuses runs one forged or unsuitable token per known attack.

func TestVerifyRefuses(t *testing.T) {
	_, n := rotatedNode(t)
	kid := n.currentKID(t)
	priv := n.privateKey(t, kid)
	pub := priv.Public().(ed25519.PublicKey)
	now := t0.Add(time.Minute)

	// Another authority sharing the keys but configured for another
	// audience or issuer.
	otherAud, err := token.NewAuthority(n.ring, token.Options{Issuer: testIssuer, Audience: "https://other.example", Now: n.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	otherIss, err := token.NewAuthority(n.ring, token.Options{Issuer: "https://evil.example", Audience: testAudience, Now: n.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	basic := token.Claims{Subject: "key_123", ClientID: "ci-agent"}
	issueWith := func(a *token.Authority, c token.Claims) string {
		raw, err := a.Issue(ctx(t), c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	// An attacker who knows only the public key.
	joseSign := func(alg jose.SignatureAlgorithm, key any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := json.Marshal(validClaims(t0))
		obj, err := s.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)

	valid := n.issue(t, basic)
	parts := strings.Split(valid, ".")
	tamperedClaims := validClaims(t0)
	tamperedClaims["sub"] = "key_admin"
	tamperedPayload, _ := json.Marshal(tamperedClaims)

	withClaim := func(k string, v any) map[string]any {
		c := validClaims(t0)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	jwkHeader := edHeader(kid)
	jwkHeader["jwk"] = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(strangerKey.Public().(ed25519.PublicKey))}

	tests := []struct {
		name string
		raw  string
		at   time.Time
		want error
	}{
		{"alg none", forge(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, validClaims(t0), nil), now, token.ErrUnsupportedAlg},
		{"alg None", forge(t, map[string]any{"alg": "None", "typ": "at+jwt", "kid": kid}, validClaims(t0), nil), now, token.ErrUnsupportedAlg},
		{"HS256 keyed with the public key", joseSign(jose.HS256, []byte(pub)), now, token.ErrUnsupportedAlg},
		{"HS256 keyed with the JWK x", joseSign(jose.HS256, []byte(b64(pub))), now, token.ErrUnsupportedAlg},
		{"RS256", joseSign(jose.RS256, rsaKey), now, token.ErrUnsupportedAlg},
		{"ES256", joseSign(jose.ES256, ecKey), now, token.ErrUnsupportedAlg},
		{"no alg", forge(t, map[string]any{"typ": "at+jwt", "kid": kid}, validClaims(t0), edSigner(priv)), now, token.ErrUnsupportedAlg},
		{"another audience", issueWith(otherAud, basic), now, token.ErrWrongAudience},
		{"another issuer", issueWith(otherIss, basic), now, token.ErrWrongIssuer},
		{"no audience", forge(t, edHeader(kid), withClaim("aud", nil), edSigner(priv)), now, token.ErrWrongAudience},
		{"audience list without ours", forge(t, edHeader(kid), withClaim("aud", []string{"a", "b"}), edSigner(priv)), now, token.ErrWrongAudience},
		{"expired", valid, t0.Add(token.DefaultLifetime + token.Leeway + time.Second), token.ErrExpired},
		{"not yet valid", issueWith(n.auth, token.Claims{Subject: "k", ClientID: "c", IssuedAt: t0, NotBefore: t0.Add(10 * time.Minute)}), now, token.ErrNotYetValid},
		{"iat far in the future", issueWith(n.auth, token.Claims{Subject: "k", ClientID: "c", IssuedAt: t0.Add(time.Hour)}), now, token.ErrNotYetValid},
		{"iat future, no nbf", forge(t, edHeader(kid), withClaim("nbf", nil), edSigner(priv)), t0.Add(-time.Minute), token.ErrNotYetValid},
		{"lifetime over 1h", forge(t, edHeader(kid), withClaim("exp", t0.Add(time.Hour+time.Second).Unix()), edSigner(priv)), now, token.ErrTooLong},
		{"lifetime of a year", forge(t, edHeader(kid), withClaim("exp", t0.AddDate(1, 0, 0).Unix()), edSigner(priv)), now, token.ErrTooLong},
		{"tampered payload", parts[0] + "." + b64(tamperedPayload) + "." + parts[2], now, token.ErrBadSignature},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(n.issue(t, basic), ".")[2], now, token.ErrBadSignature},
		{"truncated signature", valid[:len(valid)-4], now, token.ErrBadSignature},
		{"unknown kid", forge(t, edHeader("nope"), validClaims(t0), edSigner(strangerKey)), now, token.ErrUnknownKey},
		{"known kid, stranger's key", forge(t, edHeader(kid), validClaims(t0), edSigner(strangerKey)), now, token.ErrBadSignature},
		{"embedded jwk", forge(t, jwkHeader, validClaims(t0), edSigner(strangerKey)), now, token.ErrBadSignature},
		{"no kid", forge(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt"}, validClaims(t0), edSigner(priv)), now, token.ErrMalformed},
		{"typ JWT", forge(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}, validClaims(t0), edSigner(priv)), now, token.ErrMalformed},
		{"no typ", forge(t, map[string]any{"alg": "EdDSA", "kid": kid}, validClaims(t0), edSigner(priv)), now, token.ErrMalformed},
		{"no sub", forge(t, edHeader(kid), withClaim("sub", nil), edSigner(priv)), now, token.ErrMalformed},
		{"no jti", forge(t, edHeader(kid), withClaim("jti", nil), edSigner(priv)), now, token.ErrMalformed},
		{"no exp", forge(t, edHeader(kid), withClaim("exp", nil), edSigner(priv)), now, token.ErrMalformed},
		{"no iat", forge(t, edHeader(kid), withClaim("iat", nil), edSigner(priv)), now, token.ErrMalformed},
		{"claims not an object", forge(t, edHeader(kid), []int{1}, edSigner(priv)), now, token.ErrMalformed},
		{"claims null", forge(t, edHeader(kid), nil, edSigner(priv)), now, token.ErrWrongIssuer},
		{"empty", "", now, token.ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], now, token.ErrMalformed},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, now, token.ErrMalformed},
		{"whitespace", " " + valid, now, token.ErrMalformed},
		{"huge", "eyJ" + strings.Repeat("A", 10000) + ".e.e", now, token.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.auth.Verify(ctx(t), tc.raw, tc.at)
			wantErr(t, err, tc.want, "Verify")
			wantErr(t, err, token.ErrInvalid, "Verify")
			noSecretIn(t, err, tc.raw)
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	_, n := rotatedNode(t)
	raw := n.issue(t, token.Claims{Subject: "k", ClientID: "c", IssuedAt: t0, NotBefore: t0.Add(time.Minute)})
	for _, at := range []time.Time{
		t0.Add(time.Minute - token.Leeway),                         // nbf within leeway
		t0.Add(token.DefaultLifetime + token.Leeway - time.Second), // exp within leeway
	} {
		if _, err := n.auth.Verify(ctx(t), raw, at); err != nil {
			t.Errorf("Verify at %s: %v", at, err)
		}
	}
	_, err := n.auth.Verify(ctx(t), raw, t0.Add(time.Minute-token.Leeway-time.Second))
	wantErr(t, err, token.ErrNotYetValid, "Verify just before nbf - leeway")
	// The token is now in the verified cache; its times are still checked.
	_, err = n.auth.Verify(ctx(t), raw, t0.Add(token.DefaultLifetime+token.Leeway+time.Second))
	wantErr(t, err, token.ErrExpired, "Verify of a cached token after exp + leeway")
}

// TestVerifyCache checks that remembered tokens behave as fresh ones.

func TestVerifyCache(t *testing.T) {
	_, n := rotatedNode(t)
	raw := n.issue(t, token.Claims{Subject: "k", ClientID: "c", Scope: token.Scope{Models: []string{"gpt-4o"}, Limits: json.RawMessage(`{"rpm":1}`)}})
	first, err := n.auth.Verify(ctx(t), raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	first.Scope.Models[0] = "*"
	first.Scope.Limits[1] = 'X'
	again, err := n.auth.Verify(ctx(t), raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	if again.Scope.Models[0] != "gpt-4o" || string(again.Scope.Limits) != `{"rpm":1}` {
		t.Errorf("changing returned claims changed the cached ones: %+v", again.Scope)
	}
	// Another Authority with another audience shares the keys but not the cache.
	other, err := token.NewAuthority(n.ring, token.Options{Issuer: testIssuer, Audience: "https://other.example"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Verify(ctx(t), raw, t0)
	wantErr(t, err, token.ErrWrongAudience, "a cached token at another authority")

	// A full cache keeps working.
	small, err := token.NewAuthority(n.ring, token.Options{Issuer: testIssuer, Audience: testAudience, CacheSize: 4, Now: n.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		raw := n.issue(t, token.Claims{Subject: "k", ClientID: "c", IssuedAt: t0.Add(time.Duration(i) * time.Second)})
		for range 2 {
			if _, err := small.Verify(ctx(t), raw, t0.Add(time.Minute)); err != nil {
				t.Fatalf("token %d: %v", i, err)
			}
		}
	}
}

// TestVerifyRetiredKey checks that a key's tokens stop verifying once it

// leaves the key set, even when its private half is stolen afterwards.

// TestRotationOverlap checks that tokens of the previous key keep

// verifying after a rotation while new tokens use the new key.

// TestJWKSForResourceServer verifies a keygate token the way an

// independent resource server would: from the published key set alone.

// TestNodesConverge has several keygate nodes rotate at once: they must

// agree on one key.

// TestOtherNodesKeys checks that a node verifies tokens signed with a key

// another node created, reloading the key set at most once per interval.

// TestSigningKeyAtRest checks that the private half of a signing key is a

// vault record and nowhere in the store in clear.

func TestLooksLikeJWT(t *testing.T) {
	_, n := rotatedNode(t)
	for raw, want := range map[string]bool{
		n.issue(t, token.Claims{Subject: "k", ClientID: "c"}):    true,
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.":                   true, // alg none: Verify explains the refusal
		"kg_live_0123456789012345678901234567890123456789abcdef": false,
		"kgr_0123456789012345678901234567890123456789abc":        false,
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0":                    false,
		"eyJhbGciOiJub25lIn0..sig":                               false,
		"eyJ.a.b.c":                                              false,
		"eyJ+/.a.b":                                              false,
		"":                                                       false,
		"Bearer eyJ.a.b":                                         false,
	} {
		if got := token.LooksLikeJWT(raw); got != want {
			t.Errorf("LooksLikeJWT(%.30q) = %v, want %v", raw, got, want)
		}
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{token.ErrMalformed, token.ErrUnsupportedAlg, token.ErrBadSignature, token.ErrUnknownKey,
		token.ErrWrongIssuer, token.ErrWrongAudience, token.ErrExpired, token.ErrNotYetValid, token.ErrTooLong,
		token.ErrRefreshUnknown, token.ErrRefreshReused, token.ErrFamilyRevoked}
	for i, a := range all {
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
}

// TestConcurrentUse issues and verifies tokens from many goroutines while

// the key set reloads and rotates, for the race detector.

func TestConcurrentUse(t *testing.T) {
	_, n := rotatedNode(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				switch {
				case g == 0 && i%5 == 0:
					if err := n.ring.Refresh(ctx(t)); err != nil {
						t.Error(err)
					}
				case g == 1 && i%5 == 0:
					if err := n.ring.Rotate(ctx(t), t0); err != nil {
						t.Error(err)
					}
				case g == 2:
					if len(n.ring.JWKS()) == 0 {
						t.Error("empty JWKS")
					}
				}
				raw, err := n.auth.Issue(ctx(t), token.Claims{Subject: "k", ClientID: "c", Scope: token.Scope{Models: []string{"m"}}})
				if err != nil {
					t.Error(err)
					return
				}
				for range 2 {
					c, err := n.auth.Verify(ctx(t), raw, t0)
					if err != nil {
						t.Error(err)
						return
					}
					c.Scope.Models[0] = "changed"
				}
			}
		}()
	}
	wg.Wait()
}

// TestResourceBoundToken: a token bound to a resource (RFC 8707) names it
// in aud beside keygate's audience, and Verify returns it.
func TestResourceBoundToken(t *testing.T) {
	_, n := rotatedNode(t)
	raw := n.issue(t, token.Claims{Subject: "key_1", ClientID: "agent", FamilyID: "fam_1",
		Scope: token.Scope{Tools: []string{"github/*"}, Resource: "https://keygate.example/mcp/github"}})
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		Aud []string `json:"aud"`
	}
	if err := json.Unmarshal(payload, &w); err != nil || len(w.Aud) != 2 || w.Aud[1] != "https://keygate.example/mcp/github" {
		t.Fatalf("aud = %v (%v), want keygate's audience and the resource", w.Aud, err)
	}
	got, err := n.auth.Verify(ctx(t), raw, t0.Add(time.Minute))
	if err != nil || got.Scope.Resource != "https://keygate.example/mcp/github" || !slices.Equal(got.Scope.Tools, []string{"github/*"}) {
		t.Fatalf("Verify: %v, scope %+v", err, got.Scope)
	}
}
