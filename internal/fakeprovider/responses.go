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
	// Store is false when the caller asked OpenAI not to keep the answer.
	Store *bool `json:"store"`
	// PreviousResponseID continues an earlier answer.
	PreviousResponseID string `json:"previous_response_id"`
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
	st := s.newResponseState(&req)
	w.Header().Set("x-request-id", s.newID("req_"))
	if !req.Stream {
		b := s.appendResponseObject(make([]byte, 0, 1024+len(s.reply.quoted)), st, true)
		s.storeResponse(st.id, req.Store, b)
		writeJSON(w, http.StatusOK, b)
		return
	}
	e := s.startSSE(w, r, make([]byte, 0, 1024))
	for i, ev := range s.responseEvents(st) {
		if !e.begin() {
			return
		}
		e.buf = append(e.buf, "event: "...)
		e.buf = append(e.buf, ev.typ...)
		e.buf = append(e.buf, "\ndata: "...)
		e.buf = ev.appendData(e.buf, i)
		e.buf = append(e.buf, "\n\n"...)
		if !e.flush() {
			return
		}
	}
	s.storeResponse(st.id, req.Store, s.appendResponseObject(nil, st, true))
}

// newResponseState starts the answer to one Responses API request.
func (s *Server) newResponseState(req *responsesRequest) *responseState {
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
	return st
}

// responseEvent is one event of a streamed Responses API answer: its type
// and what follows type and sequence_number in its data object.
type responseEvent struct {
	typ  string
	fill func(b []byte) []byte
}

// appendData appends the event's data object, numbered seq.
func (ev responseEvent) appendData(b []byte, seq int) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, ev.typ...)
	b = append(b, `","sequence_number":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = ev.fill(b)
	return append(b, '}')
}

// responseEvents lists the events of a streamed answer in order, the same
// over server-sent events and over a WebSocket.
func (s *Server) responseEvents(st *responseState) []responseEvent {
	item := func(b []byte) []byte {
		b = append(b, `,"item_id":"`...)
		b = append(b, st.msgID...)
		return append(b, `","output_index":0,"content_index":0`...)
	}
	evs := make([]responseEvent, 0, 8+len(s.reply.quotedPieces))
	evs = append(evs,
		responseEvent{"response.created", func(b []byte) []byte {
			return s.appendResponseObject(append(b, `,"response":`...), st, false)
		}},
		responseEvent{"response.in_progress", func(b []byte) []byte {
			return s.appendResponseObject(append(b, `,"response":`...), st, false)
		}},
		responseEvent{"response.output_item.added", func(b []byte) []byte {
			return s.appendResponseMessage(append(b, `,"output_index":0,"item":`...), st, false)
		}},
		responseEvent{"response.content_part.added", func(b []byte) []byte {
			return s.appendOutputText(append(item(b), `,"part":`...), []byte(`""`))
		}},
	)
	for _, p := range s.reply.quotedPieces {
		evs = append(evs, responseEvent{"response.output_text.delta", func(b []byte) []byte {
			b = append(item(b), `,"delta":`...)
			b = append(b, p...)
			return append(b, `,"logprobs":[]`...)
		}})
	}
	return append(evs,
		responseEvent{"response.output_text.done", func(b []byte) []byte {
			b = append(item(b), `,"text":`...)
			b = append(b, s.reply.quoted...)
			return append(b, `,"logprobs":[]`...)
		}},
		responseEvent{"response.content_part.done", func(b []byte) []byte {
			return s.appendOutputText(append(item(b), `,"part":`...), s.reply.quoted)
		}},
		responseEvent{"response.output_item.done", func(b []byte) []byte {
			return s.appendResponseMessage(append(b, `,"output_index":0,"item":`...), st, true)
		}},
		responseEvent{"response.completed", func(b []byte) []byte {
			return s.appendResponseObject(append(b, `,"response":`...), st, true)
		}},
	)
}
