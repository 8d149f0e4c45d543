package gateway_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gatewaystore"
	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/workload"
	"github.com/keygate/keygate/internal/workload/workloadtest"
)

const (
	typeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	typeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	grantExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	wlAudience    = "https://keygate.example"
)

// eventLog is an audit recorder that keeps what it is given.
type eventLog struct {
	mu     sync.Mutex
	events []audit.Event
}

func (l *eventLog) Record(ev audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	return nil
}

func (l *eventLog) Healthy() bool { return true }

func (l *eventLog) of(typ string) []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []audit.Event
	for _, ev := range l.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// trustAdapter is internal/server's adapter of a workload.Verifier, as
// keygate wires it.
type trustAdapter struct{ v *workload.Verifier }

func (a trustAdapter) VerifyWorkload(ctx context.Context, raw string, now time.Time) (gateway.WorkloadIdentity, error) {
	id, err := a.v.Verify(ctx, raw, now)
	if rf := (*workload.Refusal)(nil); errors.As(err, &rf) {
		return gateway.WorkloadIdentity{}, &gateway.WorkloadRefusal{Code: rf.Code, Reason: rf.Reason, Issuer: rf.Issuer, Subject: rf.Subject}
	}
	if err != nil {
		return gateway.WorkloadIdentity{}, err
	}
	return gateway.WorkloadIdentity{Issuer: id.Issuer, Subject: id.Subject, Policy: id.Policy, KeyID: id.KeyID, Scope: id.Scope, Expiry: id.Expiry}, nil
}

// workloadEnv is a gateway trusting a GitHub-Actions-like and a
// Kubernetes-like OpenID provider by policy, serving secrets from its
// vault, on a clock the test moves.
type workloadEnv struct {
	*gw
	actions, cluster *workloadtest.Provider
	st               *store.Store
	vault            *vault.Vault
	keys             *keys
	audit            *eventLog
	now              atomic.Int64
}

func (e *workloadEnv) clock() time.Time { return time.Unix(0, e.now.Load()) }

func newWorkloadEnv(t *testing.T, policies func(actions, cluster string) []workload.Policy, grants map[string][]string) *workloadEnv {
	t.Helper()
	k := newKeys(t)
	e := &workloadEnv{actions: workloadtest.Start(t, wlAudience), cluster: workloadtest.Start(t, "keygate"), st: k.st, keys: k, audit: &eventLog{}}
	e.now.Store(time.Now().UnixNano())
	kek, err := vault.NewLocalKEK(randomBytes(t, vault.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	e.vault = vault.New(kek, k.st)
	ring, err := token.NewKeyring(k.st, e.vault, token.KeyringOptions{Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Rotate(t.Context(), e.clock()); err != nil {
		t.Fatal(err)
	}
	auth, err := token.NewAuthority(ring, token.Options{Issuer: "keygate", Audience: "keygate", Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	fams, err := token.NewFamilies(k.st, k.hasher, token.FamilyOptions{Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	var trust gateway.WorkloadTrust
	if ps := policies(e.actions.Issuer(), e.cluster.Issuer()); ps != nil {
		v, err := workload.New(workload.Options{Policies: ps, Replay: workload.NewMemory(), ValidateScope: gateway.ValidateScope})
		if err != nil {
			t.Fatal(err)
		}
		trust = trustAdapter{v}
	}
	src := keysource.New(k.hasher, k.st, keysource.WithSecretGrants(func(id string) []string { return grants[id] }))
	e.gw = newGatewayWith(t, src, nil, func(o *gateway.Options) {
		o.Now = e.clock
		o.Audit = e.audit
		o.Secrets = gatewaystore.NewSecrets(k.st, e.vault, k.hasher)
		o.Tokens = &gateway.TokenOptions{Authority: auth, Families: fams, Keyring: ring, Revocations: gatewaystore.New(k.st),
			Denied: &gateway.Denylist{}, Workloads: trust}
	})
	return e
}

// putSecret stores a vault secret as the admin API does.
func (e *workloadEnv) putSecret(t *testing.T, name, value string) {
	t.Helper()
	m := store.SecretMeta{Name: name, RecordID: "secret/sec_" + strings.ReplaceAll(name, "/", "_"), CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	if err := e.st.CreateSecretMeta(t.Context(), m); err != nil && !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	if _, err := e.vault.Put(t.Context(), m.RecordID, secret.New(value)); err != nil {
		t.Fatal(err)
	}
}

type tokenAnswer struct {
	status          int
	Error           string `json:"error"`
	Description     string `json:"error_description"`
	AccessToken     string `json:"access_token"`
	RefreshToken    string `json:"refresh_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	Scope           string `json:"scope"`
	ExpiresIn       int    `json:"expires_in"`
	cacheControl    string
}

func (e *workloadEnv) post(t *testing.T, form url.Values) tokenAnswer {
	t.Helper()
	resp, err := http.PostForm(e.url+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := tokenAnswer{status: resp.StatusCode, cacheControl: resp.Header.Get("Cache-Control")}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("decode the answer (%d): %v", resp.StatusCode, err)
	}
	return a
}

func (e *workloadEnv) exchange(t *testing.T, idToken, typ string) tokenAnswer {
	t.Helper()
	return e.post(t, url.Values{"grant_type": {grantExchange}, "subject_token": {idToken}, "subject_token_type": {typ}})
}

// readSecret reads a secret at /secrets with a keygate credential.
func (e *workloadEnv) readSecret(t *testing.T, cred, name string) answer {
	t.Helper()
	return send(t, "GET", e.url+"/secrets?name="+url.QueryEscape(name), "", "Authorization", "Bearer "+cred)
}

func ciPolicies(actions, cluster string) []workload.Policy {
	return []workload.Policy{
		{Name: "deploy", Issuer: actions, Audience: wlAudience, Subject: "repo:acme/app:ref:refs/heads/main",
			Claims: map[string][]string{"workflow": {"deploy"}}, KeyID: "key_ci", Scope: "model:gpt-4o-mini secret:ci/${repository} rpm:30"},
		{Name: "payments-api", Issuer: cluster, Audience: "keygate",
			Claims: map[string][]string{"kubernetes.io/namespace": {"payments"}}, KeyID: "key_payments", Scope: "secret:payments/db"},
		{Name: "revoked", Issuer: actions, Audience: wlAudience, Subject: "repo:acme/old:*", KeyID: "key_gone"},
		{Name: "too-wide", Issuer: actions, Audience: wlAudience, Subject: "repo:acme/wide:*", KeyID: "key_ci", Scope: "model:o3"},
	}
}

// TestWorkloadTokenExchange: a GitHub Actions job and a Kubernetes pod
// exchange the identity tokens their platforms signed for keygate access
// tokens that stand for their policies' keys, with the policies' scopes,
// read exactly the secrets those scopes name, refresh until the identity
// token expires, and are on the audit trail with their subjects.
func TestWorkloadTokenExchange(t *testing.T) {
	e := newWorkloadEnv(t, ciPolicies, map[string][]string{"key_ci": {"ci/*/*", "ci/other"}, "key_payments": {"payments/*"}})
	e.keys.issue("ci", func(k *store.Key) { k.AllowModels = []string{"gpt-4o*"} })
	e.keys.issue("payments", nil)
	e.putSecret(t, "ci/acme/app", "deploy-secret-for-test")
	e.putSecret(t, "ci/other", "not-for-this-job")
	e.putSecret(t, "payments/db", "db-password-for-test")

	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	idTok := e.actions.Mint(t, sub, claims)
	a := e.exchange(t, idTok, typeIDToken)
	if a.status != http.StatusOK || a.AccessToken == "" || a.RefreshToken == "" || a.TokenType != "Bearer" ||
		a.IssuedTokenType != "urn:ietf:params:oauth:token-type:access_token" || a.cacheControl != "no-store" {
		t.Fatalf("exchange: %+v", a)
	}
	if a.Scope != "rpm:30 model:gpt-4o-mini secret:ci/acme/app" {
		t.Fatalf("scope %q", a.Scope)
	}
	// The token reads the secret its scope names, and no other, not even
	// one its key's grant covers.
	if v := secretValue(t, e.readSecret(t, a.AccessToken, "ci/acme/app")); v.Name != "ci/acme/app" || v.Version != 1 || v.Value != "deploy-secret-for-test" {
		t.Fatalf("reading its secret: %+v", v)
	}
	if _, code := openAIError(t, e.readSecret(t, a.AccessToken, "ci/other"), http.StatusForbidden); code != "secret_not_allowed" {
		t.Fatalf("another secret: %q", code)
	}

	// A pod's service-account token, presented as a plain JWT.
	sub, claims = workloadtest.KubernetesClaims("payments", "api")
	p := e.exchange(t, e.cluster.Mint(t, sub, claims), typeJWT)
	if p.status != http.StatusOK || p.Scope != "secret:payments/db" {
		t.Fatalf("pod exchange: %+v", p)
	}
	if v := secretValue(t, e.readSecret(t, p.AccessToken, "payments/db")); v.Value != "db-password-for-test" {
		t.Fatalf("pod reading its secret: %+v", v)
	}

	// Refresh works while the identity token lives, and stops with it.
	r := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}})
	if r.status != http.StatusOK || r.Scope != a.Scope {
		t.Fatalf("refresh: %+v", r)
	}
	e.now.Add(int64(11 * time.Minute)) // mockoidc's ID tokens live 10 minutes
	if late := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.RefreshToken}}); late.status != http.StatusBadRequest || late.Error != "invalid_grant" {
		t.Fatalf("refresh after the identity token expired: %+v", late)
	}

	// Each exchange is on the audit trail with the workload's subject and
	// the policy that admitted it.
	evs := e.audit.of("token.workload")
	if len(evs) != 2 || evs[0].Decision != "allow" || evs[0].KeyID != "key_ci" || evs[0].Fields["subject"] != "repo:acme/app:ref:refs/heads/main" ||
		evs[0].Fields["policy"] != "deploy" || evs[0].Fields["issuer"] != e.actions.Issuer() || evs[0].Fields["family"] == "" ||
		evs[1].Fields["subject"] != "system:serviceaccount:payments:api" || evs[1].KeyID != "key_payments" {
		t.Fatalf("audit events %+v", evs)
	}
	for _, ev := range e.audit.of("secret.read") {
		if strings.Contains(ev.Resource, "ci/") || strings.Contains(ev.Resource, "payments/") || !strings.HasPrefix(ev.Resource, "secret ref:") {
			t.Fatalf("a secret read names the secret: %+v", ev)
		}
	}
	if strings.Contains(e.log.String(), "ci/acme/app") || strings.Contains(e.log.String(), "deploy-secret-for-test") {
		t.Fatalf("the log holds a secret's name or value:\n%s", e.log.String())
	}
}

// TestWorkloadTokenExchangeRefusals: a bad identity token is refused in
// RFC 6749's error shape (invalid_request, RFC 8693 §2.2.2), on the audit
// trail with the subject it claims, and starts no token family.
func TestWorkloadTokenExchangeRefusals(t *testing.T) {
	// elsewhere is a trusted issuer whose tokens are made for another
	// audience than the policy trusting it names.
	elsewhere := workloadtest.Start(t, "https://not-keygate.example")
	e := newWorkloadEnv(t, func(actions, cluster string) []workload.Policy {
		return append(ciPolicies(actions, cluster), workload.Policy{Name: "elsewhere", Issuer: elsewhere.Issuer(), Audience: wlAudience, Subject: "repo:*", KeyID: "key_ci"})
	}, map[string][]string{"key_ci": {"ci/*/*"}})
	e.keys.issue("ci", func(k *store.Key) { k.AllowModels = []string{"gpt-4o*"} })
	e.keys.issue("gone", func(k *store.Key) { at := time.Now().Add(-time.Hour); k.RevokedAt = &at })
	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	good := e.actions.Mint(t, sub, claims)

	stranger := workloadtest.Start(t, wlAudience)
	prSub, prClaims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "pull_request")
	oldSub, oldClaims := workloadtest.GitHubClaims("acme/old", "refs/heads/main", "deploy", "push")
	wideSub, wideClaims := workloadtest.GitHubClaims("acme/wide", "refs/heads/main", "deploy", "push")
	header, payload, _ := strings.Cut(good, ".")
	payload, _, _ = strings.Cut(payload, ".")
	// A token the issuer's published keys did not sign: its own claims,
	// signed with a key made here, under the issuer's key id.
	stray, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := e.actions.Keypair.KeyID()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: stray}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := base64.RawURLEncoding.DecodeString(payload)
	jws, err := signer.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		form        url.Values
		later       time.Duration
		status      int
		code, audit string
	}{
		{"from an untrusted issuer", form(stranger.Mint(t, sub, claims)), 0, 400, "invalid_request", "unknown_issuer"},
		{"a pull request", form(e.actions.Mint(t, prSub, prClaims)), 0, 400, "invalid_request", "no_policy"},
		{"expired", form(e.actions.Mint(t, sub, claims)), time.Hour, 400, "invalid_request", "expired"},
		{"for another audience", form(elsewhere.Mint(t, sub, claims)), 0, 400, "invalid_request", "wrong_audience"},
		{"alg none", form("eyJhbGciOiJub25lIn0." + payload + "."), 0, 400, "invalid_request", "unsupported_alg"},
		{"signed with a key not in the issuer's set", form(forged), 0, 400, "invalid_request", "bad_signature"},
		{"tampered", form(header + "." + payload + ".AAAA"), 0, 400, "invalid_request", "bad_signature"},
		{"a scope asked for", withField(form(e.actions.Mint(t, sub, claims)), "scope", "model:*"), 0, 400, "invalid_scope", "scope_requested"},
		{"a policy whose key is revoked", form(e.actions.Mint(t, oldSub, oldClaims)), 0, 400, "invalid_grant", "key_unusable"},
		{"a policy wider than its key", form(e.actions.Mint(t, wideSub, wideClaims)), 0, 400, "invalid_scope", "scope_beyond_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.audit.of("token.workload"))
			e.now.Store(time.Now().Add(tc.later).UnixNano())
			a := e.post(t, tc.form)
			if a.status != tc.status || a.Error != tc.code || a.Description == "" || a.AccessToken != "" || a.cacheControl != "no-store" {
				t.Fatalf("answer %+v, want %d %s", a, tc.status, tc.code)
			}
			if strings.Contains(a.Description, tc.form.Get("subject_token")) {
				t.Fatal("the answer quotes the token")
			}
			evs := e.audit.of("token.workload")
			if len(evs) != before+1 {
				t.Fatalf("%d audit events, want one more than %d", len(evs), before)
			}
			ev := evs[len(evs)-1]
			if ev.Decision != "deny" || !slices.Equal(ev.Reasons, []string{tc.audit}) {
				t.Fatalf("audit event %+v, want a denial for %s", ev, tc.audit)
			}
			if tc.audit != "unsupported_alg" && tc.audit != "scope_requested" && ev.Fields["subject"] == "" {
				t.Fatalf("the audit event lacks the claimed subject: %+v", ev)
			}
		})
	}
	// A replayed token: the first exchange passes, the second is refused.
	e.now.Store(time.Now().UnixNano())
	if a := e.exchange(t, good, typeIDToken); a.status != http.StatusOK {
		t.Fatalf("first exchange: %+v", a)
	}
	if a := e.exchange(t, good, typeIDToken); a.status != 400 || a.Error != "invalid_request" || !strings.Contains(a.Description, "exchanged before") {
		t.Fatalf("replay: %+v", a)
	}
	// Only the one exchange that passed started a family.
	for id, want := range map[string]int{"key_ci": 1, "key_gone": 0} {
		if n, err := e.st.RevokeKeyFamilies(t.Context(), id, time.Now(), "counted by the test"); err != nil || n != want {
			t.Fatalf("%s has %d families (%v), want %d", id, n, err, want)
		}
	}
	// A keygate key is still exchanged as before.
	raw := e.keys.issue("plain", nil)
	if a := e.post(t, url.Values{"grant_type": {grantExchange}, "subject_token": {raw}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}}); a.status != http.StatusOK {
		t.Fatalf("a key's exchange: %+v", a)
	}
}

// TestWorkloadTokenExchangeWithoutPolicies: a keygate trusting no issuer
// says so, in the error shape.
func TestWorkloadTokenExchangeWithoutPolicies(t *testing.T) {
	e := newWorkloadEnv(t, func(string, string) []workload.Policy { return nil }, nil)
	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	if a := e.exchange(t, e.actions.Mint(t, sub, claims), typeIDToken); a.status != 400 || a.Error != "invalid_request" || !strings.Contains(a.Description, "trusts no workload identity issuer") {
		t.Fatalf("answer %+v", a)
	}
}

func form(idToken string) url.Values {
	return url.Values{"grant_type": {grantExchange}, "subject_token": {idToken}, "subject_token_type": {typeIDToken}}
}

func withField(v url.Values, k, val string) url.Values {
	v.Set(k, val)
	return v
}

// secretValue decodes a successful answer of /secrets.
func secretValue(t *testing.T, a answer) gateway.SecretValue {
	t.Helper()
	var v gateway.SecretValue
	if a.status != http.StatusOK || json.Unmarshal(a.body, &v) != nil || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("want a secret, got %d %s", a.status, a.body)
	}
	return v
}

// TestRefreshWithoutScope: a key exchanged without a scope (the common
// case: the token may do what its key may) refreshes. Its family's empty
// scope reads back from the store as no bytes, which every refresh used
// to refuse as "the key's allowances have changed"; the chaos suite found
// it (docs/chaos.md).
func TestRefreshWithoutScope(t *testing.T) {
	e := newWorkloadEnv(t, func(string, string) []workload.Policy { return nil }, nil)
	key := e.keys.issue("agent", nil)
	a := e.post(t, url.Values{"grant_type": {grantExchange}, "subject_token": {key},
		"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}})
	if a.status != http.StatusOK || a.RefreshToken == "" {
		t.Fatalf("exchange: %+v", a)
	}
	r := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}})
	if r.status != http.StatusOK || r.AccessToken == "" || r.RefreshToken == "" || r.RefreshToken == a.RefreshToken {
		t.Fatalf("refresh of an unscoped token: %+v", r)
	}
	if again := e.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.RefreshToken}}); again.status != http.StatusOK {
		t.Fatalf("second refresh: %+v", again)
	}
}
