package fakeprovider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

func newAnthropicFake(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	fake := NewAnthropic(opts)
	ts := httptest.NewServer(fake)
	t.Cleanup(func() {
		fake.Close()
		ts.Close()
	})
	return fake, ts
}

func anthropicClient(ts *httptest.Server, key string) anthropic.Client {
	return anthropic.NewClient(
		option.WithBaseURL(ts.URL),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	)
}

func messageParams(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     model,
		MaxTokens: 1024,
		System:    []anthropic.TextBlockParam{{Text: "be brief"}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello fake claude"))},
	}
}

func TestAnthropicMessage(t *testing.T) {
	fake, ts := newAnthropicFake(t, Options{ReplyText: "Hi from the fake Claude."})
	client := anthropicClient(ts, testKey)
	msg, err := client.Messages.New(context.Background(), messageParams("claude-sonnet-4-5"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.ID, "msg_") || msg.Type != "message" || msg.Role != "assistant" || msg.Model != "claude-sonnet-4-5" {
		t.Fatalf("unexpected envelope %s", msg.RawJSON())
	}
	if len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.Content[0].Text != "Hi from the fake Claude." {
		t.Fatalf("content %+v", msg.Content)
	}
	if msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.InputTokens != 5 || msg.Usage.OutputTokens != 5 {
		t.Fatalf("stop=%q usage=%+v", msg.StopReason, msg.Usage)
	}
	seen := fake.Requests()
	if len(seen) != 1 || seen[0].Path != "/v1/messages" || seen[0].Header.Get("x-api-key") != testKey ||
		seen[0].Header.Get("anthropic-version") == "" {
		t.Fatalf("recorded %+v", seen)
	}
}

func TestAnthropicMessageStreaming(t *testing.T) {
	reply := "Streamed words from the fake Claude arrive in order."
	_, ts := newAnthropicFake(t, Options{ReplyText: reply, Chunks: 6})
	client := anthropicClient(ts, testKey)
	stream := client.Messages.NewStreaming(context.Background(), messageParams("claude-haiku-4-5"))
	defer stream.Close()
	var msg anthropic.Message
	var types []string
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if err := msg.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	// The SDK drops ping events before they reach the caller.
	want := "message_start,content_block_start," + strings.Repeat("content_block_delta,", 6) + "content_block_stop,message_delta,message_stop"
	if strings.Join(types, ",") != want {
		t.Fatalf("events\n got %v\nwant %s", types, want)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != reply || msg.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("accumulated %s", msg.RawJSON())
	}
	if msg.Usage.InputTokens != 5 || msg.Usage.OutputTokens != 9 || msg.Model != "claude-haiku-4-5" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Fatalf("accumulated usage %+v model %q id %q", msg.Usage, msg.Model, msg.ID)
	}
}

func TestAnthropicModels(t *testing.T) {
	_, ts := newAnthropicFake(t, Options{})
	client := anthropicClient(ts, testKey)
	ctx := context.Background()
	iter := client.Models.ListAutoPaging(ctx, anthropic.ModelListParams{})
	var ids []string
	for iter.Next() {
		m := iter.Current()
		if m.Type != "model" || m.DisplayName == "" || m.CreatedAt.IsZero() {
			t.Fatalf("model %s", m.RawJSON())
		}
		ids = append(ids, m.ID)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != strings.Join(DefaultAnthropicModels(), ",") {
		t.Fatalf("models %v", ids)
	}
	m, err := client.Models.Get(ctx, "claude-sonnet-4-5", anthropic.ModelGetParams{})
	if err != nil || m.DisplayName != "Claude Sonnet 4.5" {
		t.Fatalf("get: %v %+v", err, m)
	}
}

func TestAnthropicCountTokens(t *testing.T) {
	_, ts := newAnthropicFake(t, Options{})
	client := anthropicClient(ts, testKey)
	p := messageParams("claude-sonnet-4-5")
	res, err := client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    p.Model,
		Messages: p.Messages,
	})
	if err != nil || res.InputTokens != 3 {
		t.Fatalf("count tokens: %v %+v", err, res)
	}
}

func TestAnthropicWrongKey(t *testing.T) {
	key := "test-wrong-key-456789"
	for _, echo := range []bool{false, true} {
		_, ts := newAnthropicFake(t, Options{EchoKeyInErrors: echo})
		client := anthropicClient(ts, key)
		_, err := client.Messages.New(context.Background(), messageParams("claude-sonnet-4-5"))
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("echo=%v: want *anthropic.Error, got %v", echo, err)
		}
		if apiErr.StatusCode != http.StatusUnauthorized || apiErr.Type() != "authentication_error" || !strings.HasPrefix(apiErr.RequestID, "req_") {
			t.Fatalf("echo=%v: status %d type %q request id %q", echo, apiErr.StatusCode, apiErr.Type(), apiErr.RequestID)
		}
		if got := strings.Contains(apiErr.RawJSON(), key); got != echo {
			t.Fatalf("echo=%v: key in body = %v: %s", echo, got, apiErr.RawJSON())
		}
	}
}

func TestAnthropicFailStatus(t *testing.T) {
	cases := []struct {
		status int
		typ    string
	}{
		{http.StatusTooManyRequests, "rate_limit_error"},
		{http.StatusInternalServerError, "api_error"},
		{529, "overloaded_error"},
	}
	for _, c := range cases {
		_, ts := newAnthropicFake(t, Options{FailStatus: c.status})
		client := anthropicClient(ts, testKey)
		_, err := client.Messages.New(context.Background(), messageParams("claude-sonnet-4-5"))
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != c.status || string(apiErr.Type()) != c.typ {
			t.Fatalf("status %d: %v", c.status, err)
		}
		if c.status == http.StatusTooManyRequests && apiErr.Response.Header.Get("retry-after") == "" {
			t.Fatal("429 without retry-after")
		}
	}
}

func TestAnthropicStreamingFailStatus(t *testing.T) {
	_, ts := newAnthropicFake(t, Options{FailStatus: 529})
	client := anthropicClient(ts, testKey)
	stream := client.Messages.NewStreaming(context.Background(), messageParams("claude-sonnet-4-5"))
	defer stream.Close()
	for stream.Next() {
		t.Fatal("unexpected event")
	}
	var apiErr *anthropic.Error
	if !errors.As(stream.Err(), &apiErr) || apiErr.StatusCode != 529 {
		t.Fatalf("stream err %v", stream.Err())
	}
}

func TestAnthropicHangEndsOnCancel(t *testing.T) {
	_, ts := newAnthropicFake(t, Options{Hang: true})
	client := anthropicClient(ts, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	_, err := client.Messages.New(ctx, messageParams("claude-sonnet-4-5"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want canceled, got %v", err)
	}
}
