package fakeprovider

import (
	"encoding/json"
	"net/http"
	"strings"
)

// DefaultGeminiModels returns the models a Gemini fake knows when
// Options.Models is nil.
func DefaultGeminiModels() []string {
	return []string{"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash"}
}

// NewGemini returns a fake of Gemini's native API
// (generativelanguage.googleapis.com). Clients use the server URL as base
// URL; paths are /v1beta/models/{model}:generateContent,
// :streamGenerateContent (a JSON array, or server-sent events with
// ?alt=sse), :countTokens, GET /v1beta/models and GET
// /v1beta/models/{model}, and the same under /v1/. The key is
// Options.APIKey, sent as x-goog-api-key or, as Google also accepts, as
// ?key= (Seen.RawQuery shows which a client used). Errors are Google's
// {"error":{"code","message","status","details"}}. It panics when
// Options.APIKey is empty.
func NewGemini(opts Options) *Server {
	s := newServer(opts, DefaultGeminiModels())
	s.handle = (*Server).serveGemini
	s.fail = (*Server).failGemini
	if opts.FailStatus != 0 {
		s.failBody = geminiFailure(opts.FailStatus)
	}
	b := []byte(`{"models":[`)
	for i, m := range s.models {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendGeminiModel(b, m)
	}
	s.modelsBody = append(b, "]}"...)
	return s
}

// appendGeminiModel appends a Model resource as Google lists it.
func appendGeminiModel(b []byte, id string) []byte {
	b = append(b, `{"name":`...)
	b = appendQuoted(b, "models/"+id)
	b = append(b, `,"version":"001","displayName":`...)
	b = appendQuoted(b, geminiDisplayName(id))
	b = append(b, `,"description":"A fake of `...)
	b = append(b, geminiDisplayName(id)...)
	b = append(b, ` for keygate's tests.","inputTokenLimit":1048576,"outputTokenLimit":65536,`+
		`"supportedGenerationMethods":["generateContent","countTokens","createCachedContent","batchGenerateContent"],`+
		`"temperature":1,"topP":0.95,"topK":64,"maxTemperature":2,"thinking":true}`...)
	return b
}

// geminiDisplayName turns "gemini-2.5-flash" into "Gemini 2.5 Flash".
func geminiDisplayName(id string) string {
	parts := strings.Split(id, "-")
	for i, p := range parts {
		if p != "" && p[0] >= 'a' && p[0] <= 'z' {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, " ")
}

// appendNativeGeminiError appends the error body of Gemini's native API
// (an object, where its OpenAI endpoint sends an array); details, when not empty,
// is the JSON array written as "details".
func appendNativeGeminiError(b []byte, status int, msg, details string) []byte {
	b = append(b, `{"error":{"code":`...)
	b = appendInt(b, int64(status))
	b = append(b, `,"message":`...)
	b = appendQuoted(b, msg)
	b = append(b, `,"status":"`...)
	b = append(b, googleStatus(status)...)
	b = append(b, '"')
	if details != "" {
		b = append(b, `,"details":`...)
		b = append(b, details...)
	}
	return append(b, "}}"...)
}

// geminiFailure is the body Google answers a failing call with.
func geminiFailure(status int) []byte {
	switch status {
	case http.StatusTooManyRequests:
		return appendNativeGeminiError(nil, status, "You exceeded your current quota, please check your plan and billing details. Please retry in 1s.",
			`[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},`+
				`{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}]`)
	case http.StatusServiceUnavailable:
		return appendNativeGeminiError(nil, status, "The model is overloaded. Please try again later.", "")
	case http.StatusInternalServerError:
		return appendNativeGeminiError(nil, status, "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", "")
	}
	return appendNativeGeminiError(nil, status, http.StatusText(status), "")
}

func (s *Server) geminiError(w http.ResponseWriter, status int, msg, details string) {
	writeJSON(w, status, appendNativeGeminiError(nil, status, msg, details))
}

func (s *Server) failGemini(w http.ResponseWriter) {
	writeJSON(w, s.opts.FailStatus, s.failBody)
}

// geminiKeyInvalid is Google's answer to a key it does not know.
func (s *Server) geminiKeyInvalid(w http.ResponseWriter, presented string) {
	msg := "API key not valid. Please pass a valid API key."
	if s.opts.EchoKeyInErrors {
		msg = "API key not valid: " + presented + ". Please pass a valid API key."
	}
	details := `[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},` +
		`{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":` + string(appendQuoted(nil, msg)) + `}]`
	s.geminiError(w, http.StatusBadRequest, msg, details)
}

func (s *Server) serveGemini(w http.ResponseWriter, r *http.Request, body []byte) {
	key := r.Header.Get("x-goog-api-key")
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	if key == "" {
		s.geminiError(w, http.StatusForbidden, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "")
		return
	}
	if !s.keyMatches(key) {
		s.geminiKeyInvalid(w, key)
		return
	}
	version, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if version != "v1beta" && version != "v1" && version != "v1alpha" {
		s.geminiError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	if rest == "models" {
		if r.Method != http.MethodGet {
			s.geminiError(w, http.StatusNotFound, "Not Found", "")
			return
		}
		writeJSON(w, http.StatusOK, s.modelsBody)
		return
	}
	name, ok := strings.CutPrefix(rest, "models/")
	if !ok || name == "" {
		s.geminiError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	model, method, hasMethod := strings.Cut(name, ":")
	if !hasMethod {
		if r.Method != http.MethodGet {
			s.geminiError(w, http.StatusNotFound, "Not Found", "")
			return
		}
		if !s.knownModel(model) {
			s.geminiError(w, http.StatusNotFound, "models/"+model+" is not found for API version "+version+".", "")
			return
		}
		writeJSON(w, http.StatusOK, appendGeminiModel(nil, model))
		return
	}
	if r.Method != http.MethodPost {
		s.geminiError(w, http.StatusNotFound, "Not Found", "")
		return
	}
	if !s.knownModel(model) {
		s.geminiError(w, http.StatusNotFound, "models/"+model+" is not found for API version "+version+", or is not supported for "+method+". Call ListModels to see the list of available models and their supported methods.", "")
		return
	}
	switch method {
	case "generateContent":
		s.geminiGenerate(w, r, body, model, false)
	case "streamGenerateContent":
		s.geminiGenerate(w, r, body, model, true)
	case "countTokens":
		s.geminiCountTokens(w, body)
	default:
		s.geminiError(w, http.StatusNotFound, "Not Found", "")
	}
}

// geminiContent is a Content: a role and parts, of which the fake reads
// the text.
type geminiContent struct {
	Role  string `json:"role"`
	Parts []struct {
		Text string `json:"text"`
	} `json:"parts"`
}

type geminiRequest struct {
	Contents          []geminiContent `json:"contents"`
	SystemInstruction *geminiContent  `json:"systemInstruction"`
	// countTokens may wrap a whole generateContent request.
	GenerateContentRequest *struct {
		Contents          []geminiContent `json:"contents"`
		SystemInstruction *geminiContent  `json:"systemInstruction"`
	} `json:"generateContentRequest"`
}

// geminiParse decodes a request and counts its prompt's words; it answers
// the error itself and reports false when the request is refused.
func (s *Server) geminiParse(w http.ResponseWriter, body []byte, count bool) (int, bool) {
	var req geminiRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.geminiError(w, http.StatusBadRequest, "Invalid JSON payload received. "+err.Error(), "")
		return 0, false
	}
	contents, sys := req.Contents, req.SystemInstruction
	if count && req.GenerateContentRequest != nil {
		contents, sys = req.GenerateContentRequest.Contents, req.GenerateContentRequest.SystemInstruction
	}
	if len(contents) == 0 {
		s.geminiError(w, http.StatusBadRequest, "* GenerateContentRequest.contents: contents is not specified\n", "")
		return 0, false
	}
	n := 0
	for _, c := range contents {
		for _, p := range c.Parts {
			n += countWords(p.Text)
		}
	}
	if sys != nil {
		for _, p := range sys.Parts {
			n += countWords(p.Text)
		}
	}
	return max(n, 1), true
}

func (s *Server) geminiCountTokens(w http.ResponseWriter, body []byte) {
	n, ok := s.geminiParse(w, body, true)
	if !ok {
		return
	}
	b := appendInt([]byte(`{"totalTokens":`), int64(n))
	b = append(b, `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":`...)
	b = appendInt(b, int64(n))
	writeJSON(w, http.StatusOK, append(b, "}]}"...))
}

// appendGeminiUsage appends a usageMetadata object; output < 0 leaves the
// candidates out, as Google does in a stream's first chunks.
func appendGeminiUsage(b []byte, prompt, output int) []byte {
	b = append(b, `{"promptTokenCount":`...)
	b = appendInt(b, int64(prompt))
	total := prompt
	if output >= 0 {
		b = append(b, `,"candidatesTokenCount":`...)
		b = appendInt(b, int64(output))
		total += output
	}
	b = append(b, `,"totalTokenCount":`...)
	b = appendInt(b, int64(total))
	b = append(b, `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":`...)
	b = appendInt(b, int64(prompt))
	return append(b, "}]}"...)
}

// appendGeminiResponse appends a GenerateContentResponse carrying text
// (JSON-quoted); done adds the finishReason and the final counts.
func (s *Server) appendGeminiResponse(b []byte, quotedText []byte, model, id string, prompt int, done bool) []byte {
	b = append(b, `{"candidates":[{"content":{"parts":[{"text":`...)
	b = append(b, quotedText...)
	b = append(b, `}],"role":"model"}`...)
	if done {
		b = append(b, `,"finishReason":"STOP"`...)
	}
	b = append(b, `,"index":0}],"usageMetadata":`...)
	if done {
		b = appendGeminiUsage(b, prompt, s.reply.tokens)
	} else {
		b = appendGeminiUsage(b, prompt, -1)
	}
	b = append(b, `,"modelVersion":`...)
	b = appendQuoted(b, model)
	b = append(b, `,"responseId":"`...)
	b = append(b, id...)
	return append(b, `"}`...)
}

func (s *Server) geminiGenerate(w http.ResponseWriter, r *http.Request, body []byte, model string, stream bool) {
	prompt, ok := s.geminiParse(w, body, false)
	if !ok {
		return
	}
	id := s.newID("")
	if !stream {
		b := make([]byte, 0, 512+len(s.reply.quoted))
		writeJSON(w, http.StatusOK, s.appendGeminiResponse(b, s.reply.quoted, model, id, prompt, true))
		return
	}
	last := len(s.reply.quotedPieces) - 1
	if r.URL.Query().Get("alt") == "sse" {
		e := s.startSSE(w, r, make([]byte, 0, 512))
		for i, p := range s.reply.quotedPieces {
			if !e.begin() {
				return
			}
			e.buf = append(e.buf, "data: "...)
			e.buf = s.appendGeminiResponse(e.buf, p, model, id, prompt, i == last)
			e.buf = append(e.buf, "\r\n\r\n"...)
			if !e.flush() {
				return
			}
		}
		return
	}
	// Without alt=sse the chunks are the elements of one JSON array,
	// written as they are made.
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	e := &sseWriter{s: s, w: w, rc: http.NewResponseController(w), ctx: r.Context(), buf: make([]byte, 0, 512)}
	for i, p := range s.reply.quotedPieces {
		if !e.begin() {
			return
		}
		if i == 0 {
			e.buf = append(e.buf, '[')
		} else {
			e.buf = append(e.buf, ",\r\n"...)
		}
		e.buf = s.appendGeminiResponse(e.buf, p, model, id, prompt, i == last)
		if i == last {
			e.buf = append(e.buf, "]"...)
		}
		if !e.flush() {
			return
		}
	}
}
