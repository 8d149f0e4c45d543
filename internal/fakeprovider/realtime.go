package fakeprovider

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// RealtimePath is OpenAI's Realtime API endpoint: a WebSocket opened with
// GET /v1/realtime?model=MODEL.
const RealtimePath = "/v1/realtime"

// openAIRealtime serves one Realtime session in the GA wire format:
// session.created first; session.update answered by session.updated;
// conversation.item.create by conversation.item.created;
// input_audio_buffer.append collected and .commit answered by
// input_audio_buffer.committed, then, with server voice detection on
// (the default) and create_response not false, a response the server
// starts itself; response.create by a response (response.created, the
// reply as response.output_text.delta events, response.output_text.done,
// response.done with usage); response.cancel ends the active response as
// cancelled. Anything else is an error event, and the session stays open.
func (s *Server) openAIRealtime(w http.ResponseWriter, r *http.Request) {
	model := r.URL.Query().Get("model")
	if model == "" || !s.knownModel(model) {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{
			"type": "invalid_request_error", "code": "invalid_model", "message": "Invalid model: " + model, "param": "model"}})
		writeJSON(w, http.StatusBadRequest, b)
		return
	}
	conn, ctx, cancel, ok := s.acceptWS(w, r)
	if !ok {
		return
	}
	defer conn.CloseNow()
	defer cancel()
	rt := &realtimeSession{s: s, conn: conn, model: model, id: s.newID("sess_"), serverVAD: true, createResponse: true}
	if !rt.send(ctx, map[string]any{"type": "session.created", "event_id": s.newID("event_"), "session": rt.session()}) {
		return
	}
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if !s.opts.NoRecord {
			s.mu.Lock()
			s.seen = append(s.seen, Seen{Method: WebSocketMethod, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: msg})
			s.mu.Unlock()
		}
		if typ != websocket.MessageText {
			_ = conn.Close(websocket.StatusUnsupportedData, "send JSON events as text messages")
			return
		}
		if !rt.handle(ctx, msg) {
			return
		}
	}
}

// realtimeSession is one fake Realtime session's state.
type realtimeSession struct {
	s              *Server
	conn           *websocket.Conn
	model, id      string
	instructions   string
	serverVAD      bool
	createResponse bool
	audio          int // bytes of base64 audio appended since the last commit
	input          int // input tokens so far: the conversation, resent each response
}

func (rt *realtimeSession) session() map[string]any {
	td := any(nil)
	if rt.serverVAD {
		td = map[string]any{"type": "server_vad", "create_response": rt.createResponse}
	}
	return map[string]any{"type": "realtime", "object": "realtime.session", "id": rt.id, "model": rt.model,
		"output_modalities": []string{"text"}, "instructions": rt.instructions,
		"audio": map[string]any{"input": map[string]any{"turn_detection": td}}}
}

func (rt *realtimeSession) send(ctx context.Context, ev map[string]any) bool {
	b, _ := json.Marshal(ev)
	return rt.conn.Write(ctx, websocket.MessageText, b) == nil
}

func (rt *realtimeSession) fail(ctx context.Context, code, msg, eventID string) bool {
	return rt.send(ctx, map[string]any{"type": "error", "event_id": rt.s.newID("event_"), "error": map[string]any{
		"type": "invalid_request_error", "code": code, "message": msg, "param": nil, "event_id": nullable(eventID)}})
}

// handle answers one client event; it reports false when the session is
// over.
func (rt *realtimeSession) handle(ctx context.Context, msg []byte) bool {
	var ev struct {
		Type    string `json:"type"`
		EventID string `json:"event_id"`
		Audio   string `json:"audio"`
		Session *struct {
			Instructions *string `json:"instructions"`
			Audio        *struct {
				Input *struct {
					TurnDetection *json.RawMessage `json:"turn_detection"`
				} `json:"input"`
			} `json:"audio"`
		} `json:"session"`
		Item json.RawMessage `json:"item"`
	}
	if err := json.Unmarshal(msg, &ev); err != nil {
		return rt.fail(ctx, "invalid_json", "The event is not valid JSON.", "")
	}
	switch ev.Type {
	case "session.update":
		if ev.Session != nil {
			if ev.Session.Instructions != nil {
				rt.instructions = *ev.Session.Instructions
			}
			if a := ev.Session.Audio; a != nil && a.Input != nil && a.Input.TurnDetection != nil {
				var td *struct {
					CreateResponse *bool `json:"create_response"`
				}
				_ = json.Unmarshal(*a.Input.TurnDetection, &td)
				rt.serverVAD = td != nil
				rt.createResponse = td == nil || td.CreateResponse == nil || *td.CreateResponse
			}
		}
		return rt.send(ctx, map[string]any{"type": "session.updated", "event_id": rt.s.newID("event_"), "session": rt.session()})
	case "conversation.item.create":
		var item map[string]any
		if json.Unmarshal(ev.Item, &item) != nil || item == nil {
			return rt.fail(ctx, "invalid_value", "Invalid item.", ev.EventID)
		}
		if _, ok := item["id"]; !ok {
			item["id"] = rt.s.newID("item_")
		}
		item["object"], item["status"] = "realtime.item", "completed"
		rt.input += len(ev.Item)/4 + 1
		return rt.send(ctx, map[string]any{"type": "conversation.item.created", "event_id": rt.s.newID("event_"), "previous_item_id": nil, "item": item})
	case "input_audio_buffer.append":
		rt.audio += len(ev.Audio)
		return true
	case "input_audio_buffer.commit":
		if rt.audio == 0 {
			return rt.fail(ctx, "input_audio_buffer_commit_empty", "Error committing input audio buffer: buffer too small.", ev.EventID)
		}
		rt.input += rt.audio / 64
		rt.audio = 0
		if !rt.send(ctx, map[string]any{"type": "input_audio_buffer.committed", "event_id": rt.s.newID("event_"), "previous_item_id": nil, "item_id": rt.s.newID("item_")}) {
			return false
		}
		if rt.serverVAD && rt.createResponse {
			return rt.respond(ctx)
		}
		return true
	case "response.create":
		return rt.respond(ctx)
	case "response.cancel":
		return true // responses here complete at once: nothing is active
	}
	return rt.fail(ctx, "invalid_value", "Invalid value: '"+ev.Type+"'. Supported values are: 'session.update', 'input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'conversation.item.create', 'conversation.item.truncate', 'conversation.item.delete', 'conversation.item.retrieve', 'response.create', and 'response.cancel'.", ev.EventID)
}

// respond streams one response with the fake's reply.
func (rt *realtimeSession) respond(ctx context.Context) bool {
	s := rt.s
	respID, itemID := s.newID("resp_"), s.newID("item_")
	base := map[string]any{"object": "realtime.response", "id": respID, "conversation_id": "conv_" + rt.id, "output_modalities": []string{"text"}, "max_output_tokens": "inf"}
	created := map[string]any{"status": "in_progress", "output": []any{}, "usage": nil}
	for k, v := range base {
		created[k] = v
	}
	if !rt.send(ctx, map[string]any{"type": "response.created", "event_id": s.newID("event_"), "response": created}) {
		return false
	}
	for _, p := range s.reply.pieces {
		if !rt.send(ctx, map[string]any{"type": "response.output_text.delta", "event_id": s.newID("event_"), "response_id": respID, "item_id": itemID, "output_index": 0, "content_index": 0, "delta": p}) {
			return false
		}
		if d := s.opts.ChunkDelay; d > 0 && !s.wait(ctx, d) {
			return false
		}
	}
	if !rt.send(ctx, map[string]any{"type": "response.output_text.done", "event_id": s.newID("event_"), "response_id": respID, "item_id": itemID, "output_index": 0, "content_index": 0, "text": s.reply.text}) {
		return false
	}
	in := rt.input + len(strings.Fields(rt.instructions)) + 1
	out := s.reply.tokens
	rt.input += out // the answer joins the conversation
	done := map[string]any{"status": "completed", "status_details": nil,
		"output": []any{map[string]any{"id": itemID, "object": "realtime.item", "type": "message", "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": s.reply.text}}}},
		"usage": map[string]any{"total_tokens": in + out, "input_tokens": in, "output_tokens": out,
			"input_token_details":  map[string]any{"text_tokens": in, "audio_tokens": 0, "cached_tokens": 0},
			"output_token_details": map[string]any{"text_tokens": out, "audio_tokens": 0}}}
	for k, v := range base {
		done[k] = v
	}
	return rt.send(ctx, map[string]any{"type": "response.done", "event_id": s.newID("event_"), "response": done})
}
