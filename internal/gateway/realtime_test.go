package gateway_test

import (
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
	"github.com/openai/openai-go/v3/realtime"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// realtimeModels are the fake's models: a Realtime model among them.
func realtimeModels() []string {
	return append(fakeprovider.DefaultOpenAIModels(), "gpt-realtime")
}

// connectRealtime opens a Realtime session through keygate with the
// official OpenAI SDK.
func connectRealtime(t *testing.T, gwURL, key, model string) (*realtime.RealtimeConnection, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := openai.NewClient(option.WithBaseURL("ws"+strings.TrimPrefix(gwURL, "http")+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	conn, err := client.Realtime.Connect(ctx, realtime.RealtimeConnectionOptions{}, option.WithQuery("model", model))
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, err
}

// rtEvent is what these tests read of a server event.
type rtEvent struct {
	Type     string `json:"type"`
	Delta    string `json:"delta"`
	Status   int    `json:"status"`
	Response struct {
		ID    string `json:"id"`
		Usage *struct {
			InputTokens  int64 `json:"input_tokens"`
			OutputTokens int64 `json:"output_tokens"`
		} `json:"usage"`
	} `json:"response"`
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	raw string
}

// recvUntil reads events until one of type last, or an error event.
func recvUntil(t *testing.T, conn *realtime.RealtimeConnection, last string) []rtEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var evs []rtEvent
	for {
		raw, err := conn.RecvRaw(ctx)
		if err != nil {
			t.Fatalf("receive after %d events: %v", len(evs), err)
		}
		var ev rtEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("not JSON: %s", raw)
		}
		ev.raw = string(raw)
		evs = append(evs, ev)
		if ev.Type == last || ev.Type == "error" {
			return evs
		}
	}
}

func rtText(evs []rtEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == "response.output_text.delta" {
			b.WriteString(ev.Delta)
		}
	}
	return b.String()
}

// realtimeEvents are the audit events of a session's responses.
func realtimeEvents(evs []audit.Event) []audit.Event {
	var out []audit.Event
	for _, ev := range evs {
		if ev.Resource == "POST /v1/realtime" {
			out = append(out, ev)
		}
	}
	return out
}

func waitRealtime(t *testing.T, l *eventLog, n int) []audit.Event {
	t.Helper()
	return waitEvents(t, l, n, "Realtime responses", realtimeEvents)
}

// TestRealtimeThroughKeygate: the official SDK's Realtime session through
// keygate. A response the client asks for and one the provider starts on
// its own (server voice detection after an audio commit) each come back
// whole, each is one audited call with the usage of its response.done;
// the provider sees the real key on its upgrade and never the client's,
// and the client never sees the real key.
func TestRealtimeThroughKeygate(t *testing.T) {
	e := newWSEnv(t, fakeprovider.Options{Models: realtimeModels()}, nil)
	key := e.keys.issue("voice", nil)
	conn, err := connectRealtime(t, e.g.url, key, "gpt-realtime")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ctx := context.Background()
	if evs := recvUntil(t, conn, "session.created"); evs[len(evs)-1].Type != "session.created" {
		t.Fatalf("first event: %s", evs[len(evs)-1].raw)
	}
	must := func(ev realtime.RealtimeClientEventUnionParam) {
		t.Helper()
		if err := conn.Send(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	must(realtime.RealtimeClientEventUnionParam{OfSessionUpdate: &realtime.SessionUpdateEventParam{
		Session: realtime.SessionUpdateEventSessionUnionParam{OfRealtime: &realtime.RealtimeSessionCreateRequestParam{Instructions: openai.String("be brief")}}}})
	recvUntil(t, conn, "session.updated")
	must(realtime.RealtimeClientEventUnionParam{OfConversationItemCreate: &realtime.ConversationItemCreateEventParam{
		Item: realtime.ConversationItemUnionParam{OfRealtimeUserMessageItem: &realtime.RealtimeConversationItemUserMessageParam{
			Content: []realtime.RealtimeConversationItemUserMessageContentParam{{Type: "input_text", Text: openai.String("say hello")}}}}}})
	recvUntil(t, conn, "conversation.item.created")
	must(realtime.RealtimeClientEventUnionParam{OfResponseCreate: &realtime.ResponseCreateEventParam{}})
	first := recvUntil(t, conn, "response.done")
	if got := rtText(first); got != e.fake.ReplyText() {
		t.Fatalf("the answer's text is %q, want %q", got, e.fake.ReplyText())
	}
	// Audio, committed: the provider starts the next response itself.
	must(realtime.RealtimeClientEventUnionParam{OfInputAudioBufferAppend: &realtime.InputAudioBufferAppendEventParam{Audio: strings.Repeat("AAAA", 512)}})
	must(realtime.RealtimeClientEventUnionParam{OfInputAudioBufferCommit: &realtime.InputAudioBufferCommitEventParam{}})
	second := recvUntil(t, conn, "response.done")
	if last := second[len(second)-1]; last.Type != "response.done" || last.Response.Usage == nil {
		t.Fatalf("the provider's own response: %s", last.raw)
	}
	for _, ev := range append(first, second...) {
		if strings.Contains(ev.raw, e.fake.key) {
			t.Fatalf("the real key reached the client: %s", ev.raw)
		}
	}
	events := waitRealtime(t, e.events, 2)
	for i, ev := range events {
		if ev.Decision != "allow" || ev.Fields["input_tokens"] == "" || ev.Fields["input_tokens"] == "0" || ev.Fields["output_tokens"] == "" {
			t.Errorf("response %d's audit event: %+v", i, ev)
		}
	}
	upgrades := 0
	for _, s := range e.fake.Requests() {
		if got := s.Header.Get("Authorization"); got != "Bearer "+e.fake.key {
			t.Fatalf("the provider saw Authorization %q", got)
		}
		if s.Method == http.MethodGet {
			upgrades++
			if s.Path != fakeprovider.RealtimePath || s.RawQuery != "model=gpt-realtime" {
				t.Fatalf("the provider's session was opened at %s?%s", s.Path, s.RawQuery)
			}
		}
	}
	if upgrades != 1 {
		t.Fatalf("%d provider sessions, want 1", upgrades)
	}
}

// closedRealtime reads until keygate ends the session and returns its
// close code.
func closedRealtime(t *testing.T, conn *realtime.RealtimeConnection) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := conn.RecvRaw(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if code := websocket.CloseStatus(err); code != -1 {
			return code
		}
		t.Fatalf("the session ended without a close frame: %v", err)
	}
}

// TestRealtimeRefusals: a refused response is an error event in OpenAI's
// shape and a close frame, and what was refused never reaches the
// provider: a spent budget, a revoked key, a credential in a
// conversation item; a response the provider started itself past the
// key's rate limit is cancelled at once. Refusals before the session
// are HTTP answers, and open nothing upstream.
func TestRealtimeRefusals(t *testing.T) {
	responseCreates := func(f *fake) int {
		n := 0
		for _, s := range f.Requests() {
			if s.Method == fakeprovider.WebSocketMethod && strings.Contains(string(s.Body), `"response.create"`) {
				n++
			}
		}
		return n
	}
	item := `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}}`
	send := func(t *testing.T, conn *realtime.RealtimeConnection, raw string) {
		t.Helper()
		if err := conn.SendRaw(context.Background(), json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("budget spent", func(t *testing.T) {
		l := newLimited(t, fakeprovider.Options{Models: realtimeModels()}, nil)
		key := l.key(t, "voice", adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: 300, Period: adminapi.PeriodTotal}}})
		conn, err := connectRealtime(t, l.url, key, "gpt-4o-mini")
		if err != nil {
			t.Fatal(err)
		}
		recvUntil(t, conn, "session.created")
		send(t, conn, item)
		recvUntil(t, conn, "conversation.item.created")
		var last rtEvent
		asked := 0
		for ; asked < 10 && last.Type != "error"; asked++ {
			send(t, conn, `{"type":"response.create"}`)
			evs := recvUntil(t, conn, "response.done")
			last = evs[len(evs)-1]
		}
		if last.Type != "error" || last.Status != http.StatusTooManyRequests || last.Error.Code != "budget_exceeded" {
			t.Fatalf("the response past the budget: %s", last.raw)
		}
		if code := closedRealtime(t, conn); code != websocket.StatusTryAgainLater {
			t.Fatalf("closed with %d, want 1013", code)
		}
		if n := responseCreates(l.up); n != asked-1 || n == 0 {
			t.Fatalf("%d of %d response.create events reached the provider; the refused one must not", n, asked)
		}
	})
	t.Run("key revoked mid-session", func(t *testing.T) {
		e := newWSEnv(t, fakeprovider.Options{Models: realtimeModels()}, nil)
		key := e.keys.issue("voice", nil)
		conn, err := connectRealtime(t, e.g.url, key, "gpt-realtime")
		if err != nil {
			t.Fatal(err)
		}
		recvUntil(t, conn, "session.created")
		send(t, conn, `{"type":"response.create"}`)
		recvUntil(t, conn, "response.done")
		if _, err := e.keys.st.RevokeKey(context.Background(), "key_voice", gatewayNow.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		e.v.Invalidate("key_voice")
		send(t, conn, `{"type":"response.create"}`)
		evs := recvUntil(t, conn, "response.done")
		if last := evs[len(evs)-1]; last.Type != "error" || last.Status != http.StatusUnauthorized || last.Error.Code != "revoked_api_key" {
			t.Fatalf("after revocation: %s", last.raw)
		}
		if code := closedRealtime(t, conn); code != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %d, want 1008", code)
		}
		if n := responseCreates(e.fake); n != 1 {
			t.Fatalf("%d response.create events reached the provider, want 1", n)
		}
	})
	t.Run("a response the provider starts past the rate limit", func(t *testing.T) {
		l := newLimited(t, fakeprovider.Options{Models: realtimeModels()}, nil)
		key := l.key(t, "voice", adminapi.Limits{RPM: 1})
		conn, err := connectRealtime(t, l.url, key, "gpt-4o-mini")
		if err != nil {
			t.Fatal(err)
		}
		recvUntil(t, conn, "session.created")
		send(t, conn, `{"type":"response.create"}`)
		recvUntil(t, conn, "response.done")
		send(t, conn, `{"type":"input_audio_buffer.append","audio":"`+strings.Repeat("AAAA", 256)+`"}`)
		send(t, conn, `{"type":"input_audio_buffer.commit"}`)
		var sawError bool
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			raw, err := conn.RecvRaw(ctx)
			if err != nil {
				break
			}
			var ev rtEvent
			json.Unmarshal(raw, &ev)
			if ev.Type == "error" {
				sawError = ev.Status == http.StatusTooManyRequests && ev.Error.Code == "rate_limit_exceeded"
			}
		}
		if !sawError {
			t.Fatal("no rate-limit error event for the response the provider started")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			cancelled := false
			for _, s := range l.up.Requests() {
				cancelled = cancelled || s.Method == fakeprovider.WebSocketMethod && strings.Contains(string(s.Body), `"response.cancel"`)
			}
			if cancelled {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("keygate did not cancel the response it refused")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("credential in a conversation item", func(t *testing.T) {
		vaultValue := "db-password-" + upstreamKey(t, "rt")
		e := newWSEnv(t, fakeprovider.Options{Models: realtimeModels()}, func(o *gateway.Options) {
			o.Leaks = &gateway.LeakOptions{Action: func(leak.Hit) leak.Action { return leak.ActionBlock }}
		})
		m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/payments-db", Value: secret.New(vaultValue)}}})
		if err != nil {
			t.Fatal(err)
		}
		e.g.SetLeakMatcher(m)
		key := e.keys.issue("voice", nil)
		conn, err := connectRealtime(t, e.g.url, key, "gpt-realtime")
		if err != nil {
			t.Fatal(err)
		}
		recvUntil(t, conn, "session.created")
		leaked := strings.Replace(item, `"hi"`, `"my key is `+vaultValue+`"`, 1)
		send(t, conn, leaked)
		evs := recvUntil(t, conn, "conversation.item.created")
		if last := evs[len(evs)-1]; last.Type != "error" || last.Error.Code != "credential_in_request" {
			t.Fatalf("an item holding a credential: %s", last.raw)
		}
		if code := closedRealtime(t, conn); code != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %d, want 1008", code)
		}
		for _, s := range e.fake.Requests() {
			if strings.Contains(string(s.Body), "my key is") {
				t.Fatal("the credential reached the provider")
			}
		}
	})
	t.Run("before the session", func(t *testing.T) {
		e := newWSEnv(t, fakeprovider.Options{Models: realtimeModels()}, nil)
		miniOnly := e.keys.issue("mini-only", func(k *store.Key) { k.AllowModels = []string{"gpt-4o-mini"} })
		anyModel := e.keys.issue("any", nil)
		for _, tc := range []struct {
			key, model string
			status     int
		}{
			{"kg_live_notakey", "gpt-realtime", http.StatusUnauthorized},
			{miniOnly, "gpt-realtime", http.StatusForbidden},
			{anyModel, "", http.StatusBadRequest},
		} {
			_, err := connectRealtime(t, e.g.url, tc.key, tc.model)
			if err == nil || !strings.Contains(err.Error(), http.StatusText(tc.status)) && !strings.Contains(err.Error(), strconv.Itoa(tc.status)) {
				t.Errorf("%s for %q: %v, want HTTP %d", tc.model, tc.key[:8], err, tc.status)
			}
		}
		if n := e.fake.RequestCount(); n != 0 {
			t.Fatalf("%d requests reached the provider", n)
		}
		// The provider's own refusal of the session is the client's
		// answer, before the client's upgrade.
		if _, err := connectRealtime(t, e.g.url, anyModel, "no-such-model"); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("a model the provider refuses: %v, want HTTP 400", err)
		}
	})
}
