package fakeprovider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

const testKey = "test-upstream-key-123"

func newOpenAIFake(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	fake := NewOpenAI(opts)
	ts := httptest.NewServer(fake)
	t.Cleanup(func() {
		fake.Close()
		ts.Close()
	})
	return fake, ts
}

func openAIClient(ts *httptest.Server, key string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(ts.URL+"/v1"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	)
}

func TestOpenAIChatCompletion(t *testing.T) {
	fake, ts := newOpenAIFake(t, Options{ReplyText: "Hello there, keygate tester."})
	client := openAIClient(ts, testKey)
	res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("say hello to me")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.ID, "chatcmpl-") || res.Object != "chat.completion" || res.Model != "gpt-4o-mini" || res.Created == 0 {
		t.Fatalf("unexpected envelope: id=%q object=%q model=%q created=%d", res.ID, res.Object, res.Model, res.Created)
	}
	if len(res.Choices) != 1 || res.Choices[0].Message.Content != "Hello there, keygate tester." ||
		res.Choices[0].FinishReason != "stop" || res.Choices[0].Message.Role != "assistant" {
		t.Fatalf("unexpected choices: %+v", res.Choices)
	}
	if res.Usage.PromptTokens != 4 || res.Usage.CompletionTokens != 4 || res.Usage.TotalTokens != 8 {
		t.Fatalf("unexpected usage: %+v", res.Usage)
	}
	seen := fake.Requests()
	if len(seen) != 1 || seen[0].Method != http.MethodPost || seen[0].Path != "/v1/chat/completions" ||
		seen[0].Header.Get("Authorization") != "Bearer "+testKey || !strings.Contains(string(seen[0].Body), `"say hello to me"`) {
		t.Fatalf("unexpected recording: %+v", seen)
	}
}

func TestOpenAIChatCompletionStreaming(t *testing.T) {
	reply := "one two three four five six seven eight nine ten"
	_, ts := newOpenAIFake(t, Options{ReplyText: reply, Chunks: 4})
	client := openAIClient(ts, testKey)
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:         "gpt-4o",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("count")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	chunks, deltas, finished := 0, 0, false
	for stream.Next() {
		chunk := stream.Current()
		chunks++
		if chunk.Object != "chat.completion.chunk" {
			t.Fatalf("chunk object %q", chunk.Object)
		}
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			deltas++
		}
		if !acc.AddChunk(chunk) {
			t.Fatalf("accumulator rejected chunk %d: %s", chunks, chunk.RawJSON())
		}
		if content, ok := acc.JustFinishedContent(); ok {
			finished = content == reply
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas != 4 {
		t.Fatalf("got %d content deltas, want 4", deltas)
	}
	if !finished {
		t.Fatal("accumulator never reported the finished content")
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != reply || acc.Choices[0].FinishReason != "stop" {
		t.Fatalf("accumulated %+v", acc.Choices)
	}
	if acc.Usage.CompletionTokens != 10 || acc.Usage.PromptTokens != 1 || acc.Usage.TotalTokens != 11 {
		t.Fatalf("accumulated usage %+v", acc.Usage)
	}
	if !strings.HasPrefix(acc.ID, "chatcmpl-") || acc.Model != "gpt-4o" {
		t.Fatalf("accumulated id=%q model=%q", acc.ID, acc.Model)
	}
}

func TestOpenAICompletionLegacy(t *testing.T) {
	_, ts := newOpenAIFake(t, Options{})
	client := openAIClient(ts, testKey)
	ctx := context.Background()
	params := openai.CompletionNewParams{
		Model:  "gpt-3.5-turbo-instruct",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once upon a time")},
	}
	res, err := client.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if res.Object != "text_completion" || len(res.Choices) != 1 || res.Choices[0].Text != DefaultReplyText || res.Usage.PromptTokens != 4 {
		t.Fatalf("unexpected completion %s", res.RawJSON())
	}
	stream := client.Completions.NewStreaming(ctx, params)
	defer stream.Close()
	var text strings.Builder
	var finish string
	for stream.Next() {
		c := stream.Current()
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Text)
			if c.Choices[0].FinishReason != "" {
				finish = string(c.Choices[0].FinishReason)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != DefaultReplyText || finish != "stop" {
		t.Fatalf("streamed %q finish %q", text.String(), finish)
	}
}

func TestOpenAIEmbeddings(t *testing.T) {
	_, ts := newOpenAIFake(t, Options{})
	client := openAIClient(ts, testKey)
	ctx := context.Background()
	res, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"alpha beta", "gamma", "alpha beta"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Object != "list" || len(res.Data) != 3 || res.Model != "text-embedding-3-small" || res.Usage.PromptTokens != 5 {
		t.Fatalf("unexpected embeddings %s", res.RawJSON())
	}
	for i, d := range res.Data {
		if d.Index != int64(i) || d.Object != "embedding" || len(d.Embedding) != 8 {
			t.Fatalf("embedding %d: %+v", i, d)
		}
	}
	if res.Data[0].Embedding[0] != res.Data[2].Embedding[0] || res.Data[0].Embedding[0] == res.Data[1].Embedding[0] {
		t.Fatal("embeddings are not deterministic per input")
	}
	// base64 encoding decodes to the same vector.
	b64, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model:          "text-embedding-3-small",
		Input:          openai.EmbeddingNewParamsInputUnion{OfString: openai.String("gamma")},
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatBase64,
		Dimensions:     openai.Int(8),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(b64.Data) != 1 || len(b64.Data[0].Embedding) != 8 || float32(b64.Data[0].Embedding[3]) != float32(res.Data[1].Embedding[3]) {
		t.Fatalf("base64 embedding mismatch: %v vs %v", b64.Data[0].Embedding, res.Data[1].Embedding)
	}
}

func TestOpenAIModels(t *testing.T) {
	_, ts := newOpenAIFake(t, Options{Models: []string{"gpt-4o-mini", "gpt-4.1"}})
	client := openAIClient(ts, testKey)
	ctx := context.Background()
	var ids []string
	iter := client.Models.ListAutoPaging(ctx)
	for iter.Next() {
		m := iter.Current()
		if m.Object != "model" || m.Created == 0 || m.OwnedBy == "" {
			t.Fatalf("model %+v", m)
		}
		ids = append(ids, m.ID)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "gpt-4o-mini,gpt-4.1" {
		t.Fatalf("models %v", ids)
	}
	m, err := client.Models.Get(ctx, "gpt-4.1")
	if err != nil || m.ID != "gpt-4.1" {
		t.Fatalf("get model: %v %+v", err, m)
	}
	_, err = client.Models.Get(ctx, "gpt-unknown")
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Fatalf("unknown model: %v", err)
	}
}

func TestOpenAIResponses(t *testing.T) {
	_, ts := newOpenAIFake(t, Options{ReplyText: "A short answer from the fake."})
	client := openAIClient(ts, testKey)
	res, err := client.Responses.New(context.Background(), responses.ResponseNewParams{
		Model: "gpt-4.1",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("tell me something")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.ID, "resp_") || res.Object != "response" || res.Status != "completed" || res.Model != "gpt-4.1" {
		t.Fatalf("unexpected response %s", res.RawJSON())
	}
	if res.OutputText() != "A short answer from the fake." {
		t.Fatalf("output text %q", res.OutputText())
	}
	if len(res.Output) != 1 || res.Output[0].Type != "message" || res.Output[0].Role != "assistant" || res.Output[0].Status != "completed" {
		t.Fatalf("output %+v", res.Output)
	}
	if res.Usage.InputTokens != 3 || res.Usage.OutputTokens != 6 || res.Usage.TotalTokens != 9 {
		t.Fatalf("usage %+v", res.Usage)
	}
}

func TestOpenAIResponsesStreaming(t *testing.T) {
	reply := "Streaming answers arrive in several small pieces."
	_, ts := newOpenAIFake(t, Options{ReplyText: reply, Chunks: 3})
	client := openAIClient(ts, testKey)
	stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "gpt-4.1",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("stream please")},
	})
	defer stream.Close()
	var types []string
	var deltas strings.Builder
	var completed *responses.Response
	var nextSeq int64
	for stream.Next() {
		ev := stream.Current()
		if ev.AsAny() == nil {
			t.Fatalf("event type %q is unknown to the SDK", ev.Type)
		}
		if ev.SequenceNumber != nextSeq {
			t.Fatalf("event %q has sequence_number %d, want %d", ev.Type, ev.SequenceNumber, nextSeq)
		}
		nextSeq++
		types = append(types, ev.Type)
		switch e := ev.AsAny().(type) {
		case responses.ResponseTextDeltaEvent:
			if !e.JSON.ItemID.Valid() || !e.JSON.Logprobs.Valid() {
				t.Fatalf("delta event missing fields: %s", e.RawJSON())
			}
			deltas.WriteString(e.Delta)
		case responses.ResponseTextDoneEvent:
			if e.Text != reply {
				t.Fatalf("done text %q", e.Text)
			}
		case responses.ResponseCreatedEvent:
			if e.Response.Status != "in_progress" || !strings.HasPrefix(e.Response.ID, "resp_") {
				t.Fatalf("created %s", e.RawJSON())
			}
		case responses.ResponseCompletedEvent:
			r := e.Response
			completed = &r
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
	}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("events\n got %v\nwant %v", types, want)
	}
	if deltas.String() != reply {
		t.Fatalf("deltas %q", deltas.String())
	}
	if completed == nil || completed.Status != "completed" || completed.OutputText() != reply || completed.Usage.OutputTokens != 7 {
		t.Fatalf("completed %+v", completed)
	}
}

func TestOpenAIWrongKey(t *testing.T) {
	key := "test-wrong-key-456789"
	for _, echo := range []bool{false, true} {
		_, ts := newOpenAIFake(t, Options{EchoKeyInErrors: echo})
		client := openAIClient(ts, key)
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("echo=%v: want *openai.Error, got %v", echo, err)
		}
		if apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" || apiErr.Type != "invalid_request_error" {
			t.Fatalf("echo=%v: %+v", echo, apiErr)
		}
		shown := MaskKey(key)
		if echo {
			shown = key
		}
		wantMsg := "Incorrect API key provided: " + shown + ". You can find your API key at https://platform.openai.com/account/api-keys."
		if apiErr.Message != wantMsg {
			t.Fatalf("echo=%v: message %q", echo, apiErr.Message)
		}
		if !echo && strings.Contains(apiErr.RawJSON(), key) {
			t.Fatal("masked error leaked the key")
		}
	}
}

func TestOpenAIFailStatus(t *testing.T) {
	cases := []struct {
		status int
		typ    string
	}{
		{http.StatusTooManyRequests, "requests"},
		{http.StatusInternalServerError, "server_error"},
		{http.StatusServiceUnavailable, "server_error"},
	}
	for _, c := range cases {
		_, ts := newOpenAIFake(t, Options{FailStatus: c.status})
		client := openAIClient(ts, testKey)
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != c.status || apiErr.Type != c.typ {
			t.Fatalf("status %d: %v", c.status, err)
		}
		if c.status == http.StatusTooManyRequests && apiErr.Response.Header.Get("retry-after") == "" {
			t.Fatal("429 without retry-after")
		}
	}
}

func TestOpenAIHangEndsOnCancel(t *testing.T) {
	fake, ts := newOpenAIFake(t, Options{Hang: true})
	client := openAIClient(ts, testKey)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("hang did not end with the client context")
	}
	if fake.RequestCount() != 1 {
		t.Fatalf("request count %d", fake.RequestCount())
	}
	// ts.Close (in cleanup) blocks until the handler returns, proving it ended.
}
