package fakeprovider

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

type responsesRequest struct {
	Model        string          `json:"model"`
	Input        json.RawMessage `json:"input"`
	Instructions json.RawMessage `json:"instructions"`
	Stream       bool            `json:"stream"`
}

// responsesInputWords counts words in a Responses API input: a string, or a
// list of items whose content is a string or a list of parts.
func responsesInputWords(raw json.RawMessage) int {
	if len(raw) == 0 || raw[0] != '[' {
		return countContentWords(raw)
	}
	var items []struct {
		Content json.RawMessage `json:"content"`
		Text    string          `json:"text"`
	}
	if json.Unmarshal(raw, &items) != nil {
		return 0
	}
	n := 0
	for _, it := range items {
		n += countContentWords(it.Content) + countWords(it.Text)
	}
	return n
}

// responseState carries what every event of one Responses API answer shares.
type responseState struct {
	id, msgID    string
	created      int64
	model        string
	instructions json.RawMessage
	input        int
}

// appendResponseObject appends a "response" object. Output and usage are
// included only when the response is complete.
func (s *Server) appendResponseObject(b []byte, st *responseState, completed bool) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, st.id...)
	b = append(b, `","object":"response","created_at":`...)
	b = appendInt(b, st.created)
	if completed {
		b = append(b, `,"status":"completed","background":false,"completed_at":`...)
		b = appendInt(b, st.created)
	} else {
		b = append(b, `,"status":"in_progress","background":false,"completed_at":null`...)
	}
	b = append(b, `,"error":null,"incomplete_details":null,"instructions":`...)
	if len(st.instructions) > 0 {
		b = append(b, st.instructions...)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"max_output_tokens":null,"max_tool_calls":null,"model":`...)
	b = appendQuoted(b, st.model)
	b = append(b, `,"output":[`...)
	if completed {
		b = s.appendResponseMessage(b, st, true)
	}
	b = append(b, `],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"service_tier":"default","store":true,"temperature":1.0,"text":{"format":{"type":"text"},"verbosity":"medium"},"tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1.0,"truncation":"disabled","usage":`...)
	if completed {
		b = append(b, `{"input_tokens":`...)
		b = appendInt(b, int64(st.input))
		b = append(b, `,"input_tokens_details":{"cached_tokens":0},"output_tokens":`...)
		b = appendInt(b, int64(s.reply.tokens))
		b = append(b, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
		b = appendInt(b, int64(st.input+s.reply.tokens))
		b = append(b, '}')
	} else {
		b = append(b, "null"...)
	}
	return append(b, `,"user":null,"metadata":{}}`...)
}

// appendResponseMessage appends the assistant output message item; an
// unfinished item has no content yet.
func (s *Server) appendResponseMessage(b []byte, st *responseState, done bool) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, st.msgID...)
	if !done {
		return append(b, `","type":"message","status":"in_progress","content":[],"role":"assistant"}`...)
	}
	b = append(b, `","type":"message","status":"completed","content":[`...)
	b = s.appendOutputText(b, s.reply.quoted)
	return append(b, `],"role":"assistant"}`...)
}

func (s *Server) appendOutputText(b, quoted []byte) []byte {
	b = append(b, `{"type":"output_text","annotations":[],"logprobs":[],"text":`...)
	b = append(b, quoted...)
	return append(b, '}')
}

func (s *Server) openAIResponses(w http.ResponseWriter, r *http.Request, body []byte) {
	var req responsesRequest
	if !s.openAIParse(w, body, &req) || !s.openAIModel(w, req.Model) {
		return
	}
	st := &responseState{
		id:      s.newID("resp_"),
		msgID:   s.newID("msg_"),
		created: time.Now().Unix(),
		model:   req.Model,
		input:   responsesInputWords(req.Input),
	}
	if len(req.Instructions) > 0 && req.Instructions[0] == '"' {
		st.instructions = req.Instructions
	}
	w.Header().Set("x-request-id", s.newID("req_"))
	if !req.Stream {
		b := make([]byte, 0, 1024+len(s.reply.quoted))
		writeJSON(w, http.StatusOK, s.appendResponseObject(b, st, true))
		return
	}
	e := s.startSSE(w, r, make([]byte, 0, 1024))
	seq := 0
	// event writes "event: <typ>" and a data object starting with type and
	// sequence_number, followed by fill's fields.
	event := func(typ string, fill func(b []byte) []byte) bool {
		if !e.begin() {
			return false
		}
		e.buf = append(e.buf, "event: "...)
		e.buf = append(e.buf, typ...)
		e.buf = append(e.buf, "\ndata: {\"type\":\""...)
		e.buf = append(e.buf, typ...)
		e.buf = append(e.buf, `","sequence_number":`...)
		e.buf = strconv.AppendInt(e.buf, int64(seq), 10)
		seq++
		e.buf = fill(e.buf)
		e.buf = append(e.buf, "}\n\n"...)
		return e.flush()
	}
	item := func(b []byte) []byte {
		b = append(b, `,"item_id":"`...)
		b = append(b, st.msgID...)
		return append(b, `","output_index":0,"content_index":0`...)
	}
	steps := []struct {
		typ  string
		fill func(b []byte) []byte
	}{
		{"response.created", func(b []byte) []byte {
			return s.appendResponseObject(append(b, `,"response":`...), st, false)
		}},
		{"response.in_progress", func(b []byte) []byte {
			return s.appendResponseObject(append(b, `,"response":`...), st, false)
		}},
		{"response.output_item.added", func(b []byte) []byte {
			return s.appendResponseMessage(append(b, `,"output_index":0,"item":`...), st, false)
		}},
		{"response.content_part.added", func(b []byte) []byte {
			return s.appendOutputText(append(item(b), `,"part":`...), []byte(`""`))
		}},
	}
	for _, step := range steps {
		if !event(step.typ, step.fill) {
			return
		}
	}
	for _, p := range s.reply.quotedPieces {
		ok := event("response.output_text.delta", func(b []byte) []byte {
			b = append(item(b), `,"delta":`...)
			b = append(b, p...)
			return append(b, `,"logprobs":[]`...)
		})
		if !ok {
			return
		}
	}
	steps = []struct {
		typ  string
		fill func(b []byte) []byte
	}{
		{"response.output_text.done", func(b []byte) []byte {
			b = append(item(b), `,"text":`...)
			b = append(b, s.reply.quoted...)
			return append(b, `,"logprobs":[]`...)
		}},
		{"response.content_part.done", func(b []byte) []byte {
			return s.appendOutputText(append(item(b), `,"part":`...), s.reply.quoted)
		}},
		{"response.output_item.done", func(b []byte) []byte {
			return s.appendResponseMessage(append(b, `,"output_index":0,"item":`...), st, true)
		}},
		{"response.completed", func(b []byte) []byte {
			return s.appendResponseObject(append(b, `,"response":`...), st, true)
		}},
	}
	for _, step := range steps {
		if !event(step.typ, step.fill) {
			return
		}
	}
}
