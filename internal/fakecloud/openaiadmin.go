package fakecloud

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// OpenAIAdmin is a fake OpenAI organization admin API for project service
// accounts (POST and DELETE /v1/organization/projects/{project}/service_accounts),
// and a chat completions endpoint that accepts only the API keys of live
// service accounts, as OpenAI does. Hold, when set, makes chat answers wait
// until it is closed, to keep a request in flight.
type OpenAIAdmin struct {
	AdminKey string
	Project  string

	mu       sync.Mutex
	accounts map[string]string // service account id -> its API key
	deleted  []string
	hold     chan struct{}
	held     int
}

// HoldNext makes the next chat requests stream their headers and then wait
// until the returned channel is closed, to keep them in flight.
func (o *OpenAIAdmin) HoldNext() chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hold = make(chan struct{})
	return o.hold
}

// StopHolding lets later chat requests answer at once.
func (o *OpenAIAdmin) StopHolding() { o.mu.Lock(); o.hold = nil; o.mu.Unlock() }

// Held reports how many chat requests were held.
func (o *OpenAIAdmin) Held() int { o.mu.Lock(); defer o.mu.Unlock(); return o.held }

// Live reports how many service accounts exist.
func (o *OpenAIAdmin) Live() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.accounts) }

// Keys returns the API keys of the live service accounts, for a test that
// plays a key leaking.
func (o *OpenAIAdmin) Keys() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var keys []string
	for _, k := range o.accounts {
		keys = append(keys, k)
	}
	return keys
}

// Deleted returns the ids of deleted service accounts.
func (o *OpenAIAdmin) Deleted() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.deleted...)
}

func openaiError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

// ServeHTTP serves the admin and chat routes.
func (o *OpenAIAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	prefix := "/v1/organization/projects/" + o.Project + "/service_accounts"
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/organization/"):
		if bearer != o.AdminKey {
			openaiError(w, 401, "invalid_request_error", "Incorrect API key provided; an admin key is required")
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == prefix:
			var in struct{ Name string }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
				openaiError(w, 400, "invalid_request_error", "name is required")
				return
			}
			if o.accounts == nil {
				o.accounts = map[string]string{}
			}
			id, key := "svc_acct_"+randomID()[:16], "fake-openai-sa-key-"+randomID()
			o.accounts[id] = key
			now := time.Now().Unix()
			writeJSON(w, 200, map[string]any{"object": "organization.project.service_account", "id": id, "name": in.Name, "role": "member", "created_at": now,
				"api_key": map[string]any{"object": "organization.project.service_account.api_key", "value": key, "name": "Secret Key", "created_at": now, "id": "key_" + randomID()[:16]}})
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, prefix+"/"):
			id := strings.TrimPrefix(r.URL.Path, prefix+"/")
			if _, ok := o.accounts[id]; !ok {
				openaiError(w, 404, "invalid_request_error", "No such service account: "+id)
				return
			}
			delete(o.accounts, id)
			o.deleted = append(o.deleted, id)
			writeJSON(w, 200, map[string]any{"object": "organization.project.service_account.deleted", "id": id, "deleted": true})
		default:
			openaiError(w, 404, "invalid_request_error", "Invalid URL")
		}
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		if !o.valid(bearer) {
			openaiError(w, 401, "invalid_request_error", "Incorrect API key provided")
			return
		}
		o.mu.Lock()
		hold := o.hold
		if hold != nil {
			o.held++
		}
		o.mu.Unlock()
		if hold != nil {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-hold
			w.Write([]byte(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"` + ReplyText + `"},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"))
			return
		}
		writeJSON(w, 200, map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": "gpt-4o",
			"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": ReplyText}, "finish_reason": "stop"}},
			"usage":   map[string]int{"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}})
	default:
		openaiError(w, 404, "invalid_request_error", "Invalid URL")
	}
}

func (o *OpenAIAdmin) valid(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range o.accounts {
		if k == key && key != "" {
			return true
		}
	}
	return false
}
