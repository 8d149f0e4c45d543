package leakreport_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/leakreport"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// reporter is a fake secret-scanning partner: it publishes P-256 keys
// made at run time in GitHub's format and signs reports with them.
type reporter struct {
	keys    map[string]*ecdsa.PrivateKey
	fetches atomic.Int32
	srv     *httptest.Server
}

func newReporter(t *testing.T, ids ...string) *reporter {
	r := &reporter{keys: map[string]*ecdsa.PrivateKey{}}
	for _, id := range ids {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r.keys[id] = k
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.fetches.Add(1)
		var doc struct {
			PublicKeys []map[string]any `json:"public_keys"`
		}
		for id, k := range r.keys {
			der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
			doc.PublicKeys = append(doc.PublicKeys, map[string]any{"key_identifier": id, "is_current": true,
				"key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
		}
		json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// sign returns the headers for body signed with key id.
func (r *reporter) sign(t *testing.T, id string, body []byte) (string, string) {
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, r.keys[id], digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return id, base64.StdEncoding.EncodeToString(sig)
}

type fixture struct {
	st     *store.Store
	hasher *apikey.Hasher
	alerts []detect.Alert
	events []audit.Event
	forgot []string
	mu     sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	pepper := make([]byte, 32)
	rand.Read(pepper)
	h, err := apikey.NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: storetest.Open(t, storetest.SQLiteURL(t)), hasher: h}
}

func (f *fixture) responder(action leakreport.Action) *leakreport.Responder {
	return &leakreport.Responder{Store: f.st, Hasher: f.hasher, Admin: f.st, Action: action,
		Keys: keylife.New(keylife.Options{Store: f.st,
			Forget: func(id string) { f.mu.Lock(); f.forgot = append(f.forgot, id); f.mu.Unlock() }}),
		Alert: func(a detect.Alert) { f.mu.Lock(); f.alerts = append(f.alerts, a); f.mu.Unlock() },
		Audit: func(e audit.Event) error { f.mu.Lock(); f.events = append(f.events, e); f.mu.Unlock(); return nil },
	}
}

// key issues a keygate key stored as keygate stores it: by HMAC.
func (f *fixture) key(t *testing.T, name string) (string, string) {
	raw, err := apikey.Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := apikey.Parse(raw.Reveal())
	h := f.hasher.Hash(raw.Reveal())
	id := "key_" + strings.ToLower(rand.Text()[:12])
	if err := f.st.CreateKey(context.Background(), store.Key{ID: id, Name: name, Env: "live", Prefix: p.Prefix, Hash: h[:], CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	return raw.Reveal(), id
}

func post(t *testing.T, h http.Handler, body []byte, kid, sig string) (int, string) {
	req := httptest.NewRequest(http.MethodPost, "/leaks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if kid != "" {
		req.Header.Set(leakreport.GitHubKeyIDHeader, kid)
		req.Header.Set(leakreport.GitHubSignatureHeader, sig)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

// TestSignedReportRevokes: a report signed by the reporter's published key
// revokes the reported key, raises an alert, records an audit event, and
// labels each token; nothing in the answer, alert or event holds a token.
func TestSignedReportRevokes(t *testing.T) {
	f := newFixture(t)
	rep := newReporter(t, "k1", "k2")
	raw, id := f.key(t, "laptop-agent")
	other, otherID := f.key(t, "untouched")
	unknown, _ := apikey.Generate("live") // well-formed, never stored
	h, err := leakreport.NewPartnerHandler(leakreport.PartnerOptions{Responder: f.responder(leakreport.ActionRevoke), KeysURL: rep.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Appendf(nil, `[{"token":%q,"type":"keygate_api_key","url":"https://github.com/o/r/blob/abc/config.py","source":"content"},`+
		`{"token":%q,"type":"keygate_api_key","url":"https://github.com/o/r/blob/abc/b.py","source":"commit"},`+
		`{"token":"kg_live_notakey","type":"keygate_api_key","url":"","source":"content"}]`, raw, unknown.Reveal())
	kid, sig := rep.sign(t, "k2", body)
	code, ans := post(t, h, body, kid, sig)
	if code != 200 {
		t.Fatalf("status %d: %s", code, ans)
	}
	var fb []leakreport.Feedback
	if err := json.Unmarshal([]byte(ans), &fb); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(raw))
	if len(fb) != 3 || fb[0].Label != "true_positive" || fb[0].TokenHash != hex.EncodeToString(sum[:]) || fb[0].TokenType != "keygate_api_key" ||
		fb[1].Label != "false_positive" || fb[2].Label != "false_positive" {
		t.Fatalf("feedback: %+v", fb)
	}
	k, _ := f.st.GetKey(context.Background(), id)
	if k.RevokedAt == nil {
		t.Fatal("the reported key was not revoked")
	}
	if k, _ := f.st.GetKey(context.Background(), otherID); k.RevokedAt != nil || k.SuspendedAt != nil {
		t.Fatal("a key nobody reported was changed")
	}
	if len(f.alerts) != 1 || f.alerts[0].Rule != leakreport.RuleLeakReported || f.alerts[0].KeyID != id || f.alerts[0].Severity != detect.SeverityHigh ||
		!strings.Contains(f.alerts[0].Summary, "https://github.com/o/r/blob/abc/config.py") {
		t.Fatalf("alerts: %+v", f.alerts)
	}
	if len(f.forgot) != 1 || f.forgot[0] != id {
		t.Fatalf("the key cache was not told: %v", f.forgot)
	}
	seq, _ := f.st.LatestRevocationSeq(context.Background())
	if seq == 0 {
		t.Fatal("no revocation was logged for the other nodes")
	}
	if len(f.events) != 3 || f.events[0].Decision != "true_positive" || f.events[0].Fields["action"] != "revoked" {
		t.Fatalf("audit events: %+v", f.events)
	}
	everything := ans + fmt.Sprint(f.alerts) + fmt.Sprint(f.events)
	for _, tok := range []string{raw, unknown.Reveal(), other} {
		if strings.Contains(everything, tok) {
			t.Fatal("a token reached the answer, an alert or the audit trail")
		}
	}
	// Reported again: already revoked, still a true positive.
	code, ans = post(t, h, body, kid, sig)
	if code != 200 || !strings.Contains(ans, "true_positive") || f.events[3].Fields["action"] != "already revoked" {
		t.Fatalf("second report: %d %s %+v", code, ans, f.events[3])
	}
}

// TestBadlySignedReportChangesNothing: a report signed with another key,
// with a signature over other bytes, without a signature, or naming a key
// the reporter does not publish, is refused and changes nothing.
func TestBadlySignedReportChangesNothing(t *testing.T) {
	f := newFixture(t)
	rep := newReporter(t, "k1")
	forger := newReporter(t, "k1") // same identifier, different key
	raw, id := f.key(t, "agent")
	h, err := leakreport.NewPartnerHandler(leakreport.PartnerOptions{Responder: f.responder(leakreport.ActionRevoke), KeysURL: rep.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Appendf(nil, `[{"token":%q,"type":"keygate_api_key","url":"u","source":"content"}]`, raw)
	kid, forged := forger.sign(t, "k1", body)
	_, good := rep.sign(t, "k1", body)
	_, otherBody := rep.sign(t, "k1", append([]byte(" "), body...))
	for name, c := range map[string]struct{ kid, sig string }{
		"forged":      {kid, forged},
		"other body":  {"k1", otherBody},
		"unsigned":    {"", ""},
		"unknown key": {"k9", good},
		"not base64":  {"k1", "%%%"},
	} {
		code, ans := post(t, h, body, c.kid, c.sig)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: status %d %s; want 401", name, code, ans)
		}
	}
	k, _ := f.st.GetKey(context.Background(), id)
	if k.RevokedAt != nil || k.SuspendedAt != nil || len(f.alerts) != 0 || len(f.events) != 0 {
		t.Fatalf("a badly signed report changed something: %+v alerts %v events %v", k, f.alerts, f.events)
	}
	// The unknown key identifier made one fetch; more do not make more.
	n := rep.fetches.Load()
	post(t, h, body, "k8", good)
	post(t, h, body, "k7", good)
	if rep.fetches.Load() != n {
		t.Fatalf("unknown key identifiers made %d more fetches; want none within a minute", rep.fetches.Load()-n)
	}
	// The genuine signature still works, from the cache.
	if code, ans := post(t, h, body, "k1", good); code != 200 || !strings.Contains(ans, "true_positive") {
		t.Fatalf("genuine report: %d %s", code, ans)
	}
}

// TestSuspendAndAdminCredentials: configured to suspend, a reported key is
// suspended; a reported admin credential is revoked.
func TestSuspendAndAdminCredentials(t *testing.T) {
	f := newFixture(t)
	raw, id := f.key(t, "agent")
	r := f.responder(leakreport.ActionSuspend)
	out, err := r.Handle(context.Background(), leakreport.Report{Token: secretOf(raw), URL: "https://paste.example/x", Reporter: "admin adm_1"})
	if err != nil || !out.TruePositive || out.Action != "suspended" || out.KeyID != id {
		t.Fatalf("outcome %+v %v", out, err)
	}
	if k, _ := f.st.GetKey(context.Background(), id); k.SuspendedAt == nil || k.RevokedAt != nil {
		t.Fatalf("key: %+v", k)
	}
	adm, admID := adminToken(t, f)
	out, err = r.Handle(context.Background(), leakreport.Report{Token: secretOf(adm), Reporter: "admin adm_1"})
	if err != nil || !out.TruePositive || out.Action != "revoked" || out.KeyID != admID {
		t.Fatalf("admin outcome %+v %v", out, err)
	}
	if tok, _ := f.st.GetAdminTokenByHash(context.Background(), hashOf(f, adm)); tok.RevokedAt == nil {
		t.Fatal("the admin credential was not revoked")
	}
}

func secretOf(s string) secret.String { return secret.New(s) }

func hashOf(f *fixture, raw string) []byte {
	h := f.hasher.Hash(raw)
	return h[:]
}

func adminToken(t *testing.T, f *fixture) (string, string) {
	raw, err := apikey.GenerateAdmin()
	if err != nil {
		t.Fatal(err)
	}
	id := "adm_" + strings.ToLower(rand.Text()[:12])
	if err := f.st.CreateAdminToken(context.Background(), store.AdminToken{ID: id, Name: "ci", Role: "admin", Hash: hashOf(f, raw.Reveal()), CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	return raw.Reveal(), id
}
