package token_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keygate/keygate/internal/token"
)

func TestVerifyRetiredKey(t *testing.T) {
	_, n := rotatedNode(t)
	oldKID := n.currentKID(t)
	oldPriv := n.privateKey(t, oldKID)
	old := n.ring.Keys()[0]

	// Rotation: the old key stops signing, the new one signs.
	rotateAt := old.SignUntil.Add(-30 * time.Minute)
	n.clock.Set(rotateAt)
	if err := n.ring.Rotate(ctx(t), rotateAt); err != nil {
		t.Fatal(err)
	}
	if got := n.currentKID(t); got == oldKID {
		t.Fatal("Rotate within the overlap did not create a new key")
	}
	if !old.PublishUntil.Equal(old.SignUntil.Add(token.MaxLifetime + token.DefaultOverlap)) {
		t.Errorf("PublishUntil = %s, want SignUntil + 1h + overlap", old.PublishUntil)
	}

	// A token the old key signs just before its end verifies until it expires.
	lastIat := old.SignUntil.Add(-time.Second)
	last := forge(t, edHeader(oldKID), map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "k", "client_id": "c", "jti": "j",
		"iat": lastIat.Unix(), "exp": lastIat.Add(token.MaxLifetime).Unix(),
	}, edSigner(oldPriv))
	if _, err := n.auth.Verify(ctx(t), last, lastIat.Add(token.MaxLifetime)); err != nil {
		t.Errorf("the old key's last token at its expiry: %v", err)
	}
	lastClaims := validClaims(lastIat)
	lastClaims["exp"] = lastIat.Add(token.MaxLifetime).Unix()
	long := forge(t, edHeader(oldKID), lastClaims, edSigner(oldPriv))
	if _, err := n.auth.Verify(ctx(t), long, lastIat); err != nil { // now remembered as verified
		t.Fatal(err)
	}

	// A token the old key signs after its end is refused while it is published.
	late := lastIat.Add(10 * time.Minute)
	_, err := n.auth.Verify(ctx(t), forge(t, edHeader(oldKID), validClaims(late), edSigner(oldPriv)), late)
	wantErr(t, err, token.ErrBadSignature, "token signed by a key after it stopped signing")

	// Once unpublished, nothing it signs verifies, whatever its dates.
	gone := old.PublishUntil.Add(time.Second)
	n.clock.Set(gone)
	_, err = n.auth.Verify(ctx(t), forge(t, edHeader(oldKID), validClaims(gone), edSigner(oldPriv)), gone)
	wantErr(t, err, token.ErrUnknownKey, "token signed by a key removed from the JWKS")
	_, err = n.auth.Verify(ctx(t), long, old.PublishUntil)
	wantErr(t, err, token.ErrUnknownKey, "a remembered token whose key left the JWKS")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(n.ring.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Key(oldKID)) != 0 || len(set.Keys) != 1 {
		t.Errorf("after PublishUntil the JWKS holds %d keys (old key present: %v), want only the new one", len(set.Keys), len(set.Key(oldKID)) != 0)
	}
}

func TestRotationOverlap(t *testing.T) {
	_, n := rotatedNode(t)
	oldKID := n.currentKID(t)
	old := n.ring.Keys()[0]

	before := old.SignUntil.Add(-token.DefaultOverlap - time.Minute)
	if err := n.ring.Rotate(ctx(t), before); err != nil {
		t.Fatal(err)
	}
	if n.currentKID(t) != oldKID {
		t.Fatal("Rotate created a key before the overlap window")
	}
	// Nothing has rotated yet when this token is issued, so the old key signs it.
	n.clock.Set(old.SignUntil.Add(-31 * time.Minute))
	tokOld := n.issue(t, token.Claims{Subject: "k", ClientID: "c"})

	at := old.SignUntil.Add(-30 * time.Minute)
	n.clock.Set(at)
	if err := n.ring.Rotate(ctx(t), at); err != nil {
		t.Fatal(err)
	}
	newKID := n.currentKID(t)
	if newKID == oldKID {
		t.Fatal("Rotate within the overlap window did not create a key")
	}
	tokNew := n.issue(t, token.Claims{Subject: "k", ClientID: "c"})
	if kidOf(t, tokNew) != newKID || kidOf(t, tokOld) != oldKID {
		t.Fatalf("kids old=%s new=%s, want %s and %s", kidOf(t, tokOld), kidOf(t, tokNew), oldKID, newKID)
	}
	for name, raw := range map[string]string{"old": tokOld, "new": tokNew} {
		if _, err := n.auth.Verify(ctx(t), raw, at.Add(time.Minute)); err != nil {
			t.Errorf("the %s key's token after rotation: %v", name, err)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(n.ring.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].KeyID != newKID || set.Keys[1].KeyID != oldKID {
		t.Errorf("JWKS during the overlap = %v, want the new key then the old", kids(set))
	}
	// A second Rotate is a no-op.
	if err := n.ring.Rotate(ctx(t), at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := len(n.ring.Keys()); got != 2 {
		t.Errorf("after a second Rotate the ring holds %d keys, want 2", got)
	}
}

func kidOf(t testing.TB, raw string) string {
	t.Helper()
	obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return obj.Signatures[0].Protected.KeyID
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestJWKSForResourceServer(t *testing.T) {
	_, n := rotatedNode(t)
	doc := n.ring.JWKS()

	var rawSet struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &rawSet); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	if len(rawSet.Keys) != 1 {
		t.Fatalf("JWKS holds %d keys, want 1", len(rawSet.Keys))
	}
	k := rawSet.Keys[0]
	for field, want := range map[string]string{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": n.currentKID(t)} {
		if k[field] != want {
			t.Errorf("JWK %s = %v, want %s", field, k[field], want)
		}
	}
	if _, ok := k["d"]; ok {
		t.Fatal("the JWKS publishes a private key")
	}

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	raw := n.issue(t, token.Claims{Subject: "key_9", ClientID: "agent"})
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 || !keys[0].Valid() || !keys[0].IsPublic() {
		t.Fatalf("JWKS has no usable public key for the token's kid")
	}
	var std jwt.Claims
	var extra struct {
		ClientID string `json:"client_id"`
	}
	if err := tok.Claims(keys[0], &std, &extra); err != nil {
		t.Fatalf("verify with the JWKS key: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: testIssuer, AnyAudience: jwt.Audience{testAudience}, Time: t0.Add(time.Minute)}, 0); err != nil {
		t.Errorf("standard claims: %v", err)
	}
	if std.Subject != "key_9" || extra.ClientID != "agent" {
		t.Errorf("sub=%q client_id=%q, want key_9 and agent", std.Subject, extra.ClientID)
	}

	// The encoding is cached, and callers cannot alter the cache.
	doc[0] = 'X'
	if again := n.ring.JWKS(); again[0] != '{' {
		t.Error("changing a returned JWKS changed the cached one")
	}
}

func TestJWKSEmptyRing(t *testing.T) {
	n := newEnv(t).node(t, t0)
	if got := string(n.ring.JWKS()); got != `{"keys":[]}` {
		t.Errorf("JWKS of an empty ring = %s", got)
	}
	_, err := n.auth.Issue(ctx(t), token.Claims{Subject: "k", ClientID: "c"})
	wantErr(t, err, token.ErrNoSigningKey, "Issue before any Rotate")
}

func TestNodesConverge(t *testing.T) {
	e := newEnv(t)
	const nodes = 6
	var ns []*node
	for range nodes {
		ns = append(ns, e.node(t, t0))
	}
	rotateAll := func(at time.Time) {
		errs := make(chan error, nodes)
		for _, n := range ns {
			go func() { errs <- n.ring.Rotate(ctx(t), at) }()
		}
		for range nodes {
			if err := <-errs; err != nil {
				t.Fatalf("Rotate: %v", err)
			}
		}
	}
	rotateAll(t0)
	keys, err := e.st.ListSigningKeys(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("%d nodes rotating at once made %d keys, want 1", nodes, len(keys))
	}
	for _, n := range ns {
		if got := kidOf(t, n.issue(t, token.Claims{Subject: "k", ClientID: "c"})); got != keys[0].KID {
			t.Errorf("a node signs with %s, want %s", got, keys[0].KID)
		}
	}

	// Again at the end of the key's signing window, with clocks a few
	// seconds apart.
	end := keys[0].SignUntil.Add(-10 * time.Minute)
	errs := make(chan error, nodes)
	for i, n := range ns {
		go func() { errs <- n.ring.Rotate(ctx(t), end.Add(time.Duration(i)*time.Second)) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	keys, err = e.st.ListSigningKeys(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("a second concurrent rotation left %d keys, want 2", len(keys))
	}
	at := end.Add(time.Minute)
	for _, n := range ns {
		if got := kidOf(t, n.issue(t, token.Claims{Subject: "k", ClientID: "c", IssuedAt: at})); got != keys[1].KID {
			t.Errorf("after the second rotation a node signs with %s, want %s", got, keys[1].KID)
		}
	}
}

func TestOtherNodesKeys(t *testing.T) {
	e := newEnv(t)
	a, b := e.node(t, t0), e.node(t, t0)
	if err := a.ring.Rotate(ctx(t), t0); err != nil {
		t.Fatal(err)
	}
	if err := b.ring.Refresh(ctx(t)); err != nil {
		t.Fatal(err)
	}
	first := a.issue(t, token.Claims{Subject: "k", ClientID: "c"})
	if _, err := b.auth.Verify(ctx(t), first, t0); err != nil {
		t.Fatal(err)
	}

	// a rotates; b has not seen the new key yet.
	rot := a.ring.Keys()[0].SignUntil.Add(-time.Minute)
	if err := a.ring.Rotate(ctx(t), rot); err != nil {
		t.Fatal(err)
	}
	raw := a.issue(t, token.Claims{Subject: "k", ClientID: "c", IssuedAt: rot})

	b.clock.Set(t0.Add(time.Second)) // within the refresh interval of b's last load
	lists := b.keys.lists.Load()
	_, err := b.auth.Verify(ctx(t), raw, rot)
	wantErr(t, err, token.ErrUnknownKey, "Verify of an unseen key within the refresh interval")
	if b.keys.lists.Load() != lists {
		t.Error("an unknown kid reloaded the key set within the refresh interval")
	}

	b.clock.Set(t0.Add(time.Minute))
	if _, err := b.auth.Verify(ctx(t), raw, rot); err != nil {
		t.Fatalf("Verify of another node's new key after the refresh interval: %v", err)
	}
	if got := b.keys.lists.Load() - lists; got != 1 {
		t.Errorf("the unknown kid caused %d reloads, want 1", got)
	}

	// A flood of unknown kids costs at most one reload per interval.
	lists = b.keys.lists.Load()
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	for i := range 50 {
		b.clock.Set(t0.Add(time.Minute + time.Duration(i)*time.Millisecond))
		forged := forge(t, edHeader("kid-"+strings.Repeat("x", i)), validClaims(rot), edSigner(stranger))
		_, err := b.auth.Verify(ctx(t), forged, rot)
		wantErr(t, err, token.ErrUnknownKey, "forged kid")
	}
	if got := b.keys.lists.Load() - lists; got > 1 {
		t.Errorf("50 unknown kids within the interval caused %d reloads, want at most 1", got)
	}
}

func TestSigningKeyAtRest(t *testing.T) {
	e, n := rotatedNode(t)
	kid := n.currentKID(t)
	priv := n.privateKey(t, kid)
	keys, err := e.st.ListSigningKeys(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !ed25519.PublicKey(keys[0].PublicKey).Equal(priv.Public()) {
		t.Fatal("the store's public key does not match the vault's private key")
	}
	n.issue(t, token.Claims{Subject: "k", ClientID: "c"})
	if found := searchDB(t, e.path, priv.Seed()); found {
		t.Error("the signing key's seed is in the database in clear")
	}
}
