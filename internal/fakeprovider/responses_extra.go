package fakeprovider

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// maxStoredResponses bounds the answers the fake keeps for GET and DELETE
// /v1/responses/{id}.
const maxStoredResponses = 10000

// storeResponse keeps a finished answer for retrieval, unless the caller
// sent "store": false, as OpenAI does.
func (s *Server) storeResponse(id string, store *bool, body []byte) {
	if store != nil && !*store {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored == nil {
		s.stored = make(map[string][]byte)
	}
	if len(s.stored) >= maxStoredResponses {
		for k := range s.stored {
			delete(s.stored, k)
			break
		}
	}
	s.stored[id] = body
}

// storedResponse returns a kept answer.
func (s *Server) storedResponse(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.stored[id]
	return b, ok
}

// StoredResponses reports how many answers the fake keeps for retrieval.
func (s *Server) StoredResponses() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

// openAIStoredResponse serves GET and DELETE /v1/responses/{id}, POST
// /v1/responses/{id}/cancel and GET /v1/responses/{id}/input_items.
func (s *Server) openAIStoredResponse(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/responses/")
	id, sub, _ := strings.Cut(rest, "/")
	body, ok := s.storedResponse(id)
	if !ok || id == "" {
		s.openAIError(w, http.StatusNotFound, "Response with id '"+id+"' not found.", "invalid_request_error", "", "")
		return
	}
	w.Header().Set("x-request-id", s.newID("req_"))
	switch {
	case sub == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, body)
	case sub == "" && r.Method == http.MethodDelete:
		s.mu.Lock()
		delete(s.stored, id)
		s.mu.Unlock()
		b := append([]byte(`{"id":`), appendQuoted(nil, id)...)
		writeJSON(w, http.StatusOK, append(b, `,"object":"response","deleted":true}`...))
	case sub == "cancel" && r.Method == http.MethodPost:
		// Only a background response can be cancelled; the fake's never are.
		s.openAIError(w, http.StatusBadRequest, "Only responses created with background=true can be cancelled.", "invalid_request_error", "", "")
	case sub == "input_items" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, []byte(`{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`))
	default:
		s.openAIError(w, http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "", "")
	}
}

// openAICompact serves POST /v1/responses/compact: a compaction of the
// input into one opaque item, with the usage of the pass.
func (s *Server) openAICompact(w http.ResponseWriter, body []byte) {
	var req responsesRequest
	if !s.openAIParse(w, body, &req) || !s.openAIModel(w, req.Model) {
		return
	}
	in := responsesInputWords(req.Input)
	out := 16
	resp := map[string]any{
		"id":         s.newID("cmp_"),
		"object":     "response.compaction",
		"created_at": time.Now().Unix(),
		"output": []any{map[string]any{
			"id": s.newID("cmp_item_"), "type": "compaction", "encrypted_content": "gAAAAA" + randomAlnum(40),
		}},
		"usage": map[string]any{
			"input_tokens": in, "input_tokens_details": map[string]int{"cached_tokens": 0},
			"output_tokens": out, "output_tokens_details": map[string]int{"reasoning_tokens": 0},
			"total_tokens": in + out,
		},
	}
	b, _ := json.Marshal(resp)
	w.Header().Set("x-request-id", s.newID("req_"))
	writeJSON(w, http.StatusOK, b)
}

// openAIInputTokens serves POST /v1/responses/input_tokens: the count of
// the input, one token a word.
func (s *Server) openAIInputTokens(w http.ResponseWriter, body []byte) {
	var req responsesRequest
	if !s.openAIParse(w, body, &req) {
		return
	}
	if req.Model != "" && !s.openAIModel(w, req.Model) {
		return
	}
	b := append([]byte(`{"object":"response.input_tokens","input_tokens":`), appendInt(nil, int64(responsesInputWords(req.Input)))...)
	w.Header().Set("x-request-id", s.newID("req_"))
	writeJSON(w, http.StatusOK, append(b, '}'))
}
