package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/route"
)

// translating is a gateway with an OpenAI and an Anthropic provider,
// limits and usage recording on.
type translating struct {
	*limited
	claude *fake
}

func newTranslating(t *testing.T, anthropicOpts fakeprovider.Options, r config.Routing) *translating {
	t.Helper()
	l := newLimited(t, fakeprovider.Options{}, nil)
	claude := newFake(t, "anthropic", anthropicOpts)
	ups := []*route.Upstream{l.up.upstream("openai", "openai", "gpt-*"), claude.upstream("anthropic", "anthropic", "claude-*")}
	l.SetTable(route.NewTable(ups).WithRouting(r, nil))
	return &translating{limited: l, claude: claude}
}

// usageOf returns a key's recorded usage rows by model.
func (tr *translating) usageOf(t *testing.T, keyID string) map[string]int64 {
	tr.usage.Flush(context.Background())
	rows, err := tr.keys.st.ListUsage(context.Background(), keyID, "2000-01-01")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Model] += r.OutputTokens
	}
	return out
}

// TestOpenAIClientReachesAnthropicModel: the official OpenAI SDK asks for
// a Claude model; keygate translates the request to the Messages API, the
// answer (whole and streamed) back to Chat Completions, and meters the
// provider's own usage.
func TestOpenAIClientReachesAnthropicModel(t *testing.T) {
	tr := newTranslating(t, fakeprovider.Options{}, config.Routing{})
	key := tr.key(t, "oai-client", adminapi.Limits{})
	oc := openai.NewClient(option.WithBaseURL(tr.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ctx := context.Background()
	chat, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "claude-sonnet-4-5",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content != tr.claude.ReplyText() || chat.Model != "claude-sonnet-4-5" || chat.Usage.CompletionTokens == 0 {
		t.Fatalf("translated answer: %+v", chat)
	}
	seen := tr.claude.Requests()[0]
	if seen.Path != "/v1/messages" || !strings.Contains(string(seen.Body), `"system"`) || seen.Header.Get("X-Api-Key") != tr.claude.key {
		t.Fatalf("the Anthropic provider saw %s %s (key ok: %v)", seen.Path, seen.Body, seen.Header.Get("X-Api-Key") == tr.claude.key)
	}
	if seen.Header.Get("Authorization") != "" {
		t.Fatal("the client's credential reached the provider")
	}

	stream := oc.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "claude-sonnet-4-5",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != tr.claude.ReplyText() || acc.Usage.CompletionTokens == 0 {
		t.Fatalf("translated stream: %v %q usage %+v", err, acc.Choices[0].Message.Content, acc.Usage)
	}
	// The stream settles when keygate has copied its end, just after the client read it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out := tr.usageOf(t, "key_oai-client")["claude-sonnet-4-5"]
		if out >= 2*acc.Usage.CompletionTokens {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metered %d output tokens for two calls of %d", out, acc.Usage.CompletionTokens)
		}
	}
}

// TestAnthropicClientReachesOpenAIModel is the reverse, with the official
// Anthropic SDK.
func TestAnthropicClientReachesOpenAIModel(t *testing.T) {
	tr := newTranslating(t, fakeprovider.Options{}, config.Routing{})
	key := tr.key(t, "claude-client", adminapi.Limits{})
	ac := anthropic.NewClient(aoption.WithBaseURL(tr.url), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))
	ctx := context.Background()
	params := anthropic.MessageNewParams{
		Model:     "gpt-4o-mini",
		MaxTokens: 100,
		System:    []anthropic.TextBlockParam{{Text: "be brief"}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))},
	}
	msg, err := ac.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) == 0 || msg.Content[0].Text != tr.up.ReplyText() || msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.OutputTokens == 0 {
		t.Fatalf("translated answer: %+v", msg)
	}
	seen := tr.up.Requests()[0]
	if seen.Path != "/v1/chat/completions" || seen.Header.Get("Authorization") != "Bearer "+tr.up.key || seen.Header.Get("X-Api-Key") != "" {
		t.Fatalf("the OpenAI provider saw %s with the wrong credentials", seen.Path)
	}
	stream := ac.Messages.NewStreaming(ctx, params)
	var m anthropic.Message
	for stream.Next() {
		if err := m.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil || len(m.Content) == 0 || m.Content[0].Text != tr.up.ReplyText() || m.Usage.OutputTokens == 0 {
		t.Fatalf("translated stream: %v %+v", err, m)
	}
	for deadline := time.Now().Add(5 * time.Second); tr.usageOf(t, "key_claude-client")["gpt-4o-mini"] == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no usage metered for translated calls")
		}
	}
}

// TestTranslationRefusals: an endpoint keygate cannot translate, and a
// request using a feature the other API lacks, are refused before
// anything goes upstream; an upstream error comes back in the client's
// error shape.
func TestTranslationRefusals(t *testing.T) {
	tr := newTranslating(t, fakeprovider.Options{FailStatus: 529, FailCount: 1}, config.Routing{})
	key := tr.key(t, "refused", adminapi.Limits{})
	a := send(t, "POST", tr.url+"/v1/embeddings", `{"model":"claude-sonnet-4-5","input":"x"}`, "Authorization", "Bearer "+key)
	if _, code := openAIError(t, a, 400); code != "wrong_api_dialect" {
		t.Fatalf("embeddings from an Anthropic provider: %q", code)
	}
	a = send(t, "POST", tr.url+"/v1/chat/completions", `{"model":"claude-sonnet-4-5","n":2,"messages":[{"role":"user","content":"x"}]}`, "Authorization", "Bearer "+key)
	if msg, code := openAIError(t, a, 400); code != "untranslatable_request" || !strings.Contains(msg, "n") {
		t.Fatalf("n=2 to an Anthropic model: %q %q", code, msg)
	}
	if tr.claude.RequestCount() != 0 {
		t.Fatal("a refused request reached the provider")
	}
	a = send(t, "POST", tr.url+"/v1/chat/completions", chatFor("claude-sonnet-4-5"), "Authorization", "Bearer "+key)
	if _, code := openAIError(t, a, 529); code == "" {
		t.Fatalf("an overloaded Anthropic provider: %s", a.body)
	}
}

// TestAliasFailsOverAcrossDialects: an alias whose first deployment is an
// overloaded Anthropic model fails over to an OpenAI one, each request
// translated for the deployment that serves it.
func TestAliasFailsOverAcrossDialects(t *testing.T) {
	r := config.Routing{
		Deployments: []config.Deployment{deployment("claude", "anthropic", "claude-sonnet-4-5"), deployment("gpt", "openai", "gpt-4o-mini")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"claude", "gpt"}, Timeout: 5 * time.Second}},
	}
	tr := newTranslating(t, fakeprovider.Options{FailStatus: 529}, r)
	key := tr.key(t, "mixed", adminapi.Limits{})
	oc := openai.NewClient(option.WithBaseURL(tr.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	chat, err := oc.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "smart",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})
	if err != nil || chat.Choices[0].Message.Content != tr.up.ReplyText() || chat.Model != "gpt-4o-mini" {
		t.Fatalf("%v %+v", err, chat)
	}
	if tr.claude.RequestCount() != 1 || !strings.Contains(string(tr.claude.Requests()[0].Body), `"max_tokens"`) {
		t.Fatal("the Anthropic deployment was not tried with a translated request")
	}
	// An Anthropic client on the same alias gets the OpenAI answer in its shape.
	ac := anthropic.NewClient(aoption.WithBaseURL(tr.url), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))
	msg, err := ac.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "smart", MaxTokens: 50,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))},
	})
	if err != nil || msg.Content[0].Text != tr.up.ReplyText() {
		t.Fatalf("%v %+v", err, msg)
	}
}
