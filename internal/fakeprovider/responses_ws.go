package fakeprovider

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// The Responses API's WebSocket mode: a client opens a WebSocket on
// /v1/responses (authenticated by the upgrade's Authorization header) and
// sends response.create events, each the body of POST /v1/responses with a
// "type" and without "stream"; every answer comes back as the events a
// stream carries, one JSON object a text message. Answers are kept on the
// connection, so a later response.create may continue one with
// previous_response_id even when it was not stored. Failures arrive as an
// error event carrying the HTTP status the call would have had:
//
//	{"type":"error","status":404,"error":{"type":"invalid_request_error","code":"model_not_found","message":"...","param":"model"}}

// WebSocketMethod is the Method of a Seen that records a message received
// on a Responses API WebSocket (its Body is the message).
const WebSocketMethod = "WEBSOCKET"

// isWebSocketUpgrade reports whether r asks to switch to a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// acceptWS accepts a WebSocket (with permessage-deflate when the options
// say so) and returns it with a context that ends with the request or
// when the fake closes; ok is false when the upgrade failed.
func (s *Server) acceptWS(w http.ResponseWriter, r *http.Request) (*websocket.Conn, context.Context, context.CancelFunc, bool) {
	ao := &websocket.AcceptOptions{InsecureSkipVerify: true}
	if s.opts.WebSocketCompression {
		ao.CompressionMode = websocket.CompressionNoContextTakeover
	}
	conn, err := websocket.Accept(w, r, ao)
	if err != nil {
		return nil, nil, nil, false
	}
	conn.SetReadLimit(maxBodyBytes)
	ctx, cancel := context.WithCancel(r.Context())
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return conn, ctx, cancel, true
}

// openAIResponsesWS serves one Responses API WebSocket until the client
// closes it or the fake closes.
func (s *Server) openAIResponsesWS(w http.ResponseWriter, r *http.Request) {
	conn, ctx, cancel, ok := s.acceptWS(w, r)
	if !ok {
		return
	}
	defer conn.CloseNow()
	defer cancel()
	kept := map[string]bool{} // answers of this connection, for previous_response_id
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if !s.opts.NoRecord {
			s.mu.Lock()
			s.seen = append(s.seen, Seen{Method: WebSocketMethod, Path: r.URL.Path, Header: r.Header.Clone(), Body: msg})
			s.mu.Unlock()
		}
		if typ != websocket.MessageText {
			_ = conn.Close(websocket.StatusUnsupportedData, "send JSON events as text messages")
			return
		}
		var req struct {
			Type string `json:"type"`
			responsesRequest
		}
		if err := json.Unmarshal(msg, &req); err != nil {
			if !s.wsError(ctx, conn, http.StatusBadRequest, "invalid_request_error", "invalid_json", "", "The message is not valid JSON.") {
				return
			}
			continue
		}
		switch {
		case req.Type == "response.processed":
			continue // the client has handled an answer: nothing to say
		case req.Type != "response.create":
			if !s.wsError(ctx, conn, http.StatusBadRequest, "invalid_request_error", "unknown_event_type", "type", "Unsupported event type '"+req.Type+"'.") {
				return
			}
			continue
		case req.Model == "":
			if !s.wsError(ctx, conn, http.StatusBadRequest, "invalid_request_error", "missing_required_parameter", "model", "you must provide a model parameter") {
				return
			}
			continue
		case !s.knownModel(req.Model):
			if !s.wsError(ctx, conn, http.StatusNotFound, "invalid_request_error", "model_not_found", "model", "The model `"+req.Model+"` does not exist or you do not have access to it.") {
				return
			}
			continue
		}
		if p := req.PreviousResponseID; p != "" {
			if _, stored := s.storedResponse(p); !kept[p] && !stored {
				if !s.wsError(ctx, conn, http.StatusBadRequest, "invalid_request_error", "previous_response_not_found", "previous_response_id", "Previous response with id '"+p+"' not found.") {
					return
				}
				continue
			}
		}
		st := s.newResponseState(&req.responsesRequest)
		buf := make([]byte, 0, 1024)
		for i, ev := range s.responseEvents(st) {
			if i > 0 && s.opts.ChunkDelay > 0 && !s.wait(ctx, s.opts.ChunkDelay) {
				return
			}
			buf = ev.appendData(buf[:0], i)
			if err := conn.Write(ctx, websocket.MessageText, buf); err != nil {
				return
			}
		}
		kept[st.id] = true
		s.storeResponse(st.id, req.Store, s.appendResponseObject(nil, st, true))
	}
}

// wsError sends an error event; it reports false when the connection failed.
func (s *Server) wsError(ctx context.Context, conn *websocket.Conn, status int, typ, code, param, msg string) bool {
	ev := map[string]any{"type": "error", "status": status, "error": map[string]any{"type": typ, "code": code, "message": msg, "param": nullable(param)}}
	b, _ := json.Marshal(ev)
	err := conn.Write(ctx, websocket.MessageText, b)
	return err == nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
