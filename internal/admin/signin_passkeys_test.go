package admin_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
)

// softAuthenticator is a WebAuthn authenticator in software: a P-256 key
// made at run time, answering registrations with genuine "none"
// attestation and sign-ins with genuine assertions, as a security key or
// a phone would. uv says whether it verifies its user (PIN, biometric).
type softAuthenticator struct {
	t      *testing.T
	key    *ecdsa.PrivateKey
	id     []byte
	count  uint32
	uv     bool
	handle []byte
}

func newSoftAuthenticator(t *testing.T) *softAuthenticator {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softAuthenticator{t: t, key: k, id: id, uv: true}
}

var b64 = base64.RawURLEncoding

// options are the parts of the WebAuthn options an authenticator reads.
type options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	} `json:"publicKey"`
}

func readOptions(t *testing.T, w *httptest.ResponseRecorder) options {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("begin: %d %s", w.Code, w.Body)
	}
	var o options
	if err := json.Unmarshal(w.Body.Bytes(), &o); err != nil {
		t.Fatalf("begin answered %s: %v", w.Body, err)
	}
	return o
}

func (a *softAuthenticator) clientData(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return b
}

// authData is the authenticator data: rpIdHash, flags, sign count, and
// with attested the credential id and its COSE public key.
func (a *softAuthenticator) authData(rpID string, attested bool) []byte {
	rp := sha256.Sum256([]byte(rpID))
	flags := byte(0x01) // UP
	if a.uv {
		flags |= 0x04
	}
	if attested {
		flags |= 0x40
	}
	var buf bytes.Buffer
	buf.Write(rp[:])
	buf.WriteByte(flags)
	_ = binary.Write(&buf, binary.BigEndian, a.count)
	if attested {
		buf.Write(make([]byte, 16)) // AAGUID: none
		_ = binary.Write(&buf, binary.BigEndian, uint16(len(a.id)))
		buf.Write(a.id)
		x, y := make([]byte, 32), make([]byte, 32)
		a.key.X.FillBytes(x)
		a.key.Y.FillBytes(y)
		// COSE_Key: kty EC2, alg ES256, crv P-256, x, y.
		cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
		if err != nil {
			a.t.Fatal(err)
		}
		buf.Write(cose)
	}
	return buf.Bytes()
}

// create answers navigator.credentials.create at origin.
func (a *softAuthenticator) create(o options, origin string) json.RawMessage {
	a.t.Helper()
	a.handle, _ = b64.DecodeString(o.PublicKey.User.ID)
	cd := a.clientData("webauthn.create", o.PublicKey.Challenge, origin)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(o.PublicKey.RP.ID, true)})
	if err != nil {
		a.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(att)}})
	return b
}

// get answers navigator.credentials.get at origin: the count moves on,
// and the signature covers authData || SHA-256(clientDataJSON).
func (a *softAuthenticator) get(o options, origin string) json.RawMessage {
	a.t.Helper()
	a.count++
	cd := a.clientData("webauthn.get", o.PublicKey.Challenge, origin)
	ad := a.authData(o.PublicKey.RPID, false)
	cdh := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		a.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(a.handle)}})
	return b
}

const (
	adminHost   = "keygate.test:8788"
	adminOrigin = "http://" + adminHost
)

// at sends a request to the admin URL http://keygate.test:8788.
func at(r *http.Request) *http.Request {
	r.Host = adminHost
	return r
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// registerPasskey registers a's passkey for the session tok.
func registerPasskey(t *testing.T, h *harness, tok, name string, a *softAuthenticator) adminapi.Passkey {
	t.Helper()
	o := readOptions(t, h.send(at(withBearer(jsonRequest("POST", "/api/v1/me/passkeys/begin", mustJSON(adminapi.PasskeyBeginRequest{Name: name})), tok)), ""))
	if o.PublicKey.RP.ID != "keygate.test" {
		t.Fatalf("registration bound to relying party %q, want the admin URL's host keygate.test", o.PublicKey.RP.ID)
	}
	w := h.send(at(withBearer(jsonRequest("POST", "/api/v1/me/passkeys/finish", mustJSON(adminapi.PasskeyFinishRequest{Credential: a.create(o, adminOrigin)})), tok)), "")
	if w.Code != http.StatusCreated {
		t.Fatalf("registration: %d %s", w.Code, w.Body)
	}
	var pk adminapi.Passkey
	decode(t, w, &pk)
	return pk
}

// passkeyBegin starts a passkey sign-in for name from addr.
func passkeyBegin(t *testing.T, h *harness, name, addr string) options {
	t.Helper()
	return readOptions(t, h.send(at(jsonRequest("POST", "/api/v1/auth/passkey/begin", mustJSON(adminapi.PasskeyLoginBeginRequest{User: name}))), addr))
}

func passkeyFinish(h *harness, cred json.RawMessage, pw, addr string) *httptest.ResponseRecorder {
	return h.send(at(jsonRequest("POST", "/api/v1/auth/passkey/finish", mustJSON(adminapi.PasskeyLoginFinishRequest{Credential: cred, Password: pw}))), addr)
}

// TestPasskeys: a user whose role needs a second factor signs in with a
// password, registers a passkey (the session is then whole), and from
// then on signs in with the passkey: alone when the authenticator
// verifies the user, with the password when it does not. A replayed
// answer (on another node), a wrong origin, a copied authenticator (its
// counter going back) and a removed passkey are refused, and every
// ceremony is on the trail.
func TestPasskeys(t *testing.T) {
	h, trail := signInHarness(t, 100)
	alice := h.localUser("alice", rbac.Admin)
	auth := newSoftAuthenticator(t)

	tok := sessionToken(t, h.send(at(jsonRequest("POST", "/api/v1/auth/login", mustJSON(adminapi.LoginRequest{User: "alice", Password: testPassword}))), ""))
	wantError(t, h.send(at(withBearer(jsonRequest("GET", "/api/v1/keys", ""), tok)), ""), http.StatusForbidden, "mfa_enrolment_required")
	pk := registerPasskey(t, h, tok, "laptop", auth)
	if w := h.send(at(withBearer(jsonRequest("GET", "/api/v1/keys", ""), tok)), ""); w.Code != http.StatusOK {
		t.Fatalf("after registering a passkey the session still owes a second factor: %d %s", w.Code, w.Body)
	}
	// Holding alice's admin token (or a session without her second
	// factor) is not enough to add another passkey.
	wantError(t, h.send(at(withBearer(jsonRequest("POST", "/api/v1/me/passkeys/begin", `{}`), alice.token)), ""), http.StatusForbidden, "forbidden", "second factor")
	var list []adminapi.Passkey
	decode(t, h.send(at(withBearer(jsonRequest("GET", "/api/v1/me/passkeys", ""), tok)), ""), &list)
	if len(list) != 1 || list[0].ID != pk.ID || list[0].Name != "laptop" {
		t.Fatalf("passkeys listed %+v, want the laptop one %+v", list, pk)
	}

	// A password alone is no longer enough.
	wantError(t, h.send(at(jsonRequest("POST", "/api/v1/auth/login", mustJSON(adminapi.LoginRequest{User: "alice", Password: testPassword}))), ""),
		http.StatusUnauthorized, "passkey_required")

	// With user verification the passkey is the whole sign-in.
	o := passkeyBegin(t, h, "alice", "")
	if o.PublicKey.RPID != "keygate.test" || len(o.PublicKey.AllowCredentials) != 1 || o.PublicKey.AllowCredentials[0].ID != pk.ID {
		t.Fatalf("sign-in options %+v do not name the relying party and alice's passkey", o.PublicKey)
	}
	good := auth.get(o, adminOrigin)
	w := passkeyFinish(h, good, "", "")
	var out adminapi.LoginResponse
	decode(t, w, &out)
	if out.Session.Method != "webauthn" || out.Session.MFA != "webauthn" || out.Session.MFAEnrolmentRequired || out.Session.UserID != alice.id {
		t.Fatalf("passkey session %+v", out.Session)
	}
	if w := h.send(at(withBearer(jsonRequest("GET", "/api/v1/keys", ""), out.Token)), ""); w.Code != http.StatusOK {
		t.Fatalf("the passkey session cannot list keys: %d %s", w.Code, w.Body)
	}

	// The same answer again, even at another node, finds no challenge.
	node2 := admin.New(h.opts)
	w = httptest.NewRecorder()
	node2.ServeHTTP(w, at(jsonRequest("POST", "/api/v1/auth/passkey/finish", mustJSON(adminapi.PasskeyLoginFinishRequest{Credential: good}))))
	wantError(t, w, http.StatusUnauthorized, "unauthorized", "unknown, finished already or expired")

	// A page at another origin (a phishing copy) gets no session.
	wantError(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "alice", ""), "http://keygate-login.test:8788"), "", ""),
		http.StatusUnauthorized, "unauthorized", "origin")

	// An authenticator that does not verify its user is a second factor:
	// the password must come with it.
	auth.uv = false
	wantError(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "alice", ""), adminOrigin), "", ""), http.StatusUnauthorized, "password_required")
	wantError(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "alice", ""), adminOrigin), "not the password at all", ""), http.StatusUnauthorized, "unauthorized")
	decode(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "alice", ""), adminOrigin), testPassword, ""), &out)
	if out.Session.Method != "password" || out.Session.MFA != "webauthn" {
		t.Fatalf("password and passkey session %+v", out.Session)
	}
	auth.uv = true

	// A copy of the authenticator, its counter behind the one keygate
	// saw last, is refused.
	clone := *auth
	clone.count = 1
	wantError(t, passkeyFinish(h, clone.get(passkeyBegin(t, h, "alice", ""), adminOrigin), "", ""), http.StatusUnauthorized, "unauthorized", "counter went back")
	// The original, moving on, still works.
	decode(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "alice", ""), adminOrigin), "", ""), &out)

	// Another user cannot remove alice's passkey; alice can, and then it
	// signs nobody in.
	bob := h.localUser("bob", rbac.Viewer)
	bobTok := sessionToken(t, h.send(at(jsonRequest("POST", "/api/v1/auth/login", mustJSON(adminapi.LoginRequest{User: "bob", Password: testPassword}))), ""))
	wantError(t, h.send(at(withBearer(jsonRequest("DELETE", "/api/v1/me/passkeys/"+pk.ID, ""), bobTok)), ""), http.StatusNotFound, "not_found")
	_ = bob
	if w := h.send(at(withBearer(jsonRequest("DELETE", "/api/v1/me/passkeys/"+pk.ID, ""), tok)), ""); w.Code != http.StatusNoContent {
		t.Fatalf("removing the passkey: %d %s", w.Code, w.Body)
	}
	wantError(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "alice", ""), adminOrigin), "", ""), http.StatusUnauthorized, "unauthorized")
	// Without a passkey the password (and the second factor the role
	// needs, to enrol) is the way in again.
	sessionToken(t, h.send(at(jsonRequest("POST", "/api/v1/auth/login", mustJSON(adminapi.LoginRequest{User: "alice", Password: testPassword}))), ""))

	// A user without a keygate password (single sign-on) gets no passkey:
	// it would sign in past the provider.
	sam := h.addPerson("sam", store.UserPerson, rbac.Viewer, nil, "")
	wantError(t, h.send(at(withBearer(jsonRequest("POST", "/api/v1/me/passkeys/begin", `{}`), sam.token)), ""), http.StatusBadRequest, "bad_request", "local users")

	reasons := map[string]int{}
	allowed := 0
	for _, ev := range trail.find("admin.signin") {
		if ev.Fields["method"] != "webauthn" {
			continue
		}
		if ev.Decision == "allow" {
			allowed++
		} else {
			reasons[ev.Fields["reason"]]++
		}
	}
	if allowed != 2 {
		t.Errorf("%d passkey sign-ins allowed on the trail, want 2", allowed)
	}
	for _, r := range []string{"challenge_unknown", "bad_assertion", "password_missing", "bad_password", "sign_count_regressed"} {
		if reasons[r] == 0 {
			t.Errorf("no passkey sign-in refused for %s on the trail; refusals: %v", r, reasons)
		}
	}
	var registered, removed bool
	for _, ev := range trail.find("admin.passkey") {
		registered = registered || (ev.Fields["action"] == "register" && ev.Decision == "allow" && ev.Actor == alice.id)
		removed = removed || (ev.Fields["action"] == "remove" && ev.Decision == "allow")
	}
	if !registered || !removed {
		t.Errorf("passkey registration on the trail: %v, removal: %v", registered, removed)
	}
	for _, ev := range trail.find("admin.signin") {
		if strings.Contains(mustJSON(ev), b64.EncodeToString(good)) {
			t.Fatal("an assertion is on the trail")
		}
	}
}

// TestPasskeyThrottle: failed passkey sign-ins count like failed
// passwords: an address past its allowance is refused before anything is
// checked.
func TestPasskeyThrottle(t *testing.T) {
	h, _ := signInHarness(t, 2)
	h.localUser("carol", rbac.Viewer)
	auth := newSoftAuthenticator(t)
	tok := sessionToken(t, h.send(at(jsonRequest("POST", "/api/v1/auth/login", mustJSON(adminapi.LoginRequest{User: "carol", Password: testPassword}))), ""))
	registerPasskey(t, h, tok, "", auth)
	const addr = "198.51.100.7:4000"
	// The allowance is 2 failures; the third is the one past it.
	for range 3 {
		wantError(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "carol", addr), "http://elsewhere.test"), "", addr), http.StatusUnauthorized, "unauthorized")
	}
	wantError(t, h.send(at(jsonRequest("POST", "/api/v1/auth/passkey/begin", `{"user":"carol"}`)), addr), http.StatusTooManyRequests, "too_many_auth_failures")
	// From another address carol still signs in.
	decode(t, passkeyFinish(h, auth.get(passkeyBegin(t, h, "carol", "203.0.113.9:5000"), adminOrigin), "", "203.0.113.9:5000"), &adminapi.LoginResponse{})
}
