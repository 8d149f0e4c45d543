package provider

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// Gemini is Gemini's native API (generativelanguage.googleapis.com), the
// one Gemini CLI and the Google Gen AI SDKs speak:
// POST /v1beta/models/{model}:generateContent and its relatives. Its
// providers are registered with the base URL the SDKs take, without the
// API version (https://generativelanguage.googleapis.com); the client's
// path carries the version.
type Gemini struct{}

// Name implements Dialect.
func (Gemini) Name() string { return "gemini" }

// UpstreamPath appends the client path, version included, to the base
// path: /v1beta/models on base "" is /v1beta/models.
func (Gemini) UpstreamPath(basePath, clientPath string) string {
	return joinPath(basePath, clientPath)
}

// ClientKey returns the credential the client presented as
// x-goog-api-key (what the Google SDKs send), else as Authorization:
// Bearer or x-api-key. A ?key= query parameter is read by the gateway,
// which sees the URL, and moved into x-goog-api-key before this runs.
func (Gemini) ClientKey(h http.Header) (string, bool) {
	if _, sent := h["X-Goog-Api-Key"]; sent {
		v, ok := singleValue(h, "X-Goog-Api-Key")
		if !ok || !validToken(v) {
			return "", false
		}
		return v, true
	}
	return clientKey(h, false)
}

// StripCredentials implements Dialect.
func (Gemini) StripCredentials(h http.Header) { stripCredentials(h) }

// InjectAuth sets "x-goog-api-key: <key>", never a ?key= parameter, so
// the key stays out of URLs and whatever logs them. An empty key sets
// nothing.
func (Gemini) InjectAuth(h http.Header, key secret.String) {
	if key.IsZero() {
		return
	}
	setHeader(h, "X-Goog-Api-Key", key.Reveal())
}

// geminiStatus is the google.rpc.Code name Google's APIs send with an
// HTTP status, as in their error bodies' "status" field.
func geminiStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusPaymentRequired, http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

// GeminiErrorDomain is the ErrorInfo domain of the errors keygate
// itself answers in Gemini's shape; the reason is keygate's error code.
const GeminiErrorDomain = "keygate"

type geminiError struct {
	Error geminiErrorDetail `json:"error"`
}

type geminiErrorDetail struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Status  string            `json:"status"`
	Details []json.RawMessage `json:"details,omitempty"`
}

// WriteError writes {"error":{"code","message","status","details"}}, the
// shape of Google's APIs, which Gemini CLI and the Google Gen AI SDKs
// parse. details holds a google.rpc.ErrorInfo whose reason is code in
// capitals (MODEL_NOT_ALLOWED) and whose domain is GeminiErrorDomain, and,
// when the response already carries Retry-After, a google.rpc.RetryInfo
// with the same delay: Gemini CLI waits that long before it retries, and
// gives up at once on a delay of more than five minutes.
//
// A refusal that no wait cures (X-Should-Retry: false without
// Retry-After: a lifetime budget spent, a request larger than a whole
// limit) has no delay to give, and Google's error model has no "never";
// its RetryInfo says a day (noRetryDelay), the hint every Google client
// reads as "do not retry now", so Gemini CLI stops at once with keygate's
// message rather than back off and try again for minutes.
func (Gemini) WriteError(w http.ResponseWriter, status int, code, message string) {
	retryAfter := w.Header().Get("Retry-After")
	if retryAfter == "" && w.Header().Get("X-Should-Retry") == "false" && retryableGeminiStatus(status) {
		retryAfter = strconv.Itoa(noRetryDelay)
	}
	writeJSON(w, status, newGeminiError(status, code, message, retryAfter))
}

// noRetryDelay is the RetryInfo delay, in seconds, of a Gemini-shaped
// refusal that waiting does not cure: longer than any retry loop waits.
const noRetryDelay = 86400

// retryableGeminiStatus reports whether Google's clients retry a status
// on their own (RESOURCE_EXHAUSTED, CANCELLED, UNAVAILABLE): only those
// need a RetryInfo to stop them.
func retryableGeminiStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == 499 || status == http.StatusServiceUnavailable
}

func newGeminiError(status int, code, message, retryAfter string) geminiError {
	d := geminiErrorDetail{Code: status, Message: message, Status: geminiStatus(status)}
	if code != "" {
		info, _ := json.Marshal(struct {
			Type   string `json:"@type"`
			Reason string `json:"reason"`
			Domain string `json:"domain"`
		}{"type.googleapis.com/google.rpc.ErrorInfo", strings.ToUpper(code), GeminiErrorDomain})
		d.Details = append(d.Details, info)
	}
	if secs, err := strconv.ParseInt(retryAfter, 10, 64); err == nil && secs > 0 {
		retry, _ := json.Marshal(struct {
			Type  string `json:"@type"`
			Delay string `json:"retryDelay"`
		}{"type.googleapis.com/google.rpc.RetryInfo", strconv.FormatInt(secs, 10) + "s"})
		d.Details = append(d.Details, retry)
	}
	return geminiError{Error: d}
}

// GeminiErrorBody is the error body WriteError sends, for callers that
// replace a response's body rather than write one.
func GeminiErrorBody(status int, code, message string) []byte {
	b, _ := json.Marshal(newGeminiError(status, code, message, "")) // plain structs cannot fail
	return b
}

// geminiModelList is the answer to GET /v1beta/models.
type geminiModelList struct {
	Models []json.RawMessage `json:"models"`
}

// geminiModel is what keygate reads and writes of a Gemini model entry;
// the upstream's other fields (token limits, supported methods, thinking)
// are passed through from Model.Raw.
type geminiModel struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName,omitempty"`
}

// WriteModels writes {"models":[{"name":"models/ID",...}]}, every model
// on one page (no nextPageToken). An entry read from a Gemini upstream
// keeps the upstream's own fields (inputTokenLimit,
// supportedGenerationMethods...) with its name set to the id keygate
// lists; any other has a name and a display name only.
func (Gemini) WriteModels(w http.ResponseWriter, models []Model) {
	list := geminiModelList{Models: make([]json.RawMessage, 0, len(models))}
	for _, m := range models {
		list.Models = append(list.Models, GeminiModelEntry(m))
	}
	writeJSON(w, http.StatusOK, list)
}

// GeminiModelEntry is one model as GET /v1beta/models/{model} answers it:
// the upstream's entry (Model.Raw) named models/{m.ID}, or one made of
// the id and display name.
func GeminiModelEntry(m Model) json.RawMessage {
	name, _ := json.Marshal("models/" + m.ID)
	var fields map[string]json.RawMessage
	if len(m.Raw) > 0 && json.Unmarshal(m.Raw, &fields) == nil && fields != nil {
		fields["name"] = name
		if b, err := json.Marshal(fields); err == nil {
			return b
		}
	}
	dn := m.DisplayName
	if dn == "" {
		dn = m.ID
	}
	b, _ := json.Marshal(geminiModel{Name: "models/" + m.ID, DisplayName: dn})
	return b
}

// ParseModels reads a Gemini models list page
// ({"models":[{"name":"models/gemini-2.5-flash",...}],"nextPageToken"}),
// keeping each entry whole in Model.Raw. Entries whose name is not
// models/... are skipped. Errors never quote the body.
func (Gemini) ParseModels(body []byte) ([]Model, error) {
	var list struct {
		Models *[]json.RawMessage `json:"models"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, errors.New("gemini models list: body is not the expected JSON object")
	}
	if list.Models == nil {
		return []Model{}, nil // Google leaves "models" out of an empty list
	}
	out := make([]Model, 0, len(*list.Models))
	for _, raw := range *list.Models {
		var e geminiModel
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		id, ok := strings.CutPrefix(e.Name, "models/")
		if !ok || id == "" {
			continue
		}
		out = append(out, Model{ID: id, DisplayName: e.DisplayName, Raw: raw})
	}
	return out, nil
}

// GeminiCall is what the path of a Gemini native API call names:
// /{Version}/models/{Model}:{Method}, or /{Version}/models/{Model} (Method
// empty) to read one model.
type GeminiCall struct {
	Version string // v1beta, v1 or v1alpha
	Model   string // as the client named it, provider prefix included
	Method  string // generateContent, streamGenerateContent, countTokens; "" for a model read
}

// Gemini API methods keygate serves.
const (
	GeminiGenerate       = "generateContent"
	GeminiStreamGenerate = "streamGenerateContent"
	GeminiCountTokens    = "countTokens"
)

// IsGeminiPath reports whether path is under a Gemini API version's
// models collection (/v1beta/models, /v1/models/..., /v1alpha/models...),
// without allocating. /v1/models itself is not: that listing is shared
// with the OpenAI and Anthropic dialects.
func IsGeminiPath(path string) bool {
	for _, v := range [...]string{"/v1beta/models", "/v1alpha/models"} {
		if path == v || strings.HasPrefix(path, v+"/") {
			return true
		}
	}
	return strings.HasPrefix(path, "/v1/models/") && strings.Contains(path, ":")
}

// ParseGeminiPath reads a Gemini API path. It refuses a path it does not
// serve, or a model name that is not letters, digits and . _ - with at
// most one / (a provider prefix, as in google/gemini-2.5-flash), so a
// model rebuilt into an upstream path cannot leave its segment.
func ParseGeminiPath(path string) (GeminiCall, error) {
	var c GeminiCall
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return c, errors.New("the path does not start with /")
	}
	c.Version, rest, _ = strings.Cut(rest, "/")
	switch c.Version {
	case "v1beta", "v1", "v1alpha":
	default:
		return c, errors.New("the API version must be v1beta, v1 or v1alpha")
	}
	rest, ok = strings.CutPrefix(rest, "models/")
	if !ok || rest == "" {
		return c, errors.New("keygate serves only /" + c.Version + "/models and /" + c.Version + "/models/{model}[:method]")
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		c.Model, c.Method = rest[:i], rest[i+1:]
		switch c.Method {
		case GeminiGenerate, GeminiStreamGenerate, GeminiCountTokens:
		default:
			return c, errors.New("keygate serves the methods generateContent, streamGenerateContent and countTokens of a model, not " + strconv.Quote(c.Method))
		}
	} else {
		c.Model = rest
	}
	if err := CheckGeminiModel(c.Model, true); err != nil {
		return c, err
	}
	return c, nil
}

// CheckGeminiModel reports whether model can be placed in a Gemini API
// path: 1 to 128 letters, digits, '.', '_' or '-', and with prefixed one
// '/' between two such names.
func CheckGeminiModel(model string, prefixed bool) error {
	bad := errors.New("the model name " + strconv.Quote(model) + " is not one keygate can route: use letters, digits, '.', '_' and '-', with an optional provider prefix (google/gemini-2.5-flash)")
	if model == "" || len(model) > 128 {
		return bad
	}
	slash := false
	prev := byte('/')
	for i := 0; i < len(model); i++ {
		ch := model[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '_', ch == '-':
		case ch == '.':
			if prev == '.' || prev == '/' {
				return bad // no "..", no segment starting with a dot
			}
		case ch == '/' && prefixed && !slash && prev != '/' && i < len(model)-1:
			slash = true
		default:
			return bad
		}
		prev = ch
	}
	return nil
}

// Path is the call's path with model in place of the client's.
func (c GeminiCall) Path(model string) string {
	p := "/" + c.Version + "/models/" + model
	if c.Method != "" {
		p += ":" + c.Method
	}
	return p
}
