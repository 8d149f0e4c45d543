package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// AnthropicVersion is the anthropic-version keygate sends when the client
// did not choose one.
const AnthropicVersion = "2023-06-01"

// Anthropic is the Anthropic Messages dialect. Its providers are registered
// with the base URL the Anthropic SDK takes, without the API version
// (https://api.anthropic.com).
type Anthropic struct{}

// Name implements Dialect.
func (Anthropic) Name() string { return "anthropic" }

// UpstreamPath appends the client path, version included, to the base path:
// /v1/messages on base "" is /v1/messages.
func (Anthropic) UpstreamPath(basePath, clientPath string) string {
	return joinPath(basePath, clientPath)
}

// ClientKey implements Dialect, preferring x-api-key when the client sends
// both forms.
func (Anthropic) ClientKey(h http.Header) (string, bool) { return clientKey(h, true) }

// StripCredentials implements Dialect.
func (Anthropic) StripCredentials(h http.Header) { stripCredentials(h) }

// InjectAuth sets "x-api-key: <key>", and anthropic-version when the client
// sent none. An empty key sets no x-api-key.
func (Anthropic) InjectAuth(h http.Header, key secret.String) {
	if !key.IsZero() {
		setHeader(h, "X-Api-Key", key.Reveal())
	}
	if h.Get("Anthropic-Version") == "" {
		setHeader(h, "Anthropic-Version", AnthropicVersion)
	}
}

type anthropicError struct {
	Type  string               `json:"type"`
	Error anthropicErrorDetail `json:"error"`
}

type anthropicErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// anthropicErrorType follows the error types api.anthropic.com documents;
// other 4xx are invalid_request_error and other 5xx api_error, as there.
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// WriteError writes {"type":"error","error":{"type","message"}}. The
// Anthropic shape has no code field, so code is not sent; the message
// carries the reason. Client errors that retrying cannot fix carry
// x-should-retry: false.
func (Anthropic) WriteError(w http.ResponseWriter, status int, code, message string) {
	setRetryHint(w.Header(), status)
	writeJSON(w, status, anthropicError{Type: "error", Error: anthropicErrorDetail{Type: anthropicErrorType(status), Message: message}})
}

type anthropicModelList struct {
	Data    []anthropicModel `json:"data"`
	HasMore bool             `json:"has_more"`
	FirstID *string          `json:"first_id"`
	LastID  *string          `json:"last_id"`
}

type anthropicModel struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

// WriteModels writes {"data":[{"type":"model","id","display_name","created_at"}],
// "has_more":false,"first_id","last_id"}. A missing display name is the id;
// an unknown creation time is the Unix epoch, since the SDKs require one.
func (Anthropic) WriteModels(w http.ResponseWriter, models []Model) {
	list := anthropicModelList{Data: make([]anthropicModel, 0, len(models))}
	for _, m := range models {
		name := m.DisplayName
		if name == "" {
			name = m.ID
		}
		created := m.Created
		if created.IsZero() {
			created = time.Unix(0, 0)
		}
		list.Data = append(list.Data, anthropicModel{Type: "model", ID: m.ID, DisplayName: name,
			CreatedAt: created.UTC().Format(time.RFC3339)})
	}
	if n := len(list.Data); n > 0 {
		list.FirstID, list.LastID = &list.Data[0].ID, &list.Data[n-1].ID
	}
	writeJSON(w, http.StatusOK, list)
}

// ParseModels reads an Anthropic models list page, skipping entries without
// an id; an unparseable created_at is left zero. Errors never quote the body.
func (Anthropic) ParseModels(body []byte) ([]Model, error) {
	var list struct {
		Data *[]struct {
			ID          string `json:"id"`
			DisplayName string `json:"display_name"`
			CreatedAt   string `json:"created_at"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, errors.New("anthropic models list: body is not the expected JSON object")
	}
	if list.Data == nil {
		return nil, errors.New("anthropic models list: no data array")
	}
	out := make([]Model, 0, len(*list.Data))
	for _, e := range *list.Data {
		if e.ID == "" {
			continue
		}
		m := Model{ID: e.ID, DisplayName: e.DisplayName}
		if t, err := time.Parse(time.RFC3339, e.CreatedAt); err == nil {
			m.Created = t.UTC()
		}
		out = append(out, m)
	}
	return out, nil
}
