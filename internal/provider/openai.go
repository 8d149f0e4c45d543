package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// OpenAI is the OpenAI dialect, also spoken by Ollama, vLLM, OpenRouter and
// most self-hosted model servers. Its providers are registered with the base
// URL the OpenAI SDK takes, which already ends in the API version
// (https://api.openai.com/v1, http://localhost:11434/v1).
type OpenAI struct{}

// Name implements Dialect.
func (OpenAI) Name() string { return "openai" }

// UpstreamPath drops the client's /v1 and appends the rest to the base path:
// /v1/chat/completions on base /v1 is /v1/chat/completions, on base
// /api/v1 (OpenRouter) /api/v1/chat/completions. A client path without /v1
// is appended as is.
func (OpenAI) UpstreamPath(basePath, clientPath string) string {
	rest := clientPath
	if strings.HasPrefix(clientPath, "/v1/") {
		rest = clientPath[len("/v1"):]
	} else if clientPath == "/v1" {
		rest = ""
	}
	return joinPath(basePath, rest)
}

// ClientKey implements Dialect, preferring Authorization: Bearer when the
// client sends both forms.
func (OpenAI) ClientKey(h http.Header) (string, bool) { return clientKey(h, false) }

// StripCredentials implements Dialect.
func (OpenAI) StripCredentials(h http.Header) { stripCredentials(h) }

// InjectAuth sets "Authorization: Bearer <key>". An empty key (a local
// server without authentication) sets nothing.
func (OpenAI) InjectAuth(h http.Header, key secret.String) {
	if key.IsZero() {
		return
	}
	setHeader(h, "Authorization", "Bearer "+key.Reveal())
}

// openAIError is the body api.openai.com sends with an error status.
type openAIError struct {
	Error openAIErrorDetail `json:"error"`
}

type openAIErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// openAIErrorType follows api.openai.com: 401 is invalid_request_error (with
// code invalid_api_key there), 403 request_forbidden, 429 insufficient_quota
// or rate_limit_exceeded, 5xx server_error. The SDKs choose their exception
// class from the status; the type is for people reading the error.
func openAIErrorType(status int, code string) string {
	switch {
	case status == http.StatusForbidden:
		return "request_forbidden"
	case status == http.StatusTooManyRequests && code == "insufficient_quota":
		return "insufficient_quota"
	case status == http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// WriteError writes {"error":{"message","type","param":null,"code"}}; an
// empty code is written as null. Client errors that retrying cannot fix
// carry x-should-retry: false.
func (OpenAI) WriteError(w http.ResponseWriter, status int, code, message string) {
	setRetryHint(w.Header(), status)
	writeJSON(w, status, newOpenAIError(status, code, message))
}

// OpenAIErrorBody is the error body WriteError sends, for callers that
// replace a response's body rather than write one.
func OpenAIErrorBody(status int, code, message string) []byte {
	b, _ := json.Marshal(newOpenAIError(status, code, message)) // a plain struct cannot fail
	return b
}

func newOpenAIError(status int, code, message string) openAIError {
	d := openAIErrorDetail{Message: message, Type: openAIErrorType(status, code)}
	if code != "" {
		d.Code = &code
	}
	return openAIError{Error: d}
}

type openAIModelList struct {
	Object string        `json:"object"`
	Data   []openAIModel `json:"data"`
}

type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// WriteModels writes {"object":"list","data":[{"id","object":"model","created","owned_by"}]}.
// An unknown creation time is written as 0.
func (OpenAI) WriteModels(w http.ResponseWriter, models []Model) {
	list := openAIModelList{Object: "list", Data: make([]openAIModel, 0, len(models))}
	for _, m := range models {
		var created int64
		if !m.Created.IsZero() {
			created = m.Created.Unix()
		}
		list.Data = append(list.Data, openAIModel{ID: m.ID, Object: "model", Created: created, OwnedBy: m.OwnedBy})
	}
	writeJSON(w, http.StatusOK, list)
}

// ParseModels reads an OpenAI-style models list. It tolerates what
// compatible servers add or leave out (a missing object field, a fractional
// created time, a "name" used as display name) and skips entries without an
// id. Errors never quote the body.
func (OpenAI) ParseModels(body []byte) ([]Model, error) {
	var list struct {
		Data *[]struct {
			ID      string       `json:"id"`
			Created *json.Number `json:"created"`
			OwnedBy string       `json:"owned_by"`
			Name    string       `json:"name"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, errors.New("openai models list: body is not the expected JSON object")
	}
	if list.Data == nil {
		return nil, errors.New("openai models list: no data array")
	}
	out := make([]Model, 0, len(*list.Data))
	for _, e := range *list.Data {
		if e.ID == "" {
			continue
		}
		m := Model{ID: e.ID, OwnedBy: e.OwnedBy, DisplayName: e.Name}
		if e.Created != nil {
			if sec, err := e.Created.Float64(); err == nil && sec > 0 && sec < 1e12 {
				m.Created = time.Unix(int64(sec), 0).UTC()
			}
		}
		out = append(out, m)
	}
	return out, nil
}
