package translate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeGateway plays keygate between an SDK client and a canned upstream: it
// translates the client's request (failing the test if that fails), then
// answers with the translation of the canned upstream body.
type fakeGateway struct {
	t          *testing.T
	status     int    // upstream status; 0 means 200
	upstream   []byte // canned upstream body
	translated []byte // the last translated request
}

func (g *fakeGateway) serveChat(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := ChatToMessagesRequest(body, "upstream-model-test", 1024)
	if err != nil {
		g.t.Errorf("translating the SDK's request: %v\n%s", err, body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.translated = req
	var client struct {
		Stream        bool `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(body, &client)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case g.status != 0:
		w.WriteHeader(g.status)
		_, _ = w.Write(MessagesToChatError(g.status, g.upstream))
	case client.Stream:
		w.Header().Set("Content-Type", "text/event-stream")
		rc := MessagesToChatStream(io.NopCloser(bytes.NewReader(g.upstream)), "client-model-test", client.StreamOptions.IncludeUsage)
		defer rc.Close()
		_, _ = io.Copy(w, rc)
	default:
		out, err := MessagesToChatResponse(g.upstream, "client-model-test")
		if err != nil {
			g.t.Errorf("translating the response: %v", err)
		}
		_, _ = w.Write(out)
	}
}

func (g *fakeGateway) serveMessages(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := MessagesToChatRequest(body, "upstream-model-test")
	if err != nil {
		g.t.Errorf("translating the SDK's request: %v\n%s", err, body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.translated = req
	var client struct {
		Stream bool `json:"stream"`
	}
	_ = json.Unmarshal(body, &client)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case g.status != 0:
		w.WriteHeader(g.status)
		_, _ = w.Write(ChatToMessagesError(g.status, g.upstream))
	case client.Stream:
		w.Header().Set("Content-Type", "text/event-stream")
		rc := ChatToMessagesStream(io.NopCloser(bytes.NewReader(g.upstream)), "client-model-test")
		defer rc.Close()
		_, _ = io.Copy(w, rc)
	default:
		out, err := ChatToMessagesResponse(g.upstream, "client-model-test")
		if err != nil {
			g.t.Errorf("translating the response: %v", err)
		}
		_, _ = w.Write(out)
	}
}

func (g *fakeGateway) openAI(t *testing.T) openai.Client {
	ts := httptest.NewServer(http.HandlerFunc(g.serveChat))
	t.Cleanup(ts.Close)
	return openai.NewClient(ooption.WithBaseURL(ts.URL+"/v1"), ooption.WithAPIKey("kg_test_fake_key"),
		ooption.WithMaxRetries(0), ooption.WithRequestTimeout(10*time.Second))
}

func (g *fakeGateway) anthropic(t *testing.T) anthropic.Client {
	ts := httptest.NewServer(http.HandlerFunc(g.serveMessages))
	t.Cleanup(ts.Close)
	return anthropic.NewClient(aoption.WithBaseURL(ts.URL), aoption.WithAPIKey("kg_test_fake_key"),
		aoption.WithMaxRetries(0), aoption.WithRequestTimeout(10*time.Second))
}

func openAIToolParams() openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model: "client-model-test",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("Be brief."),
			openai.UserMessage("Weather in Paris?"),
		},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name:       "get_weather",
			Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		})},
		ParallelToolCalls: openai.Bool(false),
	}
}

// checkTranslatedMessagesRequest checks the request the OpenAI SDK sent
// reached the Anthropic upstream with its system prompt and tools.
func checkTranslatedMessagesRequest(t *testing.T, body []byte, stream bool) {
	t.Helper()
	var req struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		System    string `json:"system"`
		Stream    bool   `json:"stream"`
		Tools     []struct {
			Name string `json:"name"`
		} `json:"tools"`
		ToolChoice struct {
			Type    string `json:"type"`
			Disable bool   `json:"disable_parallel_tool_use"`
		} `json:"tool_choice"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if req.Model != "upstream-model-test" || req.MaxTokens != 1024 || req.System != "Be brief." || req.Stream != stream ||
		len(req.Tools) != 1 || req.Tools[0].Name != "get_weather" || req.ToolChoice.Type != "auto" || !req.ToolChoice.Disable {
		t.Errorf("translated request %s", body)
	}
}

func TestOpenAISDKReadsTranslatedResponse(t *testing.T) {
	g := &fakeGateway{t: t, upstream: readTestdata(t, "m2c_resp_tool_use.in.json")}
	client := g.openAI(t)
	resp, err := client.Chat.Completions.New(context.Background(), openAIToolParams())
	if err != nil {
		t.Fatal(err)
	}
	checkTranslatedMessagesRequest(t, g.translated, false)
	c := resp.Choices[0]
	if resp.Model != "client-model-test" || resp.ID != "msg_fake_02" || c.Message.Content != "Checking." || c.FinishReason != "tool_calls" {
		t.Errorf("response %+v", resp)
	}
	if len(c.Message.ToolCalls) != 2 || c.Message.ToolCalls[0].ID != "toolu_fake_1" || c.Message.ToolCalls[0].Function.Name != "get_weather" ||
		c.Message.ToolCalls[0].Function.Arguments != `{"city":"Paris","days":2}` || c.Message.ToolCalls[1].Function.Arguments != `{}` {
		t.Errorf("tool calls %+v", c.Message.ToolCalls)
	}
	if u := resp.Usage; u.PromptTokens != 420 || u.CompletionTokens != 40 || u.TotalTokens != 460 || u.PromptTokensDetails.CachedTokens != 300 {
		t.Errorf("usage %+v", u)
	}
}

func TestOpenAISDKReadsTranslatedStream(t *testing.T) {
	for _, includeUsage := range []bool{true, false} {
		g := &fakeGateway{t: t, upstream: readTestdata(t, "m2c_stream_tools.in.sse")}
		client := g.openAI(t)
		params := openAIToolParams()
		if includeUsage {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := client.Chat.Completions.NewStreaming(context.Background(), params)
		var acc openai.ChatCompletionAccumulator
		var finished []string
		for stream.Next() {
			acc.AddChunk(stream.Current())
			if tc, ok := acc.JustFinishedToolCall(); ok {
				finished = append(finished, tc.Name+tc.Arguments)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		checkTranslatedMessagesRequest(t, g.translated, true)
		c := acc.Choices[0]
		if acc.ID != "msg_fake_02" || acc.Model != "client-model-test" || c.Message.Content != "Checking." || c.FinishReason != "tool_calls" {
			t.Errorf("accumulated %+v", acc.ChatCompletion)
		}
		if len(c.Message.ToolCalls) != 2 || c.Message.ToolCalls[0].ID != "toolu_fake_1" || c.Message.ToolCalls[0].Function.Arguments != `{"city": "Paris"}` ||
			c.Message.ToolCalls[1].Function.Name != "get_time" || c.Message.ToolCalls[1].Function.Arguments != `{}` {
			t.Errorf("tool calls %+v", c.Message.ToolCalls)
		}
		if len(finished) != 2 || finished[0] != `get_weather{"city": "Paris"}` {
			t.Errorf("finished tool calls %q", finished)
		}
		u := acc.Usage
		if includeUsage && (u.PromptTokens != 420 || u.CompletionTokens != 40 || u.PromptTokensDetails.CachedTokens != 300) {
			t.Errorf("usage %+v", u)
		}
		if !includeUsage && u.TotalTokens != 0 {
			t.Errorf("usage %+v sent although the client did not ask for it", u)
		}
	}
}

func TestOpenAISDKSeesStreamError(t *testing.T) {
	g := &fakeGateway{t: t, upstream: readTestdata(t, "m2c_stream_error_midstream.in.sse")}
	oc := g.openAI(t)
	stream := oc.Chat.Completions.NewStreaming(context.Background(), openAIToolParams())
	var text strings.Builder
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	err := stream.Err()
	if err == nil || !strings.Contains(err.Error(), "Overloaded") {
		t.Fatalf("err = %v, want the upstream's overloaded error", err)
	}
	if text.String() != "Hello" {
		t.Errorf("text before the error %q", text.String())
	}
}

func TestOpenAISDKSeesTruncatedStream(t *testing.T) {
	g := &fakeGateway{t: t, upstream: readTestdata(t, "m2c_stream_truncated.in.sse")}
	oc := g.openAI(t)
	stream := oc.Chat.Completions.NewStreaming(context.Background(), openAIToolParams())
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "" {
		t.Errorf("a truncated stream reached the client with a finish: %+v", acc.Choices)
	}
}

func TestOpenAISDKReadsTranslatedError(t *testing.T) {
	g := &fakeGateway{t: t, status: 529, upstream: readTestdata(t, "m2c_err_529_overloaded.in.json")}
	oc := g.openAI(t)
	_, err := oc.Chat.Completions.New(context.Background(), openAIToolParams())
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 529 || apiErr.Message != "Overloaded" ||
		apiErr.Type != "server_error" || apiErr.Code != "overloaded_error" {
		t.Fatalf("err = %#v", err)
	}
}

func anthropicToolParams() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     "client-model-test",
		MaxTokens: 256,
		System:    []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?"))},
		Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{
			Name:        "get_weather",
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}},
		}}},
		ToolChoice: anthropic.ToolChoiceUnionParam{OfAuto: &anthropic.ToolChoiceAutoParam{DisableParallelToolUse: anthropic.Bool(true)}},
	}
}

// checkTranslatedChatRequest checks the request the Anthropic SDK sent
// reached the OpenAI upstream with its system prompt and tools.
func checkTranslatedChatRequest(t *testing.T, body []byte, stream bool) {
	t.Helper()
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		MaxCompletionTokens int  `json:"max_completion_tokens"`
		Stream              bool `json:"stream"`
		StreamOptions       *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
		ToolChoice        string `json:"tool_choice"`
		ParallelToolCalls *bool  `json:"parallel_tool_calls"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	if req.Model != "upstream-model-test" || req.MaxCompletionTokens != 256 || len(req.Messages) != 2 ||
		req.Messages[0].Role != "system" || req.Messages[0].Content != "Be brief." || req.Messages[1].Content != "Weather in Paris?" ||
		req.Stream != stream || (req.StreamOptions != nil) != stream || len(req.Tools) != 1 || req.Tools[0].Function.Name != "get_weather" ||
		req.ToolChoice != "auto" || req.ParallelToolCalls == nil || *req.ParallelToolCalls {
		t.Errorf("translated request %s", body)
	}
}

func TestAnthropicSDKReadsTranslatedResponse(t *testing.T) {
	g := &fakeGateway{t: t, upstream: readTestdata(t, "c2m_resp_tool_calls.in.json")}
	ac := g.anthropic(t)
	msg, err := ac.Messages.New(context.Background(), anthropicToolParams())
	if err != nil {
		t.Fatal(err)
	}
	checkTranslatedChatRequest(t, g.translated, false)
	checkAnthropicToolMessage(t, msg, `{"city":"Paris","days":2}`)
}

func checkAnthropicToolMessage(t *testing.T, msg *anthropic.Message, wantInput string) {
	t.Helper()
	if msg.ID != "chatcmpl-fake02" || msg.Model != "client-model-test" || msg.StopReason != anthropic.StopReasonToolUse || len(msg.Content) != 3 {
		t.Fatalf("message %+v", msg)
	}
	if tb := msg.Content[0].AsText(); tb.Text != "Checking." {
		t.Errorf("text %q", tb.Text)
	}
	tu := msg.Content[1].AsToolUse()
	var compact bytes.Buffer
	_ = json.Compact(&compact, tu.Input)
	if tu.ID != "call_fake_1" || tu.Name != "get_weather" || compact.String() != wantInput {
		t.Errorf("tool use %+v input %s", tu, tu.Input)
	}
	if tu2 := msg.Content[2].AsToolUse(); tu2.Name != "get_time" || string(tu2.Input) != "{}" {
		t.Errorf("second tool use %+v", tu2)
	}
	if u := msg.Usage; u.InputTokens != 120 || u.CacheReadInputTokens != 300 || u.OutputTokens != 40 {
		t.Errorf("usage %+v", u)
	}
}

func TestAnthropicSDKReadsTranslatedStream(t *testing.T) {
	g := &fakeGateway{t: t, upstream: readTestdata(t, "c2m_stream_tools.in.sse")}
	ac := g.anthropic(t)
	stream := ac.Messages.NewStreaming(context.Background(), anthropicToolParams())
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	checkTranslatedChatRequest(t, g.translated, true)
	checkAnthropicToolMessage(t, &msg, `{"city":"Paris"}`)
}

func TestAnthropicSDKSeesStreamError(t *testing.T) {
	g := &fakeGateway{t: t, upstream: readTestdata(t, "c2m_stream_error_midstream.in.sse")}
	ac := g.anthropic(t)
	stream := ac.Messages.NewStreaming(context.Background(), anthropicToolParams())
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	err := stream.Err()
	if err == nil || !strings.Contains(err.Error(), "The server had an error") {
		t.Fatalf("err = %v, want the upstream's error", err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "Hello" {
		t.Errorf("content before the error %+v", msg.Content)
	}
}

func TestAnthropicSDKSeesTruncatedStream(t *testing.T) {
	g := &fakeGateway{t: t, upstream: readTestdata(t, "c2m_stream_truncated.in.sse")}
	ac := g.anthropic(t)
	stream := ac.Messages.NewStreaming(context.Background(), anthropicToolParams())
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if msg.StopReason != "" {
		t.Errorf("a truncated stream reached the client with stop reason %q", msg.StopReason)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "Hello, \"world\" <3\n" {
		t.Errorf("content %+v", msg.Content)
	}
}

func TestAnthropicSDKReadsTranslatedError(t *testing.T) {
	g := &fakeGateway{t: t, status: 429, upstream: readTestdata(t, "c2m_err_429_insufficient_quota.in.json")}
	ac := g.anthropic(t)
	_, err := ac.Messages.New(context.Background(), anthropicToolParams())
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Type() != "billing_error" ||
		!strings.Contains(apiErr.Error(), "You exceeded your current quota") {
		t.Fatalf("err = %#v", err)
	}
}
