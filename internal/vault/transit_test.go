package vault_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "gocloud.dev/secrets/hashivault"

	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/vault/kektest"
)

// transit is a stand-in for a remote HashiCorp Vault server's transit
// secrets engine, speaking its wire format (PUT /v1/transit/encrypt/<key>
// and /decrypt/<key>, X-Vault-Token, {"data":{...}} bodies,
// "vault:v1:" ciphertexts, {"errors":[...]} on failure), so keygate's
// hashivault:// KEK runs through gocloud's real driver. latency adds the
// round trip a KMS on another machine costs.
type transit struct {
	token   string
	latency atomic.Int64 // nanoseconds
	calls   atomic.Int64
	mu      sync.Mutex
	keys    map[string]cipher.AEAD
}

var (
	transitOnce sync.Once
	transitSrv  *transit
)

// sharedTransit starts one transit server for the test binary: gocloud's
// hashivault opener reads VAULT_SERVER_URL and VAULT_SERVER_TOKEN once.
func sharedTransit(t testing.TB) *transit {
	transitOnce.Do(func() {
		tr := &transit{token: "fake-vault-token-" + rand.Text(), keys: map[string]cipher.AEAD{}}
		srv := httptest.NewServer(tr)
		// Lives for the whole test binary, like the opener that points at it.
		os.Setenv("VAULT_SERVER_URL", srv.URL)
		os.Setenv("VAULT_SERVER_TOKEN", tr.token)
		transitSrv = tr
	})
	return transitSrv
}

func (tr *transit) key(name string) cipher.AEAD {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if a, ok := tr.keys[name]; ok {
		return a
	}
	k := make([]byte, 32)
	rand.Read(k)
	b, _ := aes.NewCipher(k)
	a, _ := cipher.NewGCMWithRandomNonce(b)
	tr.keys[name] = a
	return a
}

func (tr *transit) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

func (tr *transit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tr.calls.Add(1)
	if d := tr.latency.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if r.Header.Get("X-Vault-Token") != tr.token {
		tr.fail(w, http.StatusForbidden, "permission denied")
		return
	}
	op, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1/transit/"), "/")
	if !ok || (r.Method != http.MethodPut && r.Method != http.MethodPost) {
		tr.fail(w, http.StatusNotFound, "no handler for route")
		return
	}
	var in struct {
		Plaintext  string `json:"plaintext"`
		Ciphertext string `json:"ciphertext"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		tr.fail(w, http.StatusBadRequest, "failed to parse JSON input")
		return
	}
	a := tr.key(name)
	var data map[string]string
	switch op {
	case "encrypt":
		pt, err := base64.StdEncoding.DecodeString(in.Plaintext)
		if err != nil {
			tr.fail(w, http.StatusBadRequest, "failed to base64-decode plaintext")
			return
		}
		data = map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(a.Seal(nil, nil, pt, []byte(name)))}
	case "decrypt":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(in.Ciphertext, "vault:v1:"))
		if err != nil || !strings.HasPrefix(in.Ciphertext, "vault:v1:") {
			tr.fail(w, http.StatusBadRequest, "invalid ciphertext: no prefix")
			return
		}
		pt, err := a.Open(nil, nil, raw, []byte(name))
		if err != nil {
			tr.fail(w, http.StatusBadRequest, "cipher: message authentication failed")
			return
		}
		data = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(pt)}
	default:
		tr.fail(w, http.StatusNotFound, "no handler for route")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"request_id": rand.Text(), "data": data})
}

// TestHashiVaultKEKConformance runs the KEK suite over hashivault://, the
// same gocloud code path the AWS, GCP and Azure KMS URLs take.
func TestHashiVaultKEKConformance(t *testing.T) {
	sharedTransit(t)
	kektest.Run(t,
		func(t *testing.T) vault.KEK { return mustOpen(t, "hashivault://keygate-kek", vault.KEKOptions{}).KEK },
		func(t *testing.T) vault.KEK { return mustOpen(t, "hashivault://keygate-kek", vault.KEKOptions{}).KEK },
		func(t *testing.T) vault.KEK { return mustOpen(t, "hashivault://other-kek", vault.KEKOptions{}).KEK })
}
