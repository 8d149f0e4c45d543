package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/pricing"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// codexBeta is the OpenAI-Beta header Codex CLI sends on its Responses
// WebSocket.
const codexBeta = "responses_websockets=2026-02-06"

// wsEnv is a gateway in front of a fake OpenAI provider, with its keys,
// verifier and audit trail, for the Responses API's WebSocket mode.
type wsEnv struct {
	g      *gw
	keys   *keys
	v      *keysource.Source
	fake   *fake
	events *eventLog
}

func newWSEnv(t *testing.T, fo fakeprovider.Options, edit func(*gateway.Options)) *wsEnv {
	t.Helper()
	e := &wsEnv{keys: newKeys(t), events: &eventLog{}}
	e.v = e.keys.verifier()
	e.fake = newFake(t, "openai", fo)
	e.g = newGatewayWith(t, e.v, nil, func(o *gateway.Options) {
		o.Audit = e.events
		if edit != nil {
			edit(o)
		}
	}, e.fake.upstream("openai", "openai", "gpt-*"))
	return e
}

// dial opens a Responses WebSocket to the gateway with key, as Codex does.
func (e *wsEnv) dial(t *testing.T, key string) *websocket.Conn {
	t.Helper()
	conn, resp, err := e.try(key)
	if err != nil {
		t.Fatalf("dial: %v (status %v)", err, resp)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func (e *wsEnv) try(key string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	h.Set("OpenAI-Beta", codexBeta)
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.g.url, "http")+"/v1/responses", &websocket.DialOptions{HTTPHeader: h})
	if conn != nil {
		conn.SetReadLimit(64 << 20)
	}
	return conn, resp, err
}

// wsEvent is an event received on the socket, and the message as sent.
type wsEvent struct {
	Type     string          `json:"type"`
	Delta    string          `json:"delta"`
	Status   int             `json:"status"`
	Error    json.RawMessage `json:"error"`
	Response struct {
		ID    string `json:"id"`
		Usage *struct {
			InputTokens  int64 `json:"input_tokens"`
			OutputTokens int64 `json:"output_tokens"`
		} `json:"usage"`
	} `json:"response"`
	raw string
}

// create sends a response.create event and reads the answer's events up
// to its last (response.completed or error).
func create(t *testing.T, conn *websocket.Conn, event string) []wsEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(event)); err != nil {
		t.Fatalf("send: %v", err)
	}
	var evs []wsEvent
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d events: %v", len(evs), err)
		}
		if typ != websocket.MessageText {
			t.Fatalf("a binary message")
		}
		var ev wsEvent
		if err := json.Unmarshal(msg, &ev); err != nil {
			t.Fatalf("a message is not JSON (%v): %s", err, msg)
		}
		ev.raw = string(msg)
		evs = append(evs, ev)
		if ev.Type == "response.completed" || ev.Type == "error" {
			return evs
		}
	}
}

// text joins the answer's text deltas.
func text(evs []wsEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == "response.output_text.delta" {
			b.WriteString(ev.Delta)
		}
	}
	return b.String()
}

// closedWith reads until the gateway closes the socket and returns the
// close code and reason.
func closedWith(t *testing.T, conn *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("the socket ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	}
}

// apiError is the error object of an error event.
func apiError(t *testing.T, ev wsEvent) (code, msg string) {
	t.Helper()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Type    string `json:"type"`
	}
	if ev.Type != "error" || json.Unmarshal(ev.Error, &e) != nil || e.Type == "" || e.Message == "" {
		t.Fatalf("not an error event in OpenAI's shape: %s", ev.raw)
	}
	return e.Code, e.Message
}

// turnEvents are the audit events of the responses served on a socket.
func turnEvents(evs []audit.Event) []audit.Event {
	var out []audit.Event
	for _, ev := range evs {
		if ev.Resource == "POST /v1/responses" && ev.Fields["transport"] == "websocket" {
			out = append(out, ev)
		}
	}
	return out
}

// TestResponsesWebSocket: Codex's WebSocket mode through keygate, to a
// provider that speaks it and to one that does not. Two responses on one
// socket, the second continuing the first unstored (store: false), which
// only a provider WebSocket kept open across turns can serve; each is
// metered from its response.completed event and audited with its usage;
// the provider sees the real key on one upgrade and the client's events
// without "stream", the client never sees the real key.
func TestResponsesWebSocket(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fo    fakeprovider.Options
		store string // the first response's store setting
	}{
		{"provider WebSocket", fakeprovider.Options{}, "false"},
		{"provider without WebSocket mode: HTTP streams", fakeprovider.Options{NoWebSocket: true}, "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newWSEnv(t, tc.fo, nil)
			key := e.keys.issue("codex", nil)
			conn := e.dial(t, key)
			first := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","store":`+tc.store+`,"input":[{"role":"user","content":[{"type":"input_text","text":"say hello to me"}]}]}`)
			if got := text(first); got != e.fake.ReplyText() {
				t.Fatalf("the first answer's text is %q, want %q", got, e.fake.ReplyText())
			}
			if first[0].Type != "response.created" || first[len(first)-1].Type != "response.completed" {
				t.Fatalf("the events run from %s to %s", first[0].Type, first[len(first)-1].Type)
			}
			id := first[0].Response.ID
			second := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","previous_response_id":"`+id+`","input":"and again"}`)
			last := second[len(second)-1]
			if last.Type != "response.completed" || last.Response.Usage == nil {
				t.Fatalf("the second answer did not complete: %s", last.raw)
			}
			for _, ev := range append(first, second...) {
				if strings.Contains(ev.raw, e.fake.key) {
					t.Fatalf("the real key reached the client: %s", ev.raw)
				}
			}
			conn.Close(websocket.StatusNormalClosure, "")

			var upgrades, frames, posts int
			for _, s := range e.fake.Requests() {
				if got := s.Header.Get("Authorization"); got != "Bearer "+e.fake.key {
					t.Fatalf("the provider saw Authorization %q", got)
				}
				switch s.Method {
				case http.MethodGet:
					upgrades++
				case fakeprovider.WebSocketMethod:
					frames++
					if s.Header.Get("Openai-Beta") != codexBeta || strings.Contains(string(s.Body), `"stream"`) || !strings.Contains(string(s.Body), `"type":"response.create"`) {
						t.Fatalf("the provider got the event %s with headers %v", s.Body, s.Header)
					}
				case http.MethodPost:
					posts++
					if !strings.Contains(string(s.Body), `"stream":true`) || strings.Contains(string(s.Body), "response.create") {
						t.Fatalf("the provider got the POST %s", s.Body)
					}
				}
			}
			if tc.fo.NoWebSocket {
				if frames != 0 || posts != 2 {
					t.Fatalf("%d events and %d POSTs upstream, want 0 and 2", frames, posts)
				}
			} else if upgrades != 1 || frames != 2 || posts != 0 {
				t.Fatalf("%d upgrades, %d events and %d POSTs upstream, want 1, 2 and 0", upgrades, frames, posts)
			}

			turns := waitTurns(t, e.events, 2)
			for i, ev := range turns {
				want := first[len(first)-1].Response.Usage
				if i == 1 {
					want = last.Response.Usage
				}
				if ev.Decision != "allow" || ev.KeyID != "key_codex" || ev.Fields["model"] != "gpt-4o-mini" ||
					ev.Fields["input_tokens"] != itoa(want.InputTokens) || ev.Fields["output_tokens"] != itoa(want.OutputTokens) {
					t.Fatalf("turn %d's audit event: %+v, want usage %+v", i, ev, *want)
				}
			}
			if turns[0].Fields["response_id"] != id {
				t.Fatalf("the first turn's event names response %q, want %q", turns[0].Fields["response_id"], id)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// waitTurns waits for n audit events of WebSocket responses: a turn's
// event is recorded as its answer ends, just after its last message.
func waitTurns(t *testing.T, l *eventLog, n int) []audit.Event {
	t.Helper()
	return waitEvents(t, l, n, "responses", turnEvents)
}

// waitEvents waits for n request events that pick chooses, what names
// them in a failure.
func waitEvents(t *testing.T, l *eventLog, n int, what string, pick func([]audit.Event) []audit.Event) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := pick(l.of("request"))
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d audit events of %s, want %d", len(got), what, n)
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestResponsesWebSocketRefusals: a refusal is an error event in OpenAI's
// shape, then a close frame with a policy code, and nothing goes upstream
// for it: a model outside the key's scope (nothing reaches the provider,
// not even the upgrade), a key revoked while its socket is open (the next
// response.create is refused), a bad key (refused before the upgrade).
func TestResponsesWebSocketRefusals(t *testing.T) {
	t.Run("model outside the key's scope", func(t *testing.T) {
		e := newWSEnv(t, fakeprovider.Options{}, nil)
		key := e.keys.issue("mini-only", func(k *store.Key) { k.AllowModels = []string{"gpt-4o-mini"} })
		conn := e.dial(t, key)
		evs := create(t, conn, `{"type":"response.create","model":"gpt-4o","input":"hi"}`)
		if len(evs) != 1 || evs[0].Status != http.StatusForbidden {
			t.Fatalf("answer: %+v", evs)
		}
		if code, msg := apiError(t, evs[0]); code != "model_not_allowed" || !strings.Contains(msg, "gpt-4o") {
			t.Fatalf("error %q: %s", code, msg)
		}
		if code, reason := closedWith(t, conn); code != websocket.StatusPolicyViolation || reason != "model_not_allowed" {
			t.Fatalf("closed with %d %q", code, reason)
		}
		if n := e.fake.RequestCount(); n != 0 {
			t.Fatalf("%d requests reached the provider", n)
		}
		turns := waitTurns(t, e.events, 1)
		if turns[0].Decision != "deny" || turns[0].Reasons[0] != "model_not_allowed" {
			t.Fatalf("audit: %+v", turns[0])
		}
	})
	t.Run("key revoked mid-connection", func(t *testing.T) {
		e := newWSEnv(t, fakeprovider.Options{}, nil)
		key := e.keys.issue("codex", nil)
		conn := e.dial(t, key)
		if evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`); evs[len(evs)-1].Type != "response.completed" {
			t.Fatalf("the first response: %s", evs[len(evs)-1].raw)
		}
		if _, err := e.keys.st.RevokeKey(context.Background(), "key_codex", gatewayNow.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		e.v.Invalidate("key_codex") // what the revocation notice does on every node
		evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi again"}`)
		if len(evs) != 1 || evs[0].Status != http.StatusUnauthorized {
			t.Fatalf("answer after revocation: %+v", evs)
		}
		if code, _ := apiError(t, evs[0]); code != "revoked_api_key" {
			t.Fatalf("error code %q", code)
		}
		if code, reason := closedWith(t, conn); code != websocket.StatusPolicyViolation || reason != "revoked_api_key" {
			t.Fatalf("closed with %d %q", code, reason)
		}
		frames := 0
		for _, s := range e.fake.Requests() {
			if s.Method == fakeprovider.WebSocketMethod {
				frames++
			}
		}
		if frames != 1 {
			t.Fatalf("%d events reached the provider, want 1", frames)
		}
	})
	t.Run("paths: the upgrade is the door to POST /v1/responses", func(t *testing.T) {
		e := newWSEnv(t, fakeprovider.Options{}, nil)
		chatOnly := e.keys.issue("chat-only", func(k *store.Key) { k.AllowPaths = []string{"POST /v1/chat/completions"} })
		if _, resp, err := e.try(chatOnly); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial with a key that may not call POST /v1/responses: %v %v", err, resp)
		}
		responsesOnly := e.keys.issue("responses-only", func(k *store.Key) { k.AllowPaths = []string{"POST /v1/responses"} })
		conn := e.dial(t, responsesOnly)
		if evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`); evs[len(evs)-1].Type != "response.completed" {
			t.Fatalf("a key that may call POST /v1/responses: %s", evs[len(evs)-1].raw)
		}
	})
	t.Run("bad key: no upgrade", func(t *testing.T) {
		e := newWSEnv(t, fakeprovider.Options{}, nil)
		_, resp, err := e.try("kg_live_notakey")
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial with a bad key: %v %v", err, resp)
		}
		if e.fake.RequestCount() != 0 {
			t.Fatal("the provider was reached")
		}
	})
}

// TestResponsesWebSocketKeepsTheRealKey: a provider that echoes the key it
// was sent (here refusing it) never shows it to the client: the upgrade
// refused, keygate sends the turn over HTTP, whose answer is scrubbed, and
// the client gets the provider's error as an error event on a socket that
// stays open.
func TestResponsesWebSocketKeepsTheRealKey(t *testing.T) {
	ks := newKeys(t)
	f := newFake(t, "openai", fakeprovider.Options{EchoKeyInErrors: true})
	wrong := upstreamKey(t, "stale")
	up := upstreamAt("openai", "openai", f.url+"/v1", wrong, "gpt-*")
	e := &wsEnv{keys: ks, v: ks.verifier(), fake: f, events: &eventLog{}}
	e.g = newGatewayWith(t, e.v, nil, func(o *gateway.Options) { o.Audit = e.events }, up)
	conn := e.dial(t, ks.issue("codex", nil))
	evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`)
	if len(evs) != 1 || evs[0].Status != http.StatusUnauthorized {
		t.Fatalf("answer: %+v", evs)
	}
	if strings.Contains(evs[0].raw, wrong) {
		t.Fatalf("the real key reached the client: %s", evs[0].raw)
	}
	if code, _ := apiError(t, evs[0]); code != "invalid_api_key" {
		t.Fatalf("error code %q", code)
	}
	// The socket stays open after a provider's error.
	evs = create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`)
	if evs[0].Status != http.StatusUnauthorized || strings.Contains(evs[0].raw, wrong) {
		t.Fatalf("the second answer: %s", evs[0].raw)
	}
}

// TestResponsesWebSocketRedactsCredentials: a vault value the model
// streams a few characters per delta reaches the client redacted, over a
// provider WebSocket and over HTTP streams alike, every message valid
// JSON, and the turn's audit event says so.
func TestResponsesWebSocketRedactsCredentials(t *testing.T) {
	vaultValue := "db-password-" + upstreamKey(t, "ws")
	reply := "Sure: connect with " + vaultValue + " and retry."
	for _, noWS := range []bool{false, true} {
		t.Run(map[bool]string{false: "provider WebSocket", true: "HTTP streams"}[noWS], func(t *testing.T) {
			e := newWSEnv(t, fakeprovider.Options{ReplyText: reply, Chunks: len(reply) / 3, NoWebSocket: noWS}, func(o *gateway.Options) {
				o.Leaks = &gateway.LeakOptions{Action: func(leak.Hit) leak.Action { return leak.ActionBlock }}
			})
			m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/payments-db", Value: secret.New(vaultValue)}}})
			if err != nil {
				t.Fatal(err)
			}
			e.g.SetLeakMatcher(m)
			conn := e.dial(t, e.keys.issue("codex", nil))
			evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`)
			if got, want := text(evs), "Sure: connect with [REDACTED:vault-value] and retry."; got != want {
				t.Fatalf("the streamed text reads %q, want %q", got, want)
			}
			for _, ev := range evs {
				if strings.Contains(ev.raw, vaultValue) {
					t.Fatalf("the value reached the client: %s", ev.raw)
				}
			}
			f := waitTurns(t, e.events, 1)[0].Fields
			if f["answer_text_leak_action"] != "redact" || f["answer_text_leak_values"] != "secret/payments-db" {
				t.Fatalf("audit fields: %v", f)
			}
		})
	}
}

// TestResponsesWebSocketProviderBreaksOff: a provider socket that dies in
// the middle of an answer leaves no client waiting: it gets an error event
// (502) after the events that came, the socket stays open, and the next
// response.create reaches the provider on a new upstream socket.
func TestResponsesWebSocketProviderBreaksOff(t *testing.T) {
	upgrades := make(chan string, 4)
	upstream := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrades <- r.Header.Get("Authorization")
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		if _, _, err := conn.Read(r.Context()); err != nil {
			return
		}
		_ = conn.Write(r.Context(), websocket.MessageText, []byte(`{"type":"response.created","sequence_number":0,"response":{"id":"resp_cut","object":"response","status":"in_progress"}}`))
		// and the connection drops
	}))
	ks := newKeys(t)
	realKey := upstreamKey(t, "cut")
	g := newGatewayWith(t, ks.verifier(), nil, nil, upstreamAt("openai", "openai", upstream.URL+"/v1", realKey, "gpt-*"))
	e := &wsEnv{g: g, keys: ks}
	conn := e.dial(t, ks.issue("codex", nil))
	for turn := range 2 {
		evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`)
		if len(evs) != 2 || evs[0].Type != "response.created" || evs[1].Status != http.StatusBadGateway {
			t.Fatalf("turn %d: %+v", turn, evs)
		}
		if code, _ := apiError(t, evs[1]); code != "upstream_stream_ended" {
			t.Fatalf("turn %d: error code %q", turn, code)
		}
		if auth := <-upgrades; auth != "Bearer "+realKey {
			t.Fatalf("the provider saw Authorization %q", auth)
		}
	}
}

// TestResponsesWebSocketWithTheSDK: the official OpenAI Go SDK's
// Responses WebSocket client works through keygate unchanged: a response,
// then one continuing it unstored on the same socket; a model outside the
// key's scope is the SDK's typed error event, with the status and code.
func TestResponsesWebSocketWithTheSDK(t *testing.T) {
	e := newWSEnv(t, fakeprovider.Options{}, nil)
	key := e.keys.issue("sdk", func(k *store.Key) { k.AllowModels = []string{"gpt-4o-mini"} })
	client := openai.NewClient(option.WithBaseURL(e.g.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := client.Responses.Connect(ctx, responses.ResponseConnectionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Create(ctx, responses.ResponsesClientEventResponseCreateParam{Model: "gpt-4o-mini", Store: openai.Bool(false),
		Input: responses.ResponsesClientEventResponseCreateInputUnionParam{OfString: openai.String("hello")}}); err != nil {
		t.Fatal(err)
	}
	first, err := conn.FinalResponse(ctx)
	if err != nil || first.OutputText() != e.fake.ReplyText() || first.Usage.OutputTokens == 0 {
		t.Fatalf("first response: %v %+v", err, first)
	}
	if err := conn.Create(ctx, responses.ResponsesClientEventResponseCreateParam{Model: "gpt-4o-mini", PreviousResponseID: openai.String(first.ID),
		Input: responses.ResponsesClientEventResponseCreateInputUnionParam{OfString: openai.String("more")}}); err != nil {
		t.Fatal(err)
	}
	if second, err := conn.FinalResponse(ctx); err != nil || second.Status != responses.ResponseStatusCompleted {
		t.Fatalf("second response: %v %+v", err, second)
	}
	if err := conn.Create(ctx, responses.ResponsesClientEventResponseCreateParam{Model: "gpt-4o",
		Input: responses.ResponsesClientEventResponseCreateInputUnionParam{OfString: openai.String("hi")}}); err != nil {
		t.Fatal(err)
	}
	_, err = conn.FinalResponse(ctx)
	var pe *responses.ResponseProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("a refused model: %v", err)
	}
	var ev wsEvent
	if json.Unmarshal([]byte(pe.Event.RawJSON()), &ev) != nil || ev.Status != http.StatusForbidden {
		t.Fatalf("the error event: %s", pe.Event.RawJSON())
	}
	ev.raw = pe.Event.RawJSON()
	if code, _ := apiError(t, ev); code != "model_not_allowed" {
		t.Fatalf("error code %q", code)
	}
}

// TestResponsesWebSocketLimits: a key's limits hold per response on a
// socket, as for HTTP calls: when its rate limit or its spend budget
// refuses a response.create, the client gets the error event (429, with
// the limit's code) and a close frame saying to try again later (1013),
// and nothing of that response goes upstream.
func TestResponsesWebSocketLimits(t *testing.T) {
	event := `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`
	// What keygate reserves for it: the body it sends, a quarter token a
	// byte, and the default 100 output tokens, at $1 and $2 a million.
	est := pricing.USD(1, 2).Cost(int64(len(`{"stream":true,"model":"gpt-4o-mini","input":"hi"}`)+3)/4, 100)
	for _, tc := range []struct {
		name, code string
		limits     adminapi.Limits
	}{
		{"rate limit", "rate_limit_exceeded", adminapi.Limits{RPM: 1}},
		{"spend budget", "budget_exceeded", adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: est, Period: adminapi.PeriodTotal}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimited(t, fakeprovider.Options{}, nil)
			e := &wsEnv{g: l.gw, keys: l.keys}
			conn := e.dial(t, l.key(t, "codex", tc.limits))
			if evs := create(t, conn, event); evs[len(evs)-1].Type != "response.completed" {
				t.Fatalf("the first response: %s", evs[len(evs)-1].raw)
			}
			evs := create(t, conn, event)
			if len(evs) != 1 || evs[0].Status != http.StatusTooManyRequests {
				t.Fatalf("the second response: %+v", evs)
			}
			if code, _ := apiError(t, evs[0]); code != tc.code {
				t.Fatalf("error code %q, want %q", code, tc.code)
			}
			if code, reason := closedWith(t, conn); code != websocket.StatusTryAgainLater || reason != tc.code {
				t.Fatalf("closed with %d %q", code, reason)
			}
			frames := 0
			for _, s := range l.up.Requests() {
				if s.Method == fakeprovider.WebSocketMethod {
					frames++
				}
			}
			if frames != 1 {
				t.Fatalf("%d responses reached the provider, want 1", frames)
			}
		})
	}
}

// TestResponsesWebSocketTimeouts: a socket left idle is closed normally;
// one past its lifetime gets OpenAI's websocket_connection_limit_reached
// error event first, which Codex reads as "open a new connection".
func TestResponsesWebSocketTimeouts(t *testing.T) {
	e := newWSEnv(t, fakeprovider.Options{}, func(o *gateway.Options) {
		o.ResponsesWS = gateway.ResponsesWSOptions{IdleTimeout: 150 * time.Millisecond, MaxLifetime: time.Hour}
	})
	conn := e.dial(t, e.keys.issue("idle", nil))
	if code, _ := closedWith(t, conn); code != websocket.StatusNormalClosure {
		t.Fatalf("an idle socket closed with %d", code)
	}

	e = newWSEnv(t, fakeprovider.Options{}, func(o *gateway.Options) {
		o.ResponsesWS = gateway.ResponsesWSOptions{MaxLifetime: 300 * time.Millisecond}
	})
	conn = e.dial(t, e.keys.issue("old", nil))
	if evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`); evs[len(evs)-1].Type != "response.completed" {
		t.Fatalf("a response within the lifetime: %s", evs[len(evs)-1].raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, msg, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("no error event before the close: %v", err)
	}
	var ev wsEvent
	_ = json.Unmarshal(msg, &ev)
	ev.raw = string(msg)
	if code, _ := apiError(t, ev); code != "websocket_connection_limit_reached" {
		t.Fatalf("error code %q", code)
	}
	if code, _ := closedWith(t, conn); code != websocket.StatusNormalClosure {
		t.Fatalf("closed with %d", code)
	}
}

// TestResponsesWebSocketSlowClient: a client that stops reading does not
// make keygate hold the answer: once a message has waited WriteTimeout,
// keygate closes the socket, the provider is held back meanwhile (no
// read-ahead beyond a few messages), and the response still ends on the
// audit trail instead of hanging.
func TestResponsesWebSocketSlowClient(t *testing.T) {
	// About 30 MiB of events (the text, then whole copies of it in the
	// closing events): more than the socket buffers between them hold.
	e := newWSEnv(t, fakeprovider.Options{ReplyBytes: 6 << 20, Chunks: 600}, func(o *gateway.Options) {
		o.ResponsesWS = gateway.ResponsesWSOptions{WriteTimeout: 300 * time.Millisecond}
	})
	conn := e.dial(t, e.keys.issue("slow", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	turns := waitTurns(t, e.events, 1) // the turn ends while the client reads nothing
	if turns[0].Fields["status"] != "200" {
		t.Fatalf("the turn's event: %+v", turns[0])
	}
	// What the client then reads stops short of the answer's end.
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			break
		}
		if bytes.HasPrefix(msg, []byte(`{"type":"response.completed"`)) {
			t.Fatal("the whole answer was held for a client that did not read")
		}
	}
}

// TestResponsesWebSocketPings: keygate pings its clients; one that
// answers (any client that reads does) keeps its socket through many
// pings and gets its response, one whose pongs never come back (its reads
// stopped) is closed.
func TestResponsesWebSocketPings(t *testing.T) {
	e := newWSEnv(t, fakeprovider.Options{}, func(o *gateway.Options) {
		o.ResponsesWS = gateway.ResponsesWSOptions{PingInterval: 50 * time.Millisecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	live := e.dial(t, e.keys.issue("live", nil))
	msgs := make(chan []byte, 64)
	go func() {
		defer close(msgs)
		for {
			_, msg, err := live.Read(ctx)
			if err != nil {
				return
			}
			msgs <- msg
		}
	}()
	silent := e.dial(t, e.keys.issue("silent", nil))
	time.Sleep(500 * time.Millisecond) // ten pings
	if err := live.Write(ctx, websocket.MessageText, []byte(`{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`)); err != nil {
		t.Fatalf("the live socket after pings: %v", err)
	}
	completed := false
	for msg := range msgs {
		if completed = bytes.HasPrefix(msg, []byte(`{"type":"response.completed"`)); completed {
			break
		}
	}
	if !completed {
		t.Fatal("no response on the live socket")
	}
	_, _, err := silent.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "no answer to ping" {
		t.Fatalf("a client that never answered pings: %v", err)
	}
}

// TestResponsesWebSocketConnectionsPerKey: a key holds at most MaxPerKey
// sockets on a node; one more is refused before the upgrade with a 429
// in OpenAI's shape, another key is not affected, and a closed socket
// frees its place.
func TestResponsesWebSocketConnectionsPerKey(t *testing.T) {
	e := newWSEnv(t, fakeprovider.Options{}, func(o *gateway.Options) {
		o.ResponsesWS = gateway.ResponsesWSOptions{MaxPerKey: 2}
	})
	key := e.keys.issue("codex", nil)
	first := e.dial(t, key)
	e.dial(t, key)
	conn, resp, err := e.try(key)
	if err == nil {
		conn.CloseNow()
		t.Fatal("a third socket of the key was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the third socket: %v %v", resp, err)
	}
	// Another key has places of its own.
	e.dial(t, e.keys.issue("other", nil))
	// The first socket works, and once closed frees a place.
	if evs := create(t, first, `{"type":"response.create","model":"gpt-4o-mini","input":"hi"}`); evs[len(evs)-1].Type != "response.completed" {
		t.Fatalf("the first socket: %s", evs[len(evs)-1].raw)
	}
	first.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, resp, err := e.try(key)
		if err == nil {
			conn.CloseNow()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed socket did not free its place: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResponsesWebSocketCompression: permessage-deflate is negotiated
// with a client that offers it and offered to the provider; answers come
// through compressed sockets intact; a message that inflates past the
// body limit is refused with 1009 and never reaches the provider, however
// small it was on the wire.
func TestResponsesWebSocketCompression(t *testing.T) {
	e := newWSEnv(t, fakeprovider.Options{WebSocketCompression: true}, func(o *gateway.Options) { o.MaxBodyBytes = 1 << 20 })
	key := e.keys.issue("codex", nil)
	dial := func() (*websocket.Conn, *http.Response) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h := http.Header{}
		h.Set("Authorization", "Bearer "+key)
		h.Set("OpenAI-Beta", codexBeta)
		conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.g.url, "http")+"/v1/responses",
			&websocket.DialOptions{HTTPHeader: h, CompressionMode: websocket.CompressionNoContextTakeover})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		conn.SetReadLimit(64 << 20)
		return conn, resp
	}
	conn, resp := dial()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("keygate did not accept permessage-deflate: %q", ext)
	}
	// A long, repetitive context, as an agent resends each turn.
	long := strings.Repeat("the same file contents again and again. ", 2000)
	evs := create(t, conn, `{"type":"response.create","model":"gpt-4o-mini","input":"`+long+`"}`)
	if last := evs[len(evs)-1]; last.Type != "response.completed" || text(evs) == "" {
		t.Fatalf("a compressed turn: %s", last.raw)
	}
	offered := false
	for _, s := range e.fake.Requests() {
		offered = offered || s.Method == fakeprovider.WebSocketMethod && strings.Contains(s.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate")
	}
	if !offered {
		t.Error("keygate did not offer permessage-deflate to the provider")
	}
	before := e.fake.RequestCount()
	// 8 MiB of one letter deflates to a few KiB.
	bomb := `{"type":"response.create","model":"gpt-4o-mini","input":"` + strings.Repeat("a", 8<<20) + `"}`
	conn, _ = dial()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(bomb)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if code, _ := closedWith(t, conn); code != websocket.StatusMessageTooBig {
		t.Fatalf("an inflating message closed the socket with %d, want 1009", code)
	}
	if n := e.fake.RequestCount(); n != before {
		t.Fatalf("the oversized message reached the provider (%d requests, %d before)", n, before)
	}
}
