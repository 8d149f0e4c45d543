package fakeprovider

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// AzureAPIVersions returns the api-version values the Azure OpenAI fake
// accepts; any other answers 400 "API version not supported" as Azure does.
func AzureAPIVersions() []string {
	return []string{"2024-02-01", "2024-06-01", "2024-10-21", "2024-12-01-preview",
		"2025-01-01-preview", "2025-03-01-preview", "2025-04-01-preview"}
}

// PresetNames returns the provider presets NewPreset can fake.
func PresetNames() []string {
	names := []string{"openai", "anthropic"}
	for _, f := range presetFakes() {
		names = append(names, f.name)
	}
	return names
}

// NewPreset returns a fake of the named provider preset (see PresetNames):
// NewOpenAI for "openai", NewAnthropic for "anthropic", and for the others
// the OpenAI fake behind that service's path prefix, credential header and
// error bodies:
//
//	azure-openai  /openai/deployments/{deployment}/chat/completions?api-version=V, header api-key;
//	              deployments are the model names, V one of AzureAPIVersions
//	gemini        /v1beta/openai/chat/completions, Bearer; errors are a JSON array
//	mistral       /v1/chat/completions, Bearer; 401 is {"detail":"Unauthorized"}
//	groq          /openai/v1/chat/completions, Bearer
//	deepseek      /chat/completions (and /v1/chat/completions), Bearer
//	xai           /v1/chat/completions, Bearer; a wrong key is a 400 with {"code","error"}
//	openrouter    /api/v1/chat/completions, Bearer; streams open with a comment line
//	together      /v1/chat/completions, Bearer
//	ollama        /v1/chat/completions, no authentication
//	vllm          /v1/chat/completions, Bearer when Options.APIKey is set, else none
//
// Options.APIKey may be empty for ollama and vllm only. NewPreset panics on
// an unknown name or a missing required key, as NewOpenAI does.
func NewPreset(name string, opts Options) *Server {
	switch name {
	case "openai":
		return NewOpenAI(opts)
	case "anthropic":
		return NewAnthropic(opts)
	}
	var f *presetFake
	for _, c := range presetFakes() {
		if c.name == name {
			f = c
			break
		}
	}
	if f == nil {
		panic("fakeprovider: unknown preset " + name + "; see PresetNames")
	}
	f.keyless = name == "ollama" || (name == "vllm" && opts.APIKey == "")
	if f.keyless && opts.APIKey == "" {
		opts.APIKey = "keyless-" + randomAlnum(16) // satisfies newServer; never checked
	}
	if opts.Models == nil {
		opts.Models = f.models
	}
	s := NewOpenAI(opts)
	b := []byte(`{"object":"list","data":[`)
	for i, m := range s.models {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendQuoted(b, f.listPrefix+m)
		b = append(b, `,"object":"model","created":`...)
		b = appendInt(b, openAIModelCreated)
		b = append(b, `,"owned_by":`...)
		b = appendQuoted(b, f.ownedBy)
		b = append(b, '}')
	}
	s.modelsBody = append(b, "]}"...)
	s.handle = f.serve
	s.fail = func(s *Server, w http.ResponseWriter) {
		pw := &presetWriter{ResponseWriter: w, f: f}
		s.failOpenAI(pw)
		pw.finish()
	}
	return s
}

// presetFake describes how one service differs from the OpenAI fake.
type presetFake struct {
	name    string
	models  []string
	ownedBy string
	// prefixes are the path prefixes that stand for the OpenAI fake's /v1.
	prefixes []string
	// listPrefix is put before model IDs in the models list.
	listPrefix string
	// azure selects deployment paths, the api-key header and api-version.
	azure bool
	// keyless skips authentication.
	keyless bool
	// authError answers a missing (present false) or wrong key.
	authError func(s *Server, key string, present bool) (int, []byte)
	// reshape turns an error of the OpenAI fake into this service's body.
	reshape func(status int, msg, typ, code string) (int, []byte)
	// streamPreamble is written at the start of every SSE stream.
	streamPreamble string
}

func presetFakes() []*presetFake {
	return []*presetFake{
		{name: "azure-openai", models: []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}, ownedBy: "system",
			azure: true, authError: azureAuthError, reshape: openAIShape},
		{name: "gemini", models: []string{"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "gemini-embedding-001"},
			ownedBy: "google", prefixes: []string{"/v1beta/openai"}, listPrefix: "models/",
			authError: geminiAuthError, reshape: geminiShape},
		{name: "mistral", models: []string{"mistral-large-latest", "mistral-small-latest", "codestral-latest", "mistral-embed"},
			ownedBy: "mistralai", prefixes: []string{"/v1"}, authError: mistralAuthError, reshape: mistralShape},
		{name: "groq", models: []string{"llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b"},
			ownedBy: "Meta", prefixes: []string{"/openai/v1"}, authError: groqAuthError, reshape: groqShape},
		{name: "deepseek", models: []string{"deepseek-chat", "deepseek-reasoner"}, ownedBy: "deepseek",
			prefixes: []string{"", "/v1"}, authError: deepSeekAuthError, reshape: deepSeekShape},
		{name: "xai", models: []string{"grok-4", "grok-3-mini", "grok-code-fast-1"}, ownedBy: "xai",
			prefixes: []string{"/v1"}, authError: xAIAuthError, reshape: xAIShape},
		{name: "openrouter", models: []string{"openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "meta-llama/llama-3.3-70b-instruct"},
			ownedBy: "openrouter", prefixes: []string{"/api/v1"}, authError: openRouterAuthError, reshape: openRouterShape,
			streamPreamble: ": OPENROUTER PROCESSING\n\n"},
		{name: "together", models: []string{"meta-llama/Llama-3.3-70B-Instruct-Turbo", "deepseek-ai/DeepSeek-V3", "BAAI/bge-large-en-v1.5"},
			ownedBy: "together", prefixes: []string{"/v1"}, authError: togetherAuthError, reshape: openAIShape},
		{name: "ollama", models: []string{"llama3.2:latest", "qwen2.5:7b", "nomic-embed-text:latest"}, ownedBy: "library",
			prefixes: []string{"/v1"}, reshape: ollamaShape},
		{name: "vllm", models: []string{"Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"}, ownedBy: "vllm",
			prefixes: []string{"/v1"}, authError: vLLMAuthError, reshape: vLLMShape},
	}
}

// serve checks the service's path shape and credential, then lets the
// OpenAI fake answer under its own path, reshaping its errors.
func (f *presetFake) serve(s *Server, w http.ResponseWriter, r *http.Request, body []byte) {
	pw := &presetWriter{ResponseWriter: w, f: f}
	defer pw.finish()
	var path string
	if f.azure {
		var ok bool
		if path, body, ok = f.azureRoute(s, w, r, body); !ok {
			return
		}
	} else {
		for _, p := range f.prefixes {
			if rest, ok := strings.CutPrefix(r.URL.Path, p+"/"); ok {
				path = "/v1/" + rest
				break
			}
		}
		if path == "" {
			s.openAIError(pw, http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "", "")
			return
		}
		if !f.keyless {
			key, present := bearerKey(r)
			if !present || !s.keyMatches(key) {
				status, b := f.authError(s, key, present)
				writeJSON(w, status, b)
				return
			}
		}
		if f.listPrefix != "" {
			body = rewriteModel(body, func(m string) string { return strings.TrimPrefix(m, f.listPrefix) })
		}
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, ""
	r2.Header.Set("Authorization", "Bearer "+s.opts.APIKey)
	s.serveOpenAI(pw, r2, body)
}

// azureRoute checks an Azure OpenAI request: path, api-key, api-version and
// deployment, in that order. It returns the OpenAI fake's path and the body
// with the deployment as its model, or answers the error itself.
func (f *presetFake) azureRoute(s *Server, w http.ResponseWriter, r *http.Request, body []byte) (string, []byte, bool) {
	const notFound = `{"error":{"code":"404","message":"Resource not found"}}`
	var path, deployment string
	if rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/"); ok {
		dep, op, found := strings.Cut(rest, "/")
		if found && dep != "" && azureDeploymentOps()["/"+op] {
			path, deployment = "/v1/"+op, dep
		}
	} else if r.URL.Path == "/openai/models" || strings.HasPrefix(r.URL.Path, "/openai/models/") {
		path = "/v1" + strings.TrimPrefix(r.URL.Path, "/openai")
	}
	if path == "" {
		writeJSON(w, http.StatusNotFound, []byte(notFound))
		return "", nil, false
	}
	key := r.Header.Get("Api-Key")
	if key == "" || !s.keyMatches(key) {
		status, b := azureAuthError(s, key, key != "")
		if _, bearer := bearerKey(r); bearer && key == "" {
			// Without api-key, Azure reads Authorization as a Microsoft Entra token.
			b = []byte(`{"error":{"code":"401","message":"Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."}}`)
		}
		writeJSON(w, status, b)
		return "", nil, false
	}
	version := r.URL.Query().Get("api-version")
	if version == "" {
		writeJSON(w, http.StatusNotFound, []byte(notFound))
		return "", nil, false
	}
	supported := false
	for _, v := range AzureAPIVersions() {
		supported = supported || v == version
	}
	if !supported {
		writeJSON(w, http.StatusBadRequest, []byte(`{"error":{"code":"BadRequest","message":"API version not supported"}}`))
		return "", nil, false
	}
	if deployment != "" {
		if !s.knownModel(deployment) {
			writeJSON(w, http.StatusNotFound, []byte(`{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}`))
			return "", nil, false
		}
		// The deployment decides the model; the body's model field is ignored.
		body = rewriteModel(body, func(string) string { return deployment })
	}
	return path, body, true
}

func azureDeploymentOps() map[string]bool {
	return map[string]bool{"/chat/completions": true, "/completions": true, "/embeddings": true,
		"/audio/speech": true, "/audio/transcriptions": true, "/audio/translations": true,
		"/images/generations": true, "/images/edits": true}
}

// bearerKey reads "Authorization: Bearer <key>"; present is false when the
// header is missing or uses another scheme.
func bearerKey(r *http.Request) (key string, present bool) {
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(auth[7:]), true
}

// rewriteModel replaces the model field of a JSON object body with
// change(model). Bodies that are not JSON objects are returned unchanged
// for the OpenAI fake to refuse.
func rewriteModel(body []byte, change func(string) string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return body
	}
	var model string
	_ = json.Unmarshal(m["model"], &model)
	q, err := json.Marshal(change(model))
	if err != nil {
		return body
	}
	m["model"] = q
	b, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return b
}

// presetWriter passes successful answers through and holds back an error
// answer until finish, which writes it in the service's shape.
type presetWriter struct {
	http.ResponseWriter
	f       *presetFake
	status  int // held-back error status
	buf     []byte
	started bool
}

// WriteHeader holds back error statuses and starts successful answers.
func (w *presetWriter) WriteHeader(status int) {
	if w.started || w.status != 0 {
		return
	}
	if status >= 400 {
		w.status = status
		return
	}
	w.started = true
	w.ResponseWriter.WriteHeader(status)
	if w.f.streamPreamble != "" && strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		_, _ = io.WriteString(w.ResponseWriter, w.f.streamPreamble)
	}
}

// Write buffers an error body and passes anything else through.
func (w *presetWriter) Write(b []byte) (int, error) {
	if !w.started && w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status != 0 {
		w.buf = append(w.buf, b...)
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController flush the underlying writer.
func (w *presetWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *presetWriter) finish() {
	if w.status == 0 {
		return
	}
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(w.buf, &e)
	code := ""
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	status, body := w.f.reshape(w.status, e.Error.Message, e.Error.Type, code)
	writeJSON(w.ResponseWriter, status, body)
}

// shownKey masks key with mask unless the fake echoes keys in errors.
func shownKey(s *Server, key string, mask func(string) string) string {
	if s.opts.EchoKeyInErrors {
		return key
	}
	return mask(key)
}

// missingModel extracts the model from the OpenAI fake's model_not_found
// message ("The model `x` does not exist ...").
func missingModel(msg string) string {
	_, rest, ok := strings.Cut(msg, "`")
	if !ok {
		return ""
	}
	m, _, _ := strings.Cut(rest, "`")
	return m
}

func openAIShape(status int, msg, typ, code string) (int, []byte) {
	return status, appendOpenAIError(nil, msg, typ, "", code)
}

func togetherAuthError(*Server, string, bool) (int, []byte) {
	return http.StatusUnauthorized, appendOpenAIError(nil, "Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys.", "invalid_request_error", "", "invalid_api_key")
}

func azureAuthError(*Server, string, bool) (int, []byte) {
	return http.StatusUnauthorized, []byte(`{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}`)
}

// googleStatus names the google.rpc.Code Google APIs report for an HTTP status.
func googleStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

// appendGeminiError appends the JSON array Gemini's OpenAI endpoint answers
// errors with: [{"error":{"code","message","status"[,"details"]}}].
func appendGeminiError(b []byte, status int, msg, reason string) []byte {
	b = append(b, `[{"error":{"code":`...)
	b = appendInt(b, int64(status))
	b = append(b, `,"message":`...)
	b = appendQuoted(b, msg)
	b = append(b, `,"status":`...)
	b = appendQuoted(b, googleStatus(status))
	if reason != "" {
		b = append(b, `,"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":`...)
		b = appendQuoted(b, reason)
		b = append(b, `,"domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]`...)
	}
	return append(b, "}}]"...)
}

func geminiAuthError(_ *Server, _ string, present bool) (int, []byte) {
	if !present {
		return http.StatusForbidden, appendGeminiError(nil, http.StatusForbidden, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", "")
	}
	return http.StatusBadRequest, appendGeminiError(nil, http.StatusBadRequest, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
}

func geminiShape(status int, msg, _, code string) (int, []byte) {
	if code == "model_not_found" {
		msg = "models/" + missingModel(msg) + " is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
	}
	return status, appendGeminiError(nil, status, msg, "")
}

func mistralAuthError(*Server, string, bool) (int, []byte) {
	return http.StatusUnauthorized, []byte(`{"detail":"Unauthorized"}`)
}

// mistralShape writes {"object":"error","message","type","param","code"};
// Mistral refuses an unknown model with 400 invalid_model.
func mistralShape(status int, msg, typ, code string) (int, []byte) {
	if code == "model_not_found" {
		status, msg, typ, code = http.StatusBadRequest, "Invalid model: "+missingModel(msg), "invalid_model", "1500"
	}
	b := append([]byte(`{"object":"error","message":`), appendQuoted(nil, msg)...)
	b = append(b, `,"type":`...)
	b = appendQuoted(b, typ)
	b = append(b, `,"param":null,"code":`...)
	b = appendNullableQuoted(b, code)
	return status, append(b, '}')
}

func groqAuthError(*Server, string, bool) (int, []byte) {
	return http.StatusUnauthorized, []byte(`{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}`)
}

// groqShape writes {"error":{"message","type"[,"code"]}}: Groq sends no param.
func groqShape(status int, msg, typ, code string) (int, []byte) {
	b := append([]byte(`{"error":{"message":`), appendQuoted(nil, msg)...)
	b = append(b, `,"type":`...)
	b = appendQuoted(b, typ)
	if code != "" {
		b = append(b, `,"code":`...)
		b = appendQuoted(b, code)
	}
	return status, append(b, "}}"...)
}

func deepSeekAuthError(s *Server, key string, present bool) (int, []byte) {
	msg := "Authentication Fails (auth header format should be Bearer sk-...)"
	if present {
		shown := shownKey(s, key, func(k string) string {
			if len(k) > 4 {
				k = k[len(k)-4:]
			}
			return "****" + k
		})
		msg = "Authentication Fails, Your api key: " + shown + " is invalid"
	}
	return http.StatusUnauthorized, appendOpenAIError(nil, msg, "authentication_error", "", "invalid_request_error")
}

// deepSeekShape follows DeepSeek, which refuses an unknown model with 400.
func deepSeekShape(status int, msg, typ, code string) (int, []byte) {
	if code == "model_not_found" {
		status, msg, typ, code = http.StatusBadRequest, "Model Not Exist", "invalid_request_error", "invalid_request_error"
	}
	return status, appendOpenAIError(nil, msg, typ, "", code)
}

// grpcText is the gRPC status description xAI sends as "code".
func grpcText(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "Client specified an invalid argument"
	case http.StatusUnauthorized:
		return "The request does not have valid authentication credentials"
	case http.StatusForbidden:
		return "The caller does not have permission to execute the specified operation"
	case http.StatusNotFound:
		return "Some requested entity was not found"
	case http.StatusTooManyRequests:
		return "Some resource has been exhausted"
	case http.StatusServiceUnavailable:
		return "The service is currently unavailable"
	}
	return "Internal error"
}

func appendXAIError(status int, msg string) []byte {
	b := append([]byte(`{"code":`), appendQuoted(nil, grpcText(status))...)
	b = append(b, `,"error":`...)
	b = appendQuoted(b, msg)
	return append(b, '}')
}

// xAIAuthError follows xAI, which answers a wrong key with 400.
func xAIAuthError(s *Server, key string, present bool) (int, []byte) {
	if !present {
		return http.StatusUnauthorized, appendXAIError(http.StatusUnauthorized, "Missing bearer or basic authentication in header")
	}
	shown := shownKey(s, key, func(k string) string {
		if len(k) <= 4 {
			return "***"
		}
		return k[:2] + "***" + k[len(k)-2:]
	})
	return http.StatusBadRequest, appendXAIError(http.StatusBadRequest, "Incorrect API key provided: "+shown+". You can obtain an API key from https://console.x.ai.")
}

func xAIShape(status int, msg, _, code string) (int, []byte) {
	if code == "model_not_found" {
		msg = "The model " + missingModel(msg) + " does not exist or your team does not have access to it."
	}
	return status, appendXAIError(status, msg)
}

func appendOpenRouterError(status int, msg string) []byte {
	b := append([]byte(`{"error":{"message":`), appendQuoted(nil, msg)...)
	b = append(b, `,"code":`...)
	b = appendInt(b, int64(status))
	return append(b, "}}"...)
}

func openRouterAuthError(_ *Server, _ string, present bool) (int, []byte) {
	if !present {
		return http.StatusUnauthorized, appendOpenRouterError(http.StatusUnauthorized, "No auth credentials found")
	}
	return http.StatusUnauthorized, appendOpenRouterError(http.StatusUnauthorized, "User not found.")
}

func openRouterShape(status int, msg, _, code string) (int, []byte) {
	if code == "model_not_found" {
		status, msg = http.StatusBadRequest, missingModel(msg)+" is not a valid model ID"
	}
	return status, appendOpenRouterError(status, msg)
}

// ollamaShape follows Ollama's OpenAI layer: the type comes from the status
// and code is always null.
func ollamaShape(status int, msg, _, code string) (int, []byte) {
	if code == "model_not_found" {
		msg = `model "` + missingModel(msg) + `" not found, try pulling it first`
	}
	typ := "api_error"
	switch status {
	case http.StatusBadRequest:
		typ = "invalid_request_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	}
	return status, appendOpenAIError(nil, msg, typ, "", "")
}

func vLLMAuthError(*Server, string, bool) (int, []byte) {
	return http.StatusUnauthorized, []byte(`{"error":"Unauthorized"}`)
}

// vLLMShape writes {"error":{"message","type","param":null,"code":<status>}}
// with vLLM's exception-style types.
func vLLMShape(status int, msg, _, code string) (int, []byte) {
	if code == "model_not_found" {
		msg = "The model `" + missingModel(msg) + "` does not exist."
	}
	typ := "InternalServerError"
	switch {
	case status == http.StatusNotFound:
		typ = "NotFoundError"
	case status < 500:
		typ = "BadRequestError"
	}
	b := append([]byte(`{"error":{"message":`), appendQuoted(nil, msg)...)
	b = append(b, `,"type":`...)
	b = appendQuoted(b, typ)
	b = append(b, `,"param":null,"code":`...)
	b = appendInt(b, int64(status))
	return status, append(b, "}}"...)
}
