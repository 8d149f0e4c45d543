package fakecloud

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// OpenRouter is a fake OpenRouter: its key management API, driven with a
// provisioning key (POST /api/v1/keys, GET /api/v1/keys, DELETE
// /api/v1/keys/{hash}), and chat completions that accept only the keys it
// made and has not deleted or disabled, as OpenRouter does; a
// provisioning key is refused there. Keys are named by their hash.
type OpenRouter struct {
	ProvisioningKey string

	mu      sync.Mutex
	keys    map[string]*openRouterKey // by hash
	deleted []string
	chats   int
}

type openRouterKey struct {
	value    string
	name     string
	disabled bool
	created  time.Time
}

func (k *openRouterKey) view(hash string) map[string]any {
	return map[string]any{"hash": hash, "name": k.name, "label": k.value[:len("sk-or-v1-")+3] + "..." + k.value[len(k.value)-3:],
		"disabled": k.disabled, "limit": nil, "limit_remaining": nil, "limit_reset": nil, "include_byok_in_limit": false,
		"usage": 0, "created_at": k.created.UTC().Format(time.RFC3339), "updated_at": nil}
}

// Live reports how many keys exist.
func (o *OpenRouter) Live() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.keys) }

// Deleted returns the hashes of deleted keys.
func (o *OpenRouter) Deleted() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.deleted...)
}

// Chats reports how many chat completions were answered.
func (o *OpenRouter) Chats() int { o.mu.Lock(); defer o.mu.Unlock(); return o.chats }

func openRouterError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

// ServeHTTP serves the key management and chat routes.
func (o *OpenRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case r.URL.Path == "/api/v1/keys" || strings.HasPrefix(r.URL.Path, "/api/v1/keys/"):
		if bearer != o.ProvisioningKey || bearer == "" {
			openRouterError(w, 401, "Only provisioning keys can manage API keys")
			return
		}
		o.manage(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/chat/completions":
		k := o.byValue(bearer)
		switch {
		case bearer == o.ProvisioningKey && bearer != "":
			openRouterError(w, 401, "Provisioning keys cannot be used for completions")
			return
		case k == nil:
			openRouterError(w, 401, "No auth credentials found")
			return
		case k.disabled:
			openRouterError(w, 403, "This API key is disabled")
			return
		}
		var in struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Model == "" {
			openRouterError(w, 400, "model is required")
			return
		}
		o.chats++
		if in.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte(`data: {"id":"gen-fake","object":"chat.completion.chunk","created":1,"model":"` + in.Model + `","choices":[{"index":0,"delta":{"role":"assistant","content":"` + ReplyText + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10}}` + "\n\ndata: [DONE]\n\n"))
			return
		}
		writeJSON(w, 200, map[string]any{"id": "gen-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": in.Model, "provider": "Fake",
			"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": ReplyText}, "finish_reason": "stop"}},
			"usage":   map[string]int{"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}})
	default:
		openRouterError(w, 404, "Not Found")
	}
}

// manage serves /api/v1/keys; o.mu is held.
func (o *OpenRouter) manage(w http.ResponseWriter, r *http.Request) {
	hash, one := strings.CutPrefix(r.URL.Path, "/api/v1/keys/")
	switch {
	case r.Method == http.MethodPost && !one:
		var in struct {
			Name  string   `json:"name"`
			Limit *float64 `json:"limit"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
			openRouterError(w, 400, "name is required")
			return
		}
		value := "sk-or-v1-" + randomID() + randomID()
		sum := sha256.Sum256([]byte(value))
		h := hex.EncodeToString(sum[:])
		if o.keys == nil {
			o.keys = map[string]*openRouterKey{}
		}
		k := &openRouterKey{value: value, name: in.Name, created: time.Now()}
		o.keys[h] = k
		writeJSON(w, 201, map[string]any{"data": k.view(h), "key": value})
	case r.Method == http.MethodGet && !one:
		hashes := make([]string, 0, len(o.keys))
		for h := range o.keys {
			hashes = append(hashes, h)
		}
		sort.Strings(hashes)
		data := make([]map[string]any, 0, len(hashes))
		for _, h := range hashes {
			data = append(data, o.keys[h].view(h))
		}
		writeJSON(w, 200, map[string]any{"data": data})
	case r.Method == http.MethodDelete && one && hash != "":
		if _, ok := o.keys[hash]; !ok {
			openRouterError(w, 404, "Key not found")
			return
		}
		delete(o.keys, hash)
		o.deleted = append(o.deleted, hash)
		writeJSON(w, 200, map[string]any{"deleted": true})
	default:
		openRouterError(w, 405, "Method not allowed")
	}
}

// byValue finds a key by its value; o.mu is held.
func (o *OpenRouter) byValue(v string) *openRouterKey {
	for _, k := range o.keys {
		if k.value == v && v != "" {
			return k
		}
	}
	return nil
}
