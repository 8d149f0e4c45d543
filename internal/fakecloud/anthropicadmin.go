package fakecloud

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AnthropicAdmin is a fake Anthropic: the Admin API's API keys routes
// (GET /v1/organizations/api_keys, GET and POST
// /v1/organizations/api_keys/{id}), which list keys with only a hint of
// their value and update their name and status, and create none, as
// Anthropic's do; and POST /v1/messages, which accepts only active keys.
// Keys are made with AddKey, as a person makes them in the Console.
type AnthropicAdmin struct {
	AdminKey string

	mu   sync.Mutex
	keys map[string]*anthropicKey // by id
	seq  int
}

type anthropicKey struct {
	value, name, status string
	created             time.Time
}

func (k *anthropicKey) view(id string) map[string]any {
	return map[string]any{"id": id, "type": "api_key", "name": k.name, "status": k.status, "workspace_id": nil,
		"partial_key_hint": k.value[:len("sk-ant-api03-")+3] + "..." + k.value[len(k.value)-4:],
		"created_at":       k.created.UTC().Format(time.RFC3339Nano), "created_by": map[string]string{"id": "user_fake", "type": "user"}}
}

// AddKey makes an active API key called name and returns its value and id.
func (a *AnthropicAdmin) AddKey(name string) (value, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys == nil {
		a.keys = map[string]*anthropicKey{}
	}
	a.seq++
	id = "apikey_fake" + strconv.Itoa(a.seq) + randomID()[:8]
	value = "sk-ant-api03-" + randomID() + randomID() + "AA"
	a.keys[id] = &anthropicKey{value: value, name: name, status: "active", created: time.Now()}
	return value, id
}

// Status returns the status of key id ("" when there is none).
func (a *AnthropicAdmin) Status(id string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k := a.keys[id]; k != nil {
		return k.status
	}
	return ""
}

func anthropicAPIError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

// ServeHTTP serves the Admin API's key routes and Messages.
func (a *AnthropicAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Header.Get("Anthropic-Version") == "" {
		anthropicAPIError(w, 400, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	key := r.Header.Get("X-Api-Key")
	if strings.HasPrefix(r.URL.Path, "/v1/organizations/") {
		if key != a.AdminKey || key == "" {
			anthropicAPIError(w, 401, "authentication_error", "invalid x-api-key")
			return
		}
		a.admin(w, r)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		anthropicAPIError(w, 404, "not_found_error", "Not found")
		return
	}
	for _, k := range a.keys {
		if k.value == key && k.status == "active" {
			writeJSON(w, 200, anthropicMessage("claude-sonnet-4-5"))
			return
		}
	}
	anthropicAPIError(w, 401, "authentication_error", "invalid x-api-key")
}

// admin serves the API keys routes; a.mu is held.
func (a *AnthropicAdmin) admin(w http.ResponseWriter, r *http.Request) {
	const prefix = "/v1/organizations/api_keys"
	id, one := strings.CutPrefix(r.URL.Path, prefix+"/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == prefix:
		ids := make([]string, 0, len(a.keys))
		for id, k := range a.keys {
			if s := r.URL.Query().Get("status"); s == "" || k.status == s {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		if after := r.URL.Query().Get("after_id"); after != "" {
			i := sort.SearchStrings(ids, after)
			if i < len(ids) && ids[i] == after {
				i++
			}
			ids = ids[i:]
		}
		limit := 20
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n >= 1 && n <= 1000 {
			limit = n
		}
		more := len(ids) > limit
		if more {
			ids = ids[:limit]
		}
		data := make([]map[string]any, 0, len(ids))
		for _, id := range ids {
			data = append(data, a.keys[id].view(id))
		}
		var first, last any
		if len(ids) > 0 {
			first, last = ids[0], ids[len(ids)-1]
		}
		writeJSON(w, 200, map[string]any{"data": data, "has_more": more, "first_id": first, "last_id": last})
	case one && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		k := a.keys[id]
		if k == nil {
			anthropicAPIError(w, 404, "not_found_error", "API key not found")
			return
		}
		if r.Method == http.MethodPost {
			var in struct {
				Name   *string `json:"name"`
				Status *string `json:"status"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				anthropicAPIError(w, 400, "invalid_request_error", "body is not JSON")
				return
			}
			if in.Status != nil {
				switch *in.Status {
				case "active", "inactive", "archived":
					k.status = *in.Status
				default:
					anthropicAPIError(w, 400, "invalid_request_error", "status: Input should be 'active', 'inactive' or 'archived'")
					return
				}
			}
			if in.Name != nil {
				k.name = *in.Name
			}
		}
		writeJSON(w, 200, k.view(id))
	default:
		anthropicAPIError(w, 405, "invalid_request_error", "Method not allowed")
	}
}
