package provider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
)

// sdkServer answers every request through d: GET /v1/models with models, any
// other request with an error of the given status.
func sdkServer(t *testing.T, d Dialect, status int, hits *atomic.Int32) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
			d.WriteModels(w, testModels())
			return
		}
		w.Header().Set("Retry-After-Ms", "1") // keep the SDKs' retries fast
		d.WriteError(w, status, "model_not_allowed", `this API key may not use model "x"`)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestOpenAISDK checks the official OpenAI SDK reads keygate's errors and
// model list, and does not retry a denial.
func TestOpenAISDK(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		status, wantHits int
	}{{403, 1}, {401, 1}, {429, 3}, {502, 3}} {
		var hits atomic.Int32
		ts := sdkServer(t, OpenAI{}, tt.status, &hits)
		client := openai.NewClient(ooption.WithBaseURL(ts.URL+"/v1"), ooption.WithAPIKey("kg_test_abc"),
			ooption.WithMaxRetries(2), ooption.WithRequestTimeout(5*time.Second))
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || apiErr.Code != "model_not_allowed" ||
			apiErr.Message != `this API key may not use model "x"` || apiErr.Type != openAIErrorType(tt.status, "") {
			t.Fatalf("%d: err = %#v", tt.status, err)
		}
		if int(hits.Load()) != tt.wantHits {
			t.Errorf("%d: %d requests, want %d", tt.status, hits.Load(), tt.wantHits)
		}
	}

	var hits atomic.Int32
	ts := sdkServer(t, OpenAI{}, 500, &hits)
	client := openai.NewClient(ooption.WithBaseURL(ts.URL+"/v1"), ooption.WithAPIKey("kg_test_abc"))
	var ids []string
	iter := client.Models.ListAutoPaging(ctx)
	for iter.Next() {
		m := iter.Current()
		ids = append(ids, m.ID)
		if m.ID == "gpt-4o" && (m.Created != 1715367049 || m.OwnedBy != "openai") {
			t.Errorf("model %+v", m)
		}
	}
	if err := iter.Err(); err != nil || len(ids) != 3 {
		t.Fatalf("models %v, %v", ids, err)
	}
}

// TestAnthropicSDK checks the official Anthropic SDK reads keygate's errors
// and model list, and does not retry a denial.
func TestAnthropicSDK(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		status   int
		typ      string
		wantHits int
	}{{403, "permission_error", 1}, {401, "authentication_error", 1}, {529, "overloaded_error", 3}} {
		var hits atomic.Int32
		ts := sdkServer(t, Anthropic{}, tt.status, &hits)
		client := anthropic.NewClient(aoption.WithBaseURL(ts.URL), aoption.WithAPIKey("kg_test_abc"),
			aoption.WithMaxRetries(2), aoption.WithRequestTimeout(5*time.Second))
		_, err := client.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-sonnet-4-5", MaxTokens: 16,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.status || string(apiErr.Type()) != tt.typ {
			t.Fatalf("%d: err = %v", tt.status, err)
		}
		if int(hits.Load()) != tt.wantHits {
			t.Errorf("%d: %d requests, want %d", tt.status, hits.Load(), tt.wantHits)
		}
	}

	var hits atomic.Int32
	ts := sdkServer(t, Anthropic{}, 500, &hits)
	client := anthropic.NewClient(aoption.WithBaseURL(ts.URL), aoption.WithAPIKey("kg_test_abc"))
	var ids []string
	iter := client.Models.ListAutoPaging(ctx, anthropic.ModelListParams{})
	for iter.Next() {
		m := iter.Current()
		ids = append(ids, m.ID)
		if m.ID == "gpt-4o" && (m.DisplayName != "GPT-4o" || !m.CreatedAt.Equal(time.Unix(1715367049, 0))) {
			t.Errorf("model %+v", m)
		}
	}
	if err := iter.Err(); err != nil || len(ids) != 3 {
		t.Fatalf("models %v, %v", ids, err)
	}
}
