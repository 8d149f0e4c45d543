package chaos

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// transit is a HashiCorp Vault transit secrets engine, enough of it for
// keygate's hashivault:// KEK (PUT /v1/transit/encrypt/<key> and
// /decrypt/<key>, X-Vault-Token, "vault:v1:" ciphertexts), whose answers
// the suite can stall: a slow KMS.
type transit struct {
	token string
	url   string
	srv   *http.Server
	stall atomic.Int64 // nanoseconds added to every answer
	calls atomic.Int64

	mu   sync.Mutex
	keys map[string]cipher.AEAD
}

func startTransit() (*transit, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the fake Vault transit: %w", err)
	}
	t := &transit{token: "chaos-fake-vault-token-" + rand.Text(), url: "http://" + ln.Addr().String(), keys: map[string]cipher.AEAD{}}
	t.srv = &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

func (t *transit) key(name string) cipher.AEAD {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.keys[name]; ok {
		return a
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	b, _ := aes.NewCipher(k)
	a, _ := cipher.NewGCMWithRandomNonce(b)
	t.keys[name] = a
	return a
}

func transitError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

func (t *transit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.calls.Add(1)
	if d := time.Duration(t.stall.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if r.Header.Get("X-Vault-Token") != t.token {
		transitError(w, http.StatusForbidden, "permission denied")
		return
	}
	op, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1/transit/"), "/")
	if !ok || (r.Method != http.MethodPut && r.Method != http.MethodPost) {
		transitError(w, http.StatusNotFound, "no handler for route")
		return
	}
	var in struct {
		Plaintext  string `json:"plaintext"`
		Ciphertext string `json:"ciphertext"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		transitError(w, http.StatusBadRequest, "failed to parse JSON input")
		return
	}
	a := t.key(name)
	var data map[string]string
	switch op {
	case "encrypt":
		pt, err := base64.StdEncoding.DecodeString(in.Plaintext)
		if err != nil {
			transitError(w, http.StatusBadRequest, "failed to base64-decode plaintext")
			return
		}
		data = map[string]string{"ciphertext": "vault:v1:" + base64.StdEncoding.EncodeToString(a.Seal(nil, nil, pt, []byte(name)))}
	case "decrypt":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(in.Ciphertext, "vault:v1:"))
		if err != nil || !strings.HasPrefix(in.Ciphertext, "vault:v1:") {
			transitError(w, http.StatusBadRequest, "invalid ciphertext: no prefix")
			return
		}
		pt, err := a.Open(nil, nil, raw, []byte(name))
		if err != nil {
			transitError(w, http.StatusBadRequest, "cipher: message authentication failed")
			return
		}
		data = map[string]string{"plaintext": base64.StdEncoding.EncodeToString(pt)}
	default:
		transitError(w, http.StatusNotFound, "no handler for route")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"request_id": rand.Text(), "data": data})
}

func (t *transit) close() { _ = t.srv.Close() }
