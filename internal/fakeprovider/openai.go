package fakeprovider

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"
)

// openAIModelCreated is the "created" timestamp reported for every model.
const openAIModelCreated = 1700000000

// openAIFingerprint is the system_fingerprint the fake reports.
const openAIFingerprint = "fp_keygate01"

// DefaultOpenAIModels returns the models an OpenAI fake knows when
// Options.Models is nil.
func DefaultOpenAIModels() []string {
	return []string{"gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o4-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small", "text-embedding-3-large"}
}

// NewOpenAI returns a fake OpenAI API. Clients use "<server URL>/v1" as base
// URL and authenticate with "Authorization: Bearer <Options.APIKey>". It
// panics when Options.APIKey is empty.
func NewOpenAI(opts Options) *Server {
	s := newServer(opts, DefaultOpenAIModels())
	s.handle = (*Server).serveOpenAI
	s.fail = (*Server).failOpenAI
	if opts.FailStatus != 0 {
		msg, typ, code := openAIFailure(opts.FailStatus)
		s.failBody = appendOpenAIError(nil, msg, typ, "", code)
	}
	b := []byte(`{"object":"list","data":[`)
	for i, m := range s.models {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendOpenAIModel(b, m)
	}
	s.modelsBody = append(b, "]}"...)
	return s
}

func appendOpenAIModel(b []byte, id string) []byte {
	b = append(b, `{"id":`...)
	b = appendQuoted(b, id)
	b = append(b, `,"object":"model","created":`...)
	b = appendInt(b, openAIModelCreated)
	return append(b, `,"owned_by":"system"}`...)
}

// openAIFailure maps an HTTP status to the message, type and code OpenAI uses.
func openAIFailure(status int) (msg, typ, code string) {
	switch status {
	case http.StatusBadRequest:
		return "Invalid request.", "invalid_request_error", ""
	case http.StatusUnauthorized:
		return "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
	case http.StatusForbidden:
		return "You are not allowed to sample from this model", "invalid_request_error", "unsupported_country_region_territory"
	case http.StatusNotFound:
		return "The requested resource does not exist.", "invalid_request_error", ""
	case http.StatusTooManyRequests:
		return "Rate limit reached for requests. Please try again in 1s.", "requests", "rate_limit_exceeded"
	case http.StatusServiceUnavailable:
		return "The engine is currently overloaded, please try again later", "server_error", ""
	default:
		if status >= 500 {
			return "The server had an error while processing your request. Sorry about that!", "server_error", ""
		}
		return http.StatusText(status), "invalid_request_error", ""
	}
}

// appendOpenAIError appends {"error":{...}}; empty param or code become null.
func appendOpenAIError(b []byte, msg, typ, param, code string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = appendQuoted(b, msg)
	b = append(b, `,"type":`...)
	b = appendQuoted(b, typ)
	b = append(b, `,"param":`...)
	b = appendNullableQuoted(b, param)
	b = append(b, `,"code":`...)
	b = appendNullableQuoted(b, code)
	return append(b, "}}"...)
}

func (s *Server) openAIError(w http.ResponseWriter, status int, msg, typ, param, code string) {
	w.Header().Set("x-request-id", s.newID("req_"))
	writeJSON(w, status, appendOpenAIError(nil, msg, typ, param, code))
}

func (s *Server) failOpenAI(w http.ResponseWriter) {
	h := w.Header()
	h.Set("x-request-id", s.newID("req_"))
	if s.opts.FailStatus == http.StatusTooManyRequests {
		h.Set("retry-after", "1")
	}
	writeJSON(w, s.opts.FailStatus, s.failBody)
}

func (s *Server) serveOpenAI(w http.ResponseWriter, r *http.Request, body []byte) {
	if !s.openAIAuth(w, r) {
		return
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/v1/chat/completions":
		s.openAIChat(w, r, body)
	case r.Method == http.MethodPost && path == "/v1/completions":
		s.openAICompletion(w, r, body)
	case r.Method == http.MethodPost && path == "/v1/embeddings":
		s.openAIEmbeddings(w, body)
	case r.Method == http.MethodPost && path == "/v1/responses":
		s.openAIResponses(w, r, body)
	case path == "/v1/responses" && isWebSocketUpgrade(r) && !s.opts.NoWebSocket:
		s.openAIResponsesWS(w, r)
	case path == RealtimePath && isWebSocketUpgrade(r) && !s.opts.NoWebSocket:
		s.openAIRealtime(w, r)
	case r.Method == http.MethodPost && path == "/v1/responses/compact":
		s.openAICompact(w, body)
	case r.Method == http.MethodPost && path == "/v1/responses/input_tokens":
		s.openAIInputTokens(w, body)
	case strings.HasPrefix(path, "/v1/responses/"):
		s.openAIStoredResponse(w, r)
	case r.Method == http.MethodGet && path == "/v1/models":
		w.Header().Set("x-request-id", s.newID("req_"))
		writeJSON(w, http.StatusOK, s.modelsBody)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		id := path[len("/v1/models/"):]
		if !s.knownModel(id) {
			s.openAIModelNotFound(w, id)
			return
		}
		w.Header().Set("x-request-id", s.newID("req_"))
		writeJSON(w, http.StatusOK, appendOpenAIModel(nil, id))
	default:
		s.openAIError(w, http.StatusNotFound, "Invalid URL ("+r.Method+" "+path+")", "invalid_request_error", "", "")
	}
}

// openAIAuth checks the bearer key and answers 401 when it is wrong.
func (s *Server) openAIAuth(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		s.openAIError(w, http.StatusUnauthorized, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", "invalid_request_error", "", "")
		return false
	}
	key := auth
	if len(auth) >= 7 && strings.EqualFold(auth[:7], "bearer ") {
		key = strings.TrimSpace(auth[7:])
	}
	if s.keyMatches(key) && key != auth {
		return true
	}
	shown := MaskKey(key)
	if s.opts.EchoKeyInErrors {
		shown = key
	}
	s.openAIError(w, http.StatusUnauthorized, "Incorrect API key provided: "+shown+". You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", "", "invalid_api_key")
	return false
}

// openAIParse decodes a JSON request body, answering 400 when it is invalid.
func (s *Server) openAIParse(w http.ResponseWriter, body []byte, v any) bool {
	if err := json.Unmarshal(body, v); err != nil {
		s.openAIError(w, http.StatusBadRequest, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", "invalid_request_error", "", "")
		return false
	}
	return true
}

// openAIModel validates the requested model, answering 400 when it is
// missing and 404 when the fake does not know it.
func (s *Server) openAIModel(w http.ResponseWriter, model string) bool {
	if model == "" {
		s.openAIError(w, http.StatusBadRequest, "you must provide a model parameter", "invalid_request_error", "", "")
		return false
	}
	if !s.knownModel(model) {
		s.openAIModelNotFound(w, model)
		return false
	}
	return true
}

func (s *Server) openAIModelNotFound(w http.ResponseWriter, model string) {
	s.openAIError(w, http.StatusNotFound, "The model `"+model+"` does not exist or you do not have access to it.", "invalid_request_error", "", "model_not_found")
}

type openAIStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool                 `json:"stream"`
	StreamOptions *openAIStreamOptions `json:"stream_options"`
}

func appendOpenAIUsage(b []byte, prompt, completion int) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = appendInt(b, int64(prompt))
	b = append(b, `,"completion_tokens":`...)
	b = appendInt(b, int64(completion))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(prompt+completion))
	return append(b, `,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`...)
}

func (s *Server) openAIChat(w http.ResponseWriter, r *http.Request, body []byte) {
	var req chatRequest
	if !s.openAIParse(w, body, &req) || !s.openAIModel(w, req.Model) {
		return
	}
	if req.Messages == nil {
		s.openAIError(w, http.StatusBadRequest, "Missing required parameter: 'messages'.", "invalid_request_error", "messages", "missing_required_parameter")
		return
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += countContentWords(m.Content)
	}
	id, created := s.newID("chatcmpl-"), time.Now().Unix()
	w.Header().Set("x-request-id", s.newID("req_"))
	if !req.Stream {
		b := append(make([]byte, 0, 512+len(s.reply.quoted)), `{"id":"`...)
		b = append(b, id...)
		b = append(b, `","object":"chat.completion","created":`...)
		b = appendInt(b, created)
		b = append(b, `,"model":`...)
		b = appendQuoted(b, req.Model)
		b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
		b = append(b, s.reply.quoted...)
		b = append(b, `,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":`...)
		b = appendOpenAIUsage(b, prompt, s.reply.tokens)
		b = append(b, `,"service_tier":"default","system_fingerprint":"`+openAIFingerprint+`"}`...)
		writeJSON(w, http.StatusOK, b)
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	head := append(make([]byte, 0, 160), `data: {"id":"`...)
	head = append(head, id...)
	head = append(head, `","object":"chat.completion.chunk","created":`...)
	head = appendInt(head, created)
	head = append(head, `,"model":`...)
	head = appendQuoted(head, req.Model)
	head = append(head, `,"service_tier":"default","system_fingerprint":"`+openAIFingerprint+`","choices":[`...)
	tail := "]}\n\n"
	if includeUsage {
		tail = `],"usage":null}` + "\n\n"
	}
	e := s.startSSE(w, r, make([]byte, 0, 512))
	event := func(choice string, content []byte, rest string) bool {
		if !e.begin() {
			return false
		}
		e.buf = append(e.buf, head...)
		e.buf = append(e.buf, choice...)
		e.buf = append(e.buf, content...)
		e.buf = append(e.buf, rest...)
		e.buf = append(e.buf, tail...)
		return e.flush()
	}
	if !event(`{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}`, nil, "") {
		return
	}
	for _, p := range s.reply.quotedPieces {
		if !event(`{"index":0,"delta":{"content":`, p, `},"logprobs":null,"finish_reason":null}`) {
			return
		}
	}
	if !event(`{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}`, nil, "") {
		return
	}
	s.endOpenAIStream(e, nil, head, prompt, includeUsage)
}

type completionRequest struct {
	Model         string               `json:"model"`
	Prompt        json.RawMessage      `json:"prompt"`
	Stream        bool                 `json:"stream"`
	StreamOptions *openAIStreamOptions `json:"stream_options"`
}

func (s *Server) openAICompletion(w http.ResponseWriter, r *http.Request, body []byte) {
	var req completionRequest
	if !s.openAIParse(w, body, &req) || !s.openAIModel(w, req.Model) {
		return
	}
	prompt := countContentWords(req.Prompt)
	if len(req.Prompt) > 0 && req.Prompt[0] == '[' && prompt == 0 {
		var many []string
		if json.Unmarshal(req.Prompt, &many) == nil {
			for _, p := range many {
				prompt += countWords(p)
			}
		}
	}
	id, created := s.newID("cmpl-"), time.Now().Unix()
	w.Header().Set("x-request-id", s.newID("req_"))
	head := append(make([]byte, 0, 160), `{"id":"`...)
	head = append(head, id...)
	head = append(head, `","object":"text_completion","created":`...)
	head = appendInt(head, created)
	head = append(head, `,"model":`...)
	head = appendQuoted(head, req.Model)
	head = append(head, `,"system_fingerprint":"`+openAIFingerprint+`","choices":[`...)
	if !req.Stream {
		b := append(make([]byte, 0, 512+len(s.reply.quoted)), head...)
		b = append(b, `{"text":`...)
		b = append(b, s.reply.quoted...)
		b = append(b, `,"index":0,"logprobs":null,"finish_reason":"stop"}],"usage":`...)
		b = appendOpenAIUsage(b, prompt, s.reply.tokens)
		b = append(b, '}')
		writeJSON(w, http.StatusOK, b)
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	tail := "]}\n\n"
	if includeUsage {
		tail = `],"usage":null}` + "\n\n"
	}
	e := s.startSSE(w, r, make([]byte, 0, 512))
	event := func(text []byte, finish string) bool {
		if !e.begin() {
			return false
		}
		e.buf = append(e.buf, "data: "...)
		e.buf = append(e.buf, head...)
		e.buf = append(e.buf, `{"text":`...)
		e.buf = append(e.buf, text...)
		e.buf = append(e.buf, `,"index":0,"logprobs":null,"finish_reason":`...)
		e.buf = append(e.buf, finish...)
		e.buf = append(e.buf, '}')
		e.buf = append(e.buf, tail...)
		return e.flush()
	}
	for _, p := range s.reply.quotedPieces {
		if !event(p, "null") {
			return
		}
	}
	if !event([]byte(`""`), `"stop"`) {
		return
	}
	s.endOpenAIStream(e, []byte("data: "), head, prompt, includeUsage)
}

// endOpenAIStream writes a stream's tail: the usage chunk when the client
// asked for it (stream_options.include_usage), then the [DONE] sentinel.
// prefix goes before head when head lacks the SSE "data: " field name.
func (s *Server) endOpenAIStream(e *sseWriter, prefix, head []byte, prompt int, includeUsage bool) {
	if includeUsage {
		if !e.begin() {
			return
		}
		e.buf = append(e.buf, prefix...)
		e.buf = append(e.buf, head...)
		e.buf = append(e.buf, `],"usage":`...)
		e.buf = appendOpenAIUsage(e.buf, prompt, s.reply.tokens)
		e.buf = append(e.buf, "}\n\n"...)
		if !e.flush() {
			return
		}
	}
	if e.begin() {
		e.buf = append(e.buf, "data: [DONE]\n\n"...)
		e.flush()
	}
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     int             `json:"dimensions"`
}

// defaultEmbeddingDims is the length of embeddings when the request does not
// ask for a size.
const defaultEmbeddingDims = 8

func (s *Server) openAIEmbeddings(w http.ResponseWriter, body []byte) {
	var req embeddingRequest
	if !s.openAIParse(w, body, &req) || !s.openAIModel(w, req.Model) {
		return
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		s.openAIError(w, http.StatusBadRequest, "Missing required parameter: 'input'.", "invalid_request_error", "input", "missing_required_parameter")
		return
	}
	// input is a string, an array of strings, an array of token IDs or an
	// array of token arrays; each element yields one embedding.
	var inputs []json.RawMessage
	var tokens int
	if req.Input[0] == '[' {
		var elems []json.RawMessage
		if !s.openAIParse(w, req.Input, &elems) {
			return
		}
		if len(elems) > 0 && elems[0][0] != '"' && elems[0][0] != '[' {
			inputs = []json.RawMessage{req.Input}
			tokens = len(elems)
		} else {
			inputs = elems
		}
	} else {
		inputs = []json.RawMessage{req.Input}
	}
	if tokens == 0 {
		for _, in := range inputs {
			if n := countContentWords(in); n > 0 {
				tokens += n
			} else if len(in) > 0 && in[0] == '[' {
				tokens += strings.Count(string(in), ",") + 1
			}
		}
	}
	dims := req.Dimensions
	if dims <= 0 || dims > 4096 {
		dims = defaultEmbeddingDims
	}
	b64 := req.EncodingFormat == "base64"
	b := append(make([]byte, 0, 128+len(inputs)*(64+dims*12)), `{"object":"list","data":[`...)
	var raw []byte
	for i, in := range inputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"embedding":`...)
		v := embedding(in, dims)
		if b64 {
			raw = raw[:0]
			for _, f := range v {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = appendFloats(b, v)
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = appendQuoted(b, req.Model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = appendInt(b, int64(tokens))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(tokens))
	b = append(b, "}}"...)
	w.Header().Set("x-request-id", s.newID("req_"))
	writeJSON(w, http.StatusOK, b)
}
