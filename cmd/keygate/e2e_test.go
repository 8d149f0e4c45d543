package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestOfficialSDKsThroughKeygate walks the path a user walks: start keygate,
// register OpenAI and Anthropic with their real keys, create a keygate key,
// and point the official SDKs at keygate. The upstreams must see only their
// real keys; the clients must never see them.
func TestOfficialSDKsThroughKeygate(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = dbURL(t)
			in := start(t, cfg, "")
			up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
			in.register(up)
			key := in.createKey("--name", "openclaw-laptop", "--allow-model", "gpt-4o*,text-embedding-*", "--allow-model", "claude-*", "--expires", "30d")
			rec := &recorder{}
			ctx := context.Background()

			oc := openai.NewClient(option.WithBaseURL(in.addrs.Gateway+"/v1"), option.WithAPIKey(key),
				option.WithMaxRetries(0), option.WithHTTPClient(&http.Client{Transport: rec}))
			chat, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    "gpt-4o-mini",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
			})
			if err != nil || chat.Choices[0].Message.Content != up.openai.ReplyText() {
				t.Fatalf("chat completion: %v %+v", err, chat)
			}

			stream := oc.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:    "openai/gpt-4o", // provider prefix, stripped before the request goes upstream
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream")},
			})
			var acc openai.ChatCompletionAccumulator
			chunks := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks++
			}
			if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != up.openai.ReplyText() || chunks < 3 {
				t.Fatalf("streaming chat: err=%v chunks=%d content=%q", err, chunks, acc.Choices[0].Message.Content)
			}
			last := up.openai.Requests()[len(up.openai.Requests())-1]
			if !bytes.Contains(last.Body, []byte(`"model":"gpt-4o"`)) || bytes.Contains(last.Body, []byte("openai/")) {
				t.Fatalf("the provider prefix must be stripped upstream; upstream saw %s", last.Body)
			}

			emb, err := oc.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model: "text-embedding-3-small",
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("vector")},
			})
			if err != nil || len(emb.Data) != 1 || len(emb.Data[0].Embedding) == 0 {
				t.Fatalf("embeddings: %v %+v", err, emb)
			}

			resp, err := oc.Responses.New(ctx, responses.ResponseNewParams{
				Model: "gpt-4o-mini",
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			})
			if err != nil || resp.OutputText() != up.openai.ReplyText() {
				t.Fatalf("responses: %v", err)
			}
			rs := oc.Responses.NewStreaming(ctx, responses.ResponseNewParams{
				Model: "gpt-4o-mini",
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
			})
			var text strings.Builder
			for rs.Next() {
				if ev, ok := rs.Current().AsAny().(responses.ResponseTextDeltaEvent); ok {
					text.WriteString(ev.Delta)
				}
			}
			if err := rs.Err(); err != nil || text.String() != up.openai.ReplyText() {
				t.Fatalf("streaming responses: %v %q", err, text.String())
			}

			// /v1/completions with a key allowed that model.
			ckey := in.createKey("--name", "instruct", "--allow-model", "gpt-3.5-turbo-instruct")
			cc := openai.NewClient(option.WithBaseURL(in.addrs.Gateway+"/v1"), option.WithAPIKey(ckey), option.WithMaxRetries(0))
			comp, err := cc.Completions.New(ctx, openai.CompletionNewParams{
				Model:  openai.CompletionNewParamsModel("gpt-3.5-turbo-instruct"),
				Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once")},
			})
			if err != nil || comp.Choices[0].Text == "" {
				t.Fatalf("completions: %v", err)
			}

			// GET /v1/models lists only what the key may use.
			page, err := oc.Models.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range page.Data {
				ids = append(ids, m.ID)
			}
			for _, want := range []string{"gpt-4o", "gpt-4o-mini", "text-embedding-3-small"} {
				if !slices.Contains(ids, want) {
					t.Errorf("models list %v lacks %s", ids, want)
				}
			}
			for _, id := range ids {
				if !strings.HasPrefix(id, "gpt-4o") && !strings.HasPrefix(id, "text-embedding-") {
					t.Errorf("models list shows %s, which the key may not use", id)
				}
			}

			// Anthropic's SDK sends x-api-key; also try Authorization: Bearer.
			for _, auth := range []aoption.RequestOption{aoption.WithAPIKey(key), aoption.WithAuthToken(key)} {
				ac := anthropic.NewClient(aoption.WithBaseURL(in.addrs.Gateway), auth, aoption.WithMaxRetries(0),
					aoption.WithHTTPClient(&http.Client{Transport: rec}))
				params := anthropic.MessageNewParams{
					Model: "claude-sonnet-4-5", MaxTokens: 256,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))},
				}
				msg, err := ac.Messages.New(ctx, params)
				if err != nil || len(msg.Content) == 0 || msg.Content[0].Text != up.anthropic.ReplyText() {
					t.Fatalf("anthropic message: %v %+v", err, msg)
				}
				st := ac.Messages.NewStreaming(ctx, params)
				var m anthropic.Message
				for st.Next() {
					if err := m.Accumulate(st.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.Err(); err != nil || len(m.Content) == 0 || m.Content[0].Text != up.anthropic.ReplyText() {
					t.Fatalf("anthropic stream: %v %+v", err, m)
				}
				am, err := ac.Models.List(ctx, anthropic.ModelListParams{})
				if err != nil || len(am.Data) == 0 {
					t.Fatalf("anthropic models: %v", err)
				}
				for _, m := range am.Data {
					if !strings.HasPrefix(m.ID, "claude-") {
						t.Errorf("anthropic models list shows %s", m.ID)
					}
				}
			}

			// The upstreams saw their real key and nothing of the client's.
			for _, s := range up.openai.Requests() {
				if s.Header.Get("Authorization") != "Bearer "+up.openaiKey || s.Header.Get("X-Api-Key") != "" {
					t.Fatalf("OpenAI upstream saw auth headers %v", s.Header)
				}
				if strings.Contains(headerText(s.Header), "kg_") {
					t.Fatalf("OpenAI upstream saw the keygate key: %v", s.Header)
				}
			}
			for _, s := range up.anthropic.Requests() {
				if s.Header.Get("X-Api-Key") != up.anthropicKey || s.Header.Get("Authorization") != "" {
					t.Fatalf("Anthropic upstream saw auth headers %v", s.Header)
				}
				if strings.Contains(headerText(s.Header), "kg_") {
					t.Fatalf("Anthropic upstream saw the keygate key: %v", s.Header)
				}
			}
			for _, k := range []string{up.openaiKey, up.anthropicKey} {
				if strings.Contains(rec.String(), k) {
					t.Fatal("a client received an upstream key")
				}
			}
		})
	}
}

func headerText(h http.Header) string {
	var b bytes.Buffer
	h.Write(&b)
	return b.String()
}

// TestDenialsNeverReachUpstream proves every refusal is answered by keygate,
// in the caller's dialect, with nothing sent upstream.
func TestDenialsNeverReachUpstream(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "narrow", "--allow-model", "gpt-4o-mini", "--allow-provider", "openai")
	revoked := in.createKey("--name", "soon-revoked")
	wide := in.createKey("--name", "wide")
	chat := in.addrs.Gateway + "/v1/chat/completions"
	msgs := in.addrs.Gateway + "/v1/messages"
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	abody := `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`

	// The revoked key works, then is revoked through the CLI, then fails on the very next request.
	if st, b := postJSON(t, chat, revoked, body); st != 200 {
		t.Fatalf("before revocation: %d %s", st, b)
	}
	in.mustCLI(nil, "", "key", "revoke", "soon-revoked")
	before := up.openai.RequestCount() + up.anthropic.RequestCount()

	type openAIErr struct {
		Error struct{ Message, Type, Code string }
	}
	type anthropicErr struct {
		Type  string
		Error struct{ Type, Message string }
	}
	garbled := []byte(key)
	garbled[len(garbled)-8] ^= 1
	for _, tc := range []struct {
		name      string
		url, key  string
		body      string
		status    int
		anthropic bool
		errType   string
	}{
		{"no key", chat, "", body, 401, false, "invalid_request_error"},
		{"not a keygate key", chat, "test-not-a-keygate-key", body, 401, false, "invalid_request_error"},
		{"checksum mismatch", chat, string(garbled), body, 401, false, "invalid_request_error"},
		{"revoked", chat, revoked, body, 401, false, "invalid_request_error"},
		{"model not allowed", chat, key, `{"model":"gpt-4.1","messages":[]}`, 403, false, ""},
		{"provider not allowed", msgs, key, abody, 403, true, "permission_error"},
		{"unknown key on anthropic", msgs, "kg_live_0000000000000000000000000000000000000000000000000", abody, 401, true, "authentication_error"},
		{"model not allowed behind a prefix", chat, key, `{"model":"openai/gpt-4.1","messages":[]}`, 403, false, ""},
		{"cross-dialect prefix", chat, key, `{"model":"anthropic/claude-sonnet-4-5","messages":[]}`, 403, false, ""},
		{"cross-dialect embeddings", in.addrs.Gateway + "/v1/embeddings", wide, `{"model":"anthropic/claude-sonnet-4-5","input":"x"}`, 400, false, "invalid_request_error"},
		{"untranslatable request", chat, wide, `{"model":"anthropic/claude-sonnet-4-5","n":3,"messages":[{"role":"user","content":"x"}]}`, 400, false, "invalid_request_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, b := postJSON(t, tc.url, tc.key, tc.body)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %s", st, tc.status, b)
			}
			if tc.anthropic {
				var e anthropicErr
				if json.Unmarshal([]byte(b), &e) != nil || e.Type != "error" || e.Error.Message == "" || (tc.errType != "" && e.Error.Type != tc.errType) {
					t.Fatalf("not an Anthropic error body: %s", b)
				}
			} else {
				var e openAIErr
				if json.Unmarshal([]byte(b), &e) != nil || e.Error.Message == "" || (tc.errType != "" && e.Error.Type != tc.errType) {
					t.Fatalf("not an OpenAI error body: %s", b)
				}
			}
			if strings.Contains(b, up.openaiKey) || strings.Contains(b, "127.0.0.1") {
				t.Fatalf("error body leaks: %s", b)
			}
		})
	}
	// The SDK surfaces the denial as a typed error with the status.
	oc := openai.NewClient(option.WithBaseURL(in.addrs.Gateway+"/v1"), option.WithAPIKey(revoked), option.WithMaxRetries(0))
	_, err := oc.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("SDK should see a 401 *openai.Error, got %v", err)
	}
	if after := up.openai.RequestCount() + up.anthropic.RequestCount(); after != before {
		t.Fatalf("denied requests reached upstream: %d requests", after-before)
	}
}

// TestBadInput covers malformed and oversize requests and unknown paths.
func TestBadInput(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxBodyBytes = 4096
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "app")
	gw := in.addrs.Gateway
	big := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"malformed json", "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini",`, 400, "not valid JSON"},
		{"not an object", "POST", "/v1/chat/completions", `["model"]`, 400, "not valid JSON"},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "model"},
		{"model not a string", "POST", "/v1/chat/completions", `{"model":42}`, 400, `field "model"`},
		{"empty body", "POST", "/v1/chat/completions", ``, 400, "empty"},
		{"oversize", "POST", "/v1/chat/completions", big, 413, "4096"},
		{"unknown path", "POST", "/v1/fine_tuning/jobs", `{}`, 404, "does not serve"},
		{"wrong method", "GET", "/v1/chat/completions", ``, 405, "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, gw+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error struct{ Message string } }
			json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.status || !strings.Contains(e.Error.Message, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, e.Error.Message, tc.status, tc.want)
			}
		})
	}
	if n := up.openai.RequestCount(); n != 0 {
		t.Fatalf("bad input reached upstream %d times", n)
	}
	if st, _ := postJSON(t, gw+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[]}`); st != 200 {
		t.Fatalf("keygate must keep serving after bad input, got %d", st)
	}
	if _, err := os.Stat(in.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
}
