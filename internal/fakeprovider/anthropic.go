package fakeprovider

import (
	"encoding/json"
	"net/http"
	"strings"
)

// anthropicModelCreated is the created_at timestamp reported for every model.
const anthropicModelCreated = "2025-01-01T00:00:00Z"

// DefaultAnthropicModels returns the models an Anthropic fake knows when
// Options.Models is nil.
func DefaultAnthropicModels() []string {
	return []string{"claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest"}
}

// NewAnthropic returns a fake Anthropic API. Clients use the server URL as
// base URL (paths start with /v1/) and authenticate with "x-api-key:
// <Options.APIKey>" plus an anthropic-version header. It panics when
// Options.APIKey is empty.
func NewAnthropic(opts Options) *Server {
	s := newServer(opts, DefaultAnthropicModels())
	s.handle = (*Server).serveAnthropic
	s.fail = (*Server).failAnthropic
	if opts.FailStatus != 0 {
		typ, msg := anthropicFailure(opts.FailStatus)
		s.failBody = appendAnthropicErrorPrefix(nil, typ, msg)
	}
	b := []byte(`{"data":[`)
	for i, m := range s.models {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendAnthropicModel(b, m)
	}
	b = append(b, `],"has_more":false,"first_id":`...)
	if len(s.models) > 0 {
		b = appendQuoted(b, s.models[0])
		b = append(b, `,"last_id":`...)
		b = appendQuoted(b, s.models[len(s.models)-1])
	} else {
		b = append(b, `null,"last_id":null`...)
	}
	s.modelsBody = append(b, '}')
	return s
}

func appendAnthropicModel(b []byte, id string) []byte {
	b = append(b, `{"type":"model","id":`...)
	b = appendQuoted(b, id)
	b = append(b, `,"display_name":`...)
	b = appendQuoted(b, displayName(id))
	return append(b, `,"created_at":"`+anthropicModelCreated+`"}`...)
}

// displayName turns "claude-sonnet-4-5" into "Claude Sonnet 4.5".
func displayName(id string) string {
	parts := strings.Split(id, "-")
	var b strings.Builder
	prevDigit := false
	for i, p := range parts {
		digit := p != "" && p[0] >= '0' && p[0] <= '9'
		switch {
		case i == 0:
		case digit && prevDigit:
			b.WriteByte('.')
		default:
			b.WriteByte(' ')
		}
		if !digit && p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		} else {
			b.WriteString(p)
		}
		prevDigit = digit
	}
	return b.String()
}

// anthropicFailure maps an HTTP status to Anthropic's error type and message.
func anthropicFailure(status int) (typ, msg string) {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error", "Invalid request"
	case http.StatusUnauthorized:
		return "authentication_error", "invalid x-api-key"
	case http.StatusForbidden:
		return "permission_error", "Your API key does not have permission to use the specified resource."
	case http.StatusNotFound:
		return "not_found_error", "Not Found"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large", "Request exceeds the maximum allowed number of bytes."
	case http.StatusTooManyRequests:
		return "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"
	case http.StatusGatewayTimeout:
		return "timeout_error", "Request timed out"
	case 529:
		return "overloaded_error", "Overloaded"
	default:
		if status >= 500 {
			return "api_error", "Internal server error"
		}
		return "invalid_request_error", http.StatusText(status)
	}
}

// appendAnthropicErrorPrefix appends an Anthropic error body without its
// closing request_id, which is per request: the caller finishes it with
// finishAnthropicError.
func appendAnthropicErrorPrefix(b []byte, typ, msg string) []byte {
	b = append(b, `{"type":"error","error":{"type":`...)
	b = appendQuoted(b, typ)
	b = append(b, `,"message":`...)
	b = appendQuoted(b, msg)
	return append(b, `},"request_id":"`...)
}

// anthropicRequestID sets the request-id header and returns its value.
func (s *Server) anthropicRequestID(w http.ResponseWriter) string {
	id := s.newID("req_01")
	w.Header().Set("request-id", id)
	return id
}

func (s *Server) writeAnthropicError(w http.ResponseWriter, status int, prefix []byte) {
	id := s.anthropicRequestID(w)
	b := make([]byte, 0, len(prefix)+len(id)+2)
	b = append(b, prefix...)
	b = append(b, id...)
	b = append(b, `"}`...)
	writeJSON(w, status, b)
}

func (s *Server) anthropicError(w http.ResponseWriter, status int, typ, msg string) {
	s.writeAnthropicError(w, status, appendAnthropicErrorPrefix(nil, typ, msg))
}

func (s *Server) failAnthropic(w http.ResponseWriter) {
	if s.opts.FailStatus == http.StatusTooManyRequests {
		w.Header().Set("retry-after", "1")
	}
	s.writeAnthropicError(w, s.opts.FailStatus, s.failBody)
}

func (s *Server) serveAnthropic(w http.ResponseWriter, r *http.Request, body []byte) {
	key := r.Header.Get("x-api-key")
	if key == "" {
		s.anthropicError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header is required")
		return
	}
	if !s.keyMatches(key) {
		msg := "invalid x-api-key"
		if s.opts.EchoKeyInErrors {
			msg = "invalid x-api-key: " + key
		}
		s.anthropicError(w, http.StatusUnauthorized, "authentication_error", msg)
		return
	}
	if r.Header.Get("anthropic-version") == "" {
		s.anthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/v1/messages":
		s.anthropicMessages(w, r, body)
	case r.Method == http.MethodPost && path == "/v1/messages/count_tokens":
		s.anthropicCountTokens(w, body)
	case r.Method == http.MethodGet && path == "/v1/models":
		s.anthropicRequestID(w)
		writeJSON(w, http.StatusOK, s.modelsBody)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		id := path[len("/v1/models/"):]
		if !s.knownModel(id) {
			s.anthropicError(w, http.StatusNotFound, "not_found_error", "model: "+id)
			return
		}
		s.anthropicRequestID(w)
		writeJSON(w, http.StatusOK, appendAnthropicModel(nil, id))
	default:
		s.anthropicError(w, http.StatusNotFound, "not_found_error", "Not Found")
	}
}

type anthropicRequest struct {
	Model     *string `json:"model"`
	MaxTokens *int    `json:"max_tokens"`
	Messages  []struct {
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	System json.RawMessage `json:"system"`
	Stream bool            `json:"stream"`
}

// anthropicParse decodes and validates a messages request; it answers the
// error itself and reports false when the request is refused.
func (s *Server) anthropicParse(w http.ResponseWriter, body []byte, needMaxTokens bool) (anthropicRequest, int, bool) {
	var req anthropicRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.anthropicError(w, http.StatusBadRequest, "invalid_request_error", "There was an error parsing the body of your request: "+err.Error())
		return req, 0, false
	}
	switch {
	case req.Model == nil:
		s.anthropicError(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
		return req, 0, false
	case needMaxTokens && req.MaxTokens == nil:
		s.anthropicError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
		return req, 0, false
	case req.Messages == nil:
		s.anthropicError(w, http.StatusBadRequest, "invalid_request_error", "messages: Field required")
		return req, 0, false
	case !s.knownModel(*req.Model):
		s.anthropicError(w, http.StatusNotFound, "not_found_error", "model: "+*req.Model)
		return req, 0, false
	}
	input := countContentWords(req.System)
	for _, m := range req.Messages {
		input += countContentWords(m.Content)
	}
	return req, input, true
}

func (s *Server) anthropicCountTokens(w http.ResponseWriter, body []byte) {
	_, input, ok := s.anthropicParse(w, body, false)
	if !ok {
		return
	}
	s.anthropicRequestID(w)
	writeJSON(w, http.StatusOK, append(appendInt([]byte(`{"input_tokens":`), int64(input)), '}'))
}

// appendAnthropicUsage appends a usage object with the given counts.
func appendAnthropicUsage(b []byte, input, output int) []byte {
	b = append(b, `{"input_tokens":`...)
	b = appendInt(b, int64(input))
	b = append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":`...)
	b = appendInt(b, int64(output))
	return append(b, `,"service_tier":"standard"}`...)
}

// appendAnthropicMessage appends a message object; a streaming start has
// empty content, no stop reason and a single output token.
func (s *Server) appendAnthropicMessage(b []byte, id, model string, input int, start bool) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","type":"message","role":"assistant","model":`...)
	b = appendQuoted(b, model)
	if start {
		b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`...)
		b = appendAnthropicUsage(b, input, 1)
	} else {
		b = append(b, `,"content":[{"type":"text","text":`...)
		b = append(b, s.reply.quoted...)
		b = append(b, `}],"stop_reason":"end_turn","stop_sequence":null,"usage":`...)
		b = appendAnthropicUsage(b, input, s.reply.tokens)
	}
	return append(b, '}')
}

func (s *Server) anthropicMessages(w http.ResponseWriter, r *http.Request, body []byte) {
	req, input, ok := s.anthropicParse(w, body, true)
	if !ok {
		return
	}
	id := s.newID("msg_01")
	s.anthropicRequestID(w)
	if !req.Stream {
		b := make([]byte, 0, 512+len(s.reply.quoted))
		writeJSON(w, http.StatusOK, s.appendAnthropicMessage(b, id, *req.Model, input, false))
		return
	}
	e := s.startSSE(w, r, make([]byte, 0, 512))
	event := func(name string, fill func(b []byte) []byte) bool {
		if !e.begin() {
			return false
		}
		e.buf = append(e.buf, "event: "...)
		e.buf = append(e.buf, name...)
		e.buf = append(e.buf, "\ndata: "...)
		e.buf = fill(e.buf)
		e.buf = append(e.buf, "\n\n"...)
		return e.flush()
	}
	static := func(data string) func(b []byte) []byte {
		return func(b []byte) []byte { return append(b, data...) }
	}
	ok = event("message_start", func(b []byte) []byte {
		b = append(b, `{"type":"message_start","message":`...)
		b = s.appendAnthropicMessage(b, id, *req.Model, input, true)
		return append(b, '}')
	}) &&
		event("content_block_start", static(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)) &&
		event("ping", static(`{"type": "ping"}`))
	if !ok {
		return
	}
	for _, p := range s.reply.quotedPieces {
		ok := event("content_block_delta", func(b []byte) []byte {
			b = append(b, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`...)
			b = append(b, p...)
			return append(b, "}}"...)
		})
		if !ok {
			return
		}
	}
	_ = event("content_block_stop", static(`{"type":"content_block_stop","index":0}`)) &&
		event("message_delta", func(b []byte) []byte {
			b = append(b, `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":`...)
			b = appendInt(b, int64(s.reply.tokens))
			return append(b, "}}"...)
		}) &&
		event("message_stop", static(`{"type":"message_stop"}`))
}
