package gateway_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/scan/scantest"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// leakGateway serves a gateway whose outbound check watches vaultValue,
// in front of a fake OpenAI and a fake Anthropic provider.
func leakGateway(t *testing.T, action func(leak.Hit) leak.Action, vaultValue string) (*gw, *keys, *fake, *fake, *eventLog) {
	return leakGatewayWith(t, action, vaultValue, fakeprovider.Options{})
}

// leakGatewayWith is leakGateway with providers that answer as fo says.
func leakGatewayWith(t *testing.T, action func(leak.Hit) leak.Action, vaultValue string, fo fakeprovider.Options) (*gw, *keys, *fake, *fake, *eventLog) {
	t.Helper()
	ks := newKeys(t)
	oa, an := newFake(t, "openai", fo), newFake(t, "anthropic", fo)
	events := &eventLog{}
	g := newGatewayWith(t, ks.verifier(), nil, func(o *gateway.Options) {
		o.Leaks = &gateway.LeakOptions{Action: action}
		o.Audit = events
	}, oa.upstream("openai", "openai", "gpt-*"), an.upstream("anthropic", "anthropic", "claude-*"))
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/payments-db", Value: secret.New(vaultValue)}}})
	if err != nil {
		t.Fatal(err)
	}
	g.SetLeakMatcher(m)
	return g, ks, oa, an, events
}

// TestCredentialsInRequestsNeverGoUpstream: a prompt carrying a value held
// in the vault (raw, or base64), or a keygate key, is refused with a 400 in
// the caller's dialect, streaming or not, naming the rule but not the
// value, and nothing reaches the provider; the refusal is on the audit
// trail with the rule and the vault record's name.
func TestCredentialsInRequestsNeverGoUpstream(t *testing.T) {
	vaultValue := "db-password-" + upstreamKey(t, "vault")
	g, ks, oa, an, events := leakGateway(t, nil, vaultValue)
	key := ks.issue("app", nil)
	generated, err := apikey.Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := generated.Reveal()
	b64 := base64.StdEncoding.EncodeToString([]byte(vaultValue))
	cases := []struct {
		name, path, body, rule string
	}{
		{"vault value, OpenAI", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"connect with ` + vaultValue + `"}]}`, "vault-value"},
		{"vault value in base64, OpenAI stream", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"auth ` + b64 + `"}]}`, "vault-value"},
		{"vault value, Anthropic", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"pw ` + vaultValue + `"}]}`, "vault-value"},
		{"keygate key, Anthropic stream", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"use ` + otherKey + `"}]}`, "keygate"},
		{"keygate key, OpenAI", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"use ` + otherKey + `"}]}`, "keygate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, "POST", g.url+tc.path, tc.body, "Authorization", "Bearer "+key)
			if bytes.Contains(a.body, []byte(vaultValue)) || bytes.Contains(a.body, []byte(b64)) || bytes.Contains(a.body, []byte(otherKey)) {
				t.Fatalf("the refusal repeats the credential: %s", a.body)
			}
			var msg string
			if strings.HasPrefix(tc.path, "/v1/messages") {
				msg, _ = anthropicError(t, a, http.StatusBadRequest)
			} else {
				var code string
				msg, code = openAIError(t, a, http.StatusBadRequest)
				if code != "credential_in_request" {
					t.Fatalf("code %q", code)
				}
			}
			if !strings.Contains(msg, tc.rule) && !(tc.rule == "vault-value" && strings.Contains(msg, "vault")) {
				t.Fatalf("the message does not name the rule %q: %s", tc.rule, msg)
			}
		})
	}
	if n := oa.RequestCount() + an.RequestCount(); n != 0 {
		t.Fatalf("%d requests reached the providers", n)
	}
	var refused int
	for _, ev := range events.of("request") {
		if ev.Decision == "deny" && ev.Reasons[0] == "credential_in_request" && ev.Fields["leak_action"] == "block" {
			refused++
			if strings.Contains(ev.Fields["leak_rules"], "vault-value") && ev.Fields["leak_values"] != "secret/payments-db" {
				t.Fatalf("the event does not name the vault record: %v", ev.Fields)
			}
		}
	}
	if refused != len(cases) {
		t.Fatalf("%d refusals on the audit trail, want %d", refused, len(cases))
	}
	// A clean prompt still passes.
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key); a.status != 200 {
		t.Fatalf("a clean prompt: %d %s", a.status, a.body)
	}
}

// bodyRecorder is an upstream that keeps the bodies it receives and
// answers like OpenAI.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []string
}

func (b *bodyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bodies = append(b.bodies, string(body))
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`))
}

// TestRedactAndAlertActions: with redact, the credential is replaced by
// [REDACTED:rule] before the body goes upstream; with alert, it goes on
// unchanged and the audit event records the hit.
func TestRedactAndAlertActions(t *testing.T) {
	vaultValue := "db-password-" + upstreamKey(t, "vault")
	for _, act := range []leak.Action{leak.ActionRedact, leak.ActionAlert} {
		t.Run(string(act), func(t *testing.T) {
			ks := newKeys(t)
			rec := &bodyRecorder{}
			up := serve(t, rec)
			events := &eventLog{}
			g := newGatewayWith(t, ks.verifier(), nil, func(o *gateway.Options) {
				o.Leaks = &gateway.LeakOptions{Action: func(leak.Hit) leak.Action { return act }}
				o.Audit = events
			}, upstreamAt("openai", "openai", up.URL+"/v1", upstreamKey(t, "up"), "gpt-*"))
			m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New(vaultValue)}}})
			if err != nil {
				t.Fatal(err)
			}
			g.SetLeakMatcher(m)
			key := ks.issue("app", nil)
			body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"pw ` + vaultValue + ` end"}]}`
			if a := send(t, "POST", g.url+"/v1/chat/completions", body, "Authorization", "Bearer "+key); a.status != 200 {
				t.Fatalf("status %d %s", a.status, a.body)
			}
			rec.mu.Lock()
			got := rec.bodies[0]
			rec.mu.Unlock()
			switch act {
			case leak.ActionRedact:
				if strings.Contains(got, vaultValue) || !strings.Contains(got, `pw [REDACTED:vault-value] end`) {
					t.Fatalf("upstream saw %s", got)
				}
			case leak.ActionAlert:
				if got != body {
					t.Fatalf("upstream saw %s, want the body unchanged", got)
				}
			}
			evs := events.of("request")
			if len(evs) != 1 || evs[0].Fields["leak_action"] != string(act) || evs[0].Fields["leak_rules"] != "vault-value" {
				t.Fatalf("audit events %+v", evs)
			}
		})
	}
}

// TestCredentialsInAnswersAreRedacted: a model answer holding a value from
// the vault, whole or streamed, reaches the client with the value replaced
// by [REDACTED:vault-value] (in an answer, block redacts: its status is
// already sent), in both dialects; the call's audit event names the rule
// and the vault record. An alert-only policy passes the answer unchanged and still records it.
func TestCredentialsInAnswersAreRedacted(t *testing.T) {
	vaultValue := "db-password-" + upstreamKey(t, "answer")
	reply := "Sure: connect with " + vaultValue + " and retry."
	for _, tc := range []struct {
		name, path, body string
		action           leak.Action
	}{
		{"OpenAI", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, leak.ActionBlock},
		{"OpenAI stream", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, leak.ActionBlock},
		{"Anthropic", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, leak.ActionRedact},
		{"Anthropic stream", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, leak.ActionBlock},
		{"alert only", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, leak.ActionAlert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One delta per stream: the value arrives within one event.
			g, ks, _, _, events := leakGatewayWith(t, func(leak.Hit) leak.Action { return tc.action }, vaultValue,
				fakeprovider.Options{ReplyText: reply, Chunks: 1})
			a := send(t, "POST", g.url+tc.path, tc.body, "Authorization", "Bearer "+ks.issue("app", nil), "Anthropic-Version", "2023-06-01")
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			leaked := bytes.Contains(a.body, []byte(vaultValue))
			if tc.action == leak.ActionAlert {
				if !leaked {
					t.Fatalf("an alert-only policy changed the answer: %s", a.body)
				}
			} else if leaked || !bytes.Contains(a.body, []byte("[REDACTED:vault-value]")) {
				t.Fatalf("the answer was not redacted: %s", a.body)
			}
			if !strings.Contains(gateway.StreamText(t, a.body), "and retry.") {
				t.Fatalf("the rest of the answer was lost: %s", a.body)
			}
			evs := events.of("request")
			if len(evs) != 1 {
				t.Fatalf("%d request events", len(evs))
			}
			f := evs[0].Fields
			want := "redact"
			if tc.action == leak.ActionAlert {
				want = "alert"
			}
			if f["answer_leak_action"] != want || f["answer_leak_rules"] != "vault-value" || f["answer_leak_values"] != "secret/payments-db" {
				t.Fatalf("audit fields: %v", f)
			}
		})
	}
}

// TestCredentialSplitAcrossStreamEventsIsRedacted: a model streaming a
// vault value a few characters per event (as real models do) has it cut
// out before any piece reaches the client, in each dialect's stream: the
// events holding it stay valid, the first carries [REDACTED:vault-value],
// the text around it arrives whole, and the call's audit event names the
// rule and the vault record. An alert-only policy passes it and records it.
func TestCredentialSplitAcrossStreamEventsIsRedacted(t *testing.T) {
	vaultValue := "db-password-" + upstreamKey(t, "split")
	reply := "Sure: connect with " + vaultValue + " and retry."
	for _, tc := range []struct {
		name, path, body string
		action           leak.Action
	}{
		{"OpenAI", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, leak.ActionBlock},
		{"Anthropic", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, leak.ActionRedact},
		{"Responses", "/v1/responses", `{"model":"gpt-4o-mini","stream":true,"input":"hi"}`, leak.ActionBlock},
		{"alert only", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, leak.ActionAlert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One delta per three characters or so: the value is in pieces.
			g, ks, _, _, events := leakGatewayWith(t, func(leak.Hit) leak.Action { return tc.action }, vaultValue,
				fakeprovider.Options{ReplyText: reply, Chunks: len(reply) / 3})
			a := send(t, "POST", g.url+tc.path, tc.body, "Authorization", "Bearer "+ks.issue("app", nil), "Anthropic-Version", "2023-06-01")
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			text := streamedText(t, tc.path, a.body)
			want := "Sure: connect with [REDACTED:vault-value] and retry."
			if tc.action == leak.ActionAlert {
				want = reply
			}
			if text != want {
				t.Fatalf("the streamed text reads %q, want %q", text, want)
			}
			if tc.action != leak.ActionAlert && bytes.Contains(a.body, []byte(vaultValue)) {
				t.Fatalf("the value reached the client in another event: %s", a.body)
			}
			evs := events.of("request")
			if len(evs) != 1 {
				t.Fatalf("%d request events", len(evs))
			}
			wantAct := "redact"
			if tc.action == leak.ActionAlert {
				wantAct = "alert"
			}
			if f := evs[0].Fields; f["answer_text_leak_action"] != wantAct || f["answer_text_leak_rules"] != "vault-value" || f["answer_text_leak_values"] != "secret/payments-db" {
				t.Fatalf("audit fields: %v", f)
			}
		})
	}
}

// streamedText joins the generated text of an answer streamed on path, as
// its SDK would, failing the test on an event that is not valid JSON.
func streamedText(t *testing.T, path string, body []byte) string {
	t.Helper()
	var text strings.Builder
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev struct {
			Type    string `json:"type"`
			Delta   json.RawMessage
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("an event is not valid JSON (%v): %s", err, data)
		}
		switch {
		case path == "/v1/chat/completions":
			for _, c := range ev.Choices {
				text.WriteString(c.Delta.Content)
			}
		case ev.Type == "content_block_delta":
			var d struct {
				Text string `json:"text"`
			}
			_ = json.Unmarshal(ev.Delta, &d)
			text.WriteString(d.Text)
		case ev.Type == "response.output_text.delta":
			var d string
			_ = json.Unmarshal(ev.Delta, &d)
			text.WriteString(d)
		}
	}
	return text.String()
}

// TestKeyLeakActionOverridesThePolicy: a key's own leak action replaces
// the global policy for every credential in its traffic: a key set to
// alert sends a prompt holding a vault value on (recorded), one set to
// redact sends it redacted, while a key without one is held to the
// policy's block; and a key set to block refuses a provider-format
// credential the policy only alerts on.
func TestKeyLeakActionOverridesThePolicy(t *testing.T) {
	vaultValue := "db-password-" + upstreamKey(t, "override")
	ks := newKeys(t)
	rec := &bodyRecorder{}
	events := &eventLog{}
	g := newGatewayWith(t, ks.verifier(), nil, func(o *gateway.Options) {
		o.Leaks = &gateway.LeakOptions{}
		o.Audit = events
	}, upstreamAt("openai", "openai", serve(t, rec).URL+"/v1", upstreamKey(t, "up"), "gpt-*"))
	m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "secret/db", Value: secret.New(vaultValue)}}})
	if err != nil {
		t.Fatal(err)
	}
	g.SetLeakMatcher(m)
	prompt := func(text string) string {
		return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + text + `"}]}`
	}
	plain := ks.issue("plain", nil)
	alerting := ks.issue("alerting", func(k *store.Key) { k.LeakAction = "alert" })
	redacting := ks.issue("redacting", func(k *store.Key) { k.LeakAction = "redact" })
	strict := ks.issue("strict", func(k *store.Key) { k.LeakAction = "block" })

	if a := send(t, "POST", g.url+"/v1/chat/completions", prompt("pw "+vaultValue), "Authorization", "Bearer "+plain); a.status != 400 {
		t.Fatalf("a key without its own action, vault value: %d (want the policy's block)", a.status)
	}
	if a := send(t, "POST", g.url+"/v1/chat/completions", prompt("pw "+vaultValue), "Authorization", "Bearer "+alerting); a.status != 200 {
		t.Fatalf("a key set to alert: %d %s", a.status, a.body)
	}
	if a := send(t, "POST", g.url+"/v1/chat/completions", prompt("pw "+vaultValue), "Authorization", "Bearer "+redacting); a.status != 200 {
		t.Fatalf("a key set to redact: %d %s", a.status, a.body)
	}
	rec.mu.Lock()
	bodies := append([]string(nil), rec.bodies...)
	rec.mu.Unlock()
	if len(bodies) != 2 || !strings.Contains(bodies[0], vaultValue) || strings.Contains(bodies[1], vaultValue) || !strings.Contains(bodies[1], "[REDACTED:vault-value]") {
		t.Fatalf("upstream received: %q", bodies)
	}
	ghToken := scantest.NewGen(7).CRC32Token("ghp_") // a GitHub token, its checksum valid
	if a := send(t, "POST", g.url+"/v1/chat/completions", prompt("token "+ghToken), "Authorization", "Bearer "+plain); a.status != 200 {
		t.Fatalf("a provider-format credential under the policy's alert: %d %s", a.status, a.body)
	}
	if a := send(t, "POST", g.url+"/v1/chat/completions", prompt("token "+ghToken), "Authorization", "Bearer "+strict); a.status != 400 {
		t.Fatalf("a provider-format credential from a key set to block: %d", a.status)
	}
	var actions []string
	for _, ev := range events.of("request") {
		actions = append(actions, ev.Fields["leak_action"])
	}
	if strings.Join(actions, ",") != "block,alert,redact,alert,block" {
		t.Fatalf("leak actions on the trail: %v", actions)
	}
}

// TestCheckedStreamPassesEachEventWhenItEnds: with the credential check
// on and binary keys in the vault (keygate's own), each event of a
// streamed answer reaches the client as soon as it has arrived whole, and
// the words of a text event as soon as they cannot begin a credential:
// the upstream sends the next event only after the client has read the
// one before.
func TestCheckedStreamPassesEachEventWhenItEnds(t *testing.T) {
	key := upstreamKey(t, "events")
	next := make(chan struct{})
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for _, ev := range []string{
			`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello from the keygate fa"},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"ke upstream."},"finish_reason":"stop"}]}`,
		} {
			io.WriteString(w, "data: "+ev+"\n\n")
			fl.Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	ks := newKeys(t)
	g := newGatewayWith(t, ks.verifier(), nil, func(o *gateway.Options) {
		o.Leaks = &gateway.LeakOptions{}
	}, upstreamAt("openai", "openai", up.URL+"/v1", key, "gpt-*"))
	values := []leak.Value{{Name: "providers/openai", Value: secret.New(key)}}
	for i := range 6 {
		b := make([]byte, 32)
		rand.Read(b)
		values = append(values, leak.Value{Name: "system/key-" + string(rune('a'+i)), Value: secret.New(string(b))})
	}
	m, err := leak.New(leak.Options{Values: values, TokenIssuer: "https://keygate.internal"})
	if err != nil {
		t.Fatal(err)
	}
	g.SetLeakMatcher(m)

	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+ks.issue("app", nil))
	// A client that gives up, so a stream held back fails the test
	// rather than hanging it.
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen []byte
	buf := make([]byte, 4096)
	readUntil := func(want string) {
		t.Helper()
		for !strings.Contains(gateway.StreamText(t, completeEvents(seen)), want) || !bytes.HasSuffix(seen, []byte("\n\n")) {
			n, err := resp.Body.Read(buf)
			seen = append(seen, buf[:n]...)
			if err != nil {
				t.Fatalf("stream ended (%v) before %q arrived; got %q", err, want, seen)
			}
		}
	}
	readUntil("") // the role event, whole
	if !bytes.Contains(seen, []byte(`"role":"assistant"`)) {
		t.Fatalf("first read %q", seen)
	}
	next <- struct{}{}
	// The words up to the one still arriving ("fa"), but for the few
	// plain bytes a binary key may begin with (a handful at most).
	readUntil("Hello from the")
	if text := gateway.StreamText(t, completeEvents(seen)); !strings.HasPrefix("Hello from the keygate ", text) {
		t.Fatalf("before the next event the client has %q, want the words up to the one still arriving", text)
	}
	close(next) // the rest at once
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if text := gateway.StreamText(t, append(seen, rest...)); text != "Hello from the keygate fake upstream." {
		t.Fatalf("the client got %q", text)
	}
}

// completeEvents is stream up to the end of its last whole event.
func completeEvents(stream []byte) []byte {
	if i := bytes.LastIndex(stream, []byte("\n\n")); i >= 0 {
		return stream[:i+2]
	}
	return nil
}
