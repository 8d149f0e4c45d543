package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gatewaystore"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/vault"
)

// stepUpEnv is one keygate database shared by the gateway nodes of a test:
// the keys' pepper and the vault's master key are the same on every node.
type stepUpEnv struct {
	url    string
	hasher *apikey.Hasher
	kek    vault.KEK
	now    atomic.Int64 // the nodes' clock, Unix nanoseconds
}

func newStepUpEnv(t *testing.T, url string) *stepUpEnv {
	t.Helper()
	h, err := apikey.NewHasher(randomBytes(t, apikey.MinPepperSize))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := vault.NewLocalKEK(randomBytes(t, vault.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	e := &stepUpEnv{url: url, hasher: h, kek: kek}
	e.now.Store(gatewayNow.UnixNano())
	return e
}

func (e *stepUpEnv) clock() time.Time { return time.Unix(0, e.now.Load()).UTC() }

// stepUpNode is one gateway process over the shared database, verifying
// one-time passwords with internal/otp as keygate does.
type stepUpNode struct {
	*gw
	st    *store.Store
	vault *vault.Vault
	keys  *keys
	mu    sync.Mutex
	locks []otp.Lockout
}

func (e *stepUpEnv) node(t *testing.T) *stepUpNode {
	t.Helper()
	st := storetest.Open(t, e.url)
	n := &stepUpNode{st: st, vault: vault.New(e.kek, st), keys: &keys{t: t, st: st, hasher: e.hasher}}
	ring, err := token.NewKeyring(st, n.vault, token.KeyringOptions{Now: e.clock})
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
	fams, err := token.NewFamilies(st, e.hasher, token.FamilyOptions{Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := otp.New(st, otp.Options{OnLockout: func(l otp.Lockout) {
		n.mu.Lock()
		n.locks = append(n.locks, l)
		n.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ctx context.Context, keyID, code, client string, now time.Time) error {
		return ver.Verify(ctx, otp.Attempt{Subject: "key/" + keyID, Client: client, Code: code, Now: now,
			Secret: func(ctx context.Context) (secret.String, error) {
				sec, _, err := n.vault.Get(ctx, "totp/"+keyID)
				if err != nil {
					return secret.String{}, otp.ErrNotEnrolled
				}
				return sec, nil
			}})
	}
	n.gw = newGatewayWith(t, n.keys.verifier(), nil, func(o *gateway.Options) {
		o.Now = e.clock
		o.Tokens = &gateway.TokenOptions{Authority: auth, Families: fams, Keyring: ring, Revocations: gatewaystore.New(st),
			Denied: &gateway.Denylist{}, VerifyTOTP: verify}
	})
	return n
}

// enroll gives the key a one-time-password secret in the vault and returns it.
func (n *stepUpNode) enroll(t *testing.T, keyID string) string {
	t.Helper()
	k, err := totp.Generate(totp.GenerateOpts{Issuer: "keygate-test", AccountName: keyID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.vault.Put(t.Context(), "totp/"+keyID, secret.New(k.Secret())); err != nil {
		t.Fatal(err)
	}
	return k.Secret()
}

type oauthAnswer struct {
	status      int
	retryAfter  string
	Error       string `json:"error"`
	Description string `json:"error_description"`
	AccessToken string `json:"access_token"`
}

// exchange trades key and a one-time password for a token at the node.
func (n *stepUpNode) exchange(t *testing.T, key, code string) oauthAnswer {
	t.Helper()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {key},
		"subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "totp": {code}}
	resp, err := http.PostForm(n.url+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := oauthAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("decode the answer (%d): %v", resp.StatusCode, err)
	}
	return a
}

func codeAt(t *testing.T, sec string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(sec, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongCode is a code none of whose neighbours in time is sec's.
func wrongCode(t *testing.T, sec string, at time.Time, i int) string {
	t.Helper()
	for ; ; i++ {
		c := strconv.Itoa(100000 + (i*7919)%900000)
		ok := true
		for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
			ok = ok && c != codeAt(t, sec, at.Add(d))
		}
		if ok {
			return c
		}
	}
}

// TestTOTPBruteForceLockedOut: of 1,000 wrong one-time passwords for one key,
// the first four are answered 400 and every later one 429 with Retry-After;
// the right code is refused during the lockout and accepted after it.
func TestTOTPBruteForceLockedOut(t *testing.T) {
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{{"SQLite", storetest.SQLiteURL}, {"Postgres", storetest.PostgresURL}} {
		t.Run(db.name, func(t *testing.T) {
			env := newStepUpEnv(t, db.url(t))
			n := env.node(t)
			key := n.keys.issue("victim", nil)
			sec := n.enroll(t, "key_victim")
			counts := map[int]int{}
			for i := 0; i < 1000; i++ {
				a := n.exchange(t, key, wrongCode(t, sec, env.clock(), i))
				counts[a.status]++
				if a.Error != "invalid_grant" {
					t.Fatalf("wrong code %d: error %q, want invalid_grant", i+1, a.Error)
				}
				switch {
				case i < 4 && a.status != http.StatusBadRequest:
					t.Fatalf("wrong code %d: %d %s, want 400", i+1, a.status, a.Description)
				case i >= 4 && (a.status != http.StatusTooManyRequests || a.retryAfter == ""):
					t.Fatalf("wrong code %d: %d (Retry-After %q) %s, want 429 with Retry-After", i+1, a.status, a.retryAfter, a.Description)
				}
			}
			t.Logf("1,000 wrong codes answered %v", counts)
			a := n.exchange(t, key, codeAt(t, sec, env.clock()))
			if a.status != http.StatusTooManyRequests || a.retryAfter != "900" || a.AccessToken != "" ||
				!strings.Contains(a.Description, "even a right one") {
				t.Fatalf("the right code during the lockout: %d (Retry-After %q) %+v", a.status, a.retryAfter, a)
			}
			if len(n.locks) != 1 || n.locks[0].Subject != "key/key_victim" || n.locks[0].Failures != 5 {
				t.Fatalf("lockouts %+v, want one of key/key_victim", n.locks)
			}
			env.now.Add(int64(15 * time.Minute))
			if a := n.exchange(t, key, codeAt(t, sec, env.clock())); a.status != http.StatusOK || a.AccessToken == "" {
				t.Fatalf("the right code after the lockout: %d %+v", a.status, a)
			}
		})
	}
}

// TestTOTPUsedOnceAcrossNodes: two gateway nodes over one PostgreSQL
// database: a code used at one is refused at the other, and wrong codes
// counted at either lock the key out at both.
func TestTOTPUsedOnceAcrossNodes(t *testing.T) {
	env := newStepUpEnv(t, storetest.PostgresURL(t))
	a, b := env.node(t), env.node(t)
	key := a.keys.issue("roaming", nil)
	sec := a.enroll(t, "key_roaming")
	code := codeAt(t, sec, env.clock())
	if ans := a.exchange(t, key, code); ans.status != http.StatusOK || ans.AccessToken == "" {
		t.Fatalf("node A with a fresh code: %d %+v", ans.status, ans)
	}
	if ans := b.exchange(t, key, code); ans.status != http.StatusBadRequest || ans.Error != "invalid_grant" {
		t.Fatalf("node B with the code used at node A: %d %+v, want 400 invalid_grant", ans.status, ans)
	}
	env.now.Add(int64(time.Minute))
	for i := 0; i < 5; i++ {
		ans := []*stepUpNode{a, b}[i%2].exchange(t, key, wrongCode(t, sec, env.clock(), i))
		if want := map[bool]int{true: 400, false: 429}[i < 4]; ans.status != want {
			t.Fatalf("wrong code %d, alternating nodes: %d, want %d", i+1, ans.status, want)
		}
	}
	for _, n := range []*stepUpNode{a, b} {
		if ans := n.exchange(t, key, codeAt(t, sec, env.clock())); ans.status != http.StatusTooManyRequests {
			t.Fatalf("the right code during the lockout: %d %+v, want 429 on every node", ans.status, ans)
		}
	}
}
