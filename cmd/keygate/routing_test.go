package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestOneEndpointManyProviders: one keygate key and the official SDKs
// reach every provider through one endpoint. An alias fails over from an
// overloaded Anthropic deployment to an OpenAI one; an OpenAI client calls
// a Claude model and an Anthropic client a GPT one, translated; a provider
// added with a preset is reached on its own paths; a plain HTTP API is
// reached through /proxy/ with its credential from the vault; /v1/models
// lists the aliases; and every call is on the audit trail.
func TestOneEndpointManyProviders(t *testing.T) {
	var mu sync.Mutex
	var billingSeen []http.Header
	billing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		billingSeen = append(billingSeen, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"invoices":[],"path":"`+r.URL.Path+`"}`)
	}))
	defer billing.Close()

	cfg := testConfig(t, t.TempDir())
	cfg.Routing = config.Routing{
		Deployments: []config.Deployment{
			{Name: "claude", Provider: "anthropic", Model: "claude-sonnet-4-5"},
			{Name: "gpt", Provider: "openai", Model: "gpt-4o-mini", RPM: 100},
		},
		Aliases: map[string]config.Alias{"smart": {Deployments: []string{"claude", "gpt"}, Timeout: 10 * time.Second}},
	}
	cfg.Services = map[string]config.Service{
		"billing": {BaseURL: billing.URL + "/api", Secret: "billing/api-key", Auth: "header", AuthName: "X-Billing-Key", AllowPrivate: true},
	}
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{FailStatus: 529, FailCount: 1})
	in.register(up)
	groqKey := canary("groq")
	groq := fakeprovider.NewPreset("groq", fakeprovider.Options{APIKey: groqKey})
	gs := httptest.NewServer(groq)
	defer gs.Close()
	in.mustCLI(map[string]string{"GROQ_KEY": groqKey}, "", "provider", "add", "groq", "--preset", "groq",
		"--base-url", gs.URL+"/openai/v1", "--models", "llama-*", "--api-key-env", "GROQ_KEY")
	billingKey := canary("billing")
	in.mustCLI(map[string]string{"V": billingKey}, "", "secret", "put", "billing/api-key", "--from-env", "V")

	key := in.createKey("--name", "one-key", "--allow-service", "billing")
	ctx := context.Background()
	oc := openai.NewClient(option.WithBaseURL(in.addrs.Gateway+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ac := anthropic.NewClient(aoption.WithBaseURL(in.addrs.Gateway), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))

	// The alias: the Anthropic deployment answers 529 once, keygate fails over.
	chat, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "smart", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err != nil || chat.Choices[0].Message.Content != up.openai.ReplyText() {
		t.Fatalf("alias: %v %+v", err, chat)
	}
	if up.anthropic.RequestCount() != 1 {
		t.Fatalf("the Anthropic deployment saw %d requests, want the 1 that failed", up.anthropic.RequestCount())
	}
	// OpenAI client, Claude model.
	chat, err = oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "anthropic/claude-sonnet-4-5", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err != nil || chat.Choices[0].Message.Content != up.anthropic.ReplyText() {
		t.Fatalf("OpenAI client to Claude: %v %+v", err, chat)
	}
	// Anthropic client, GPT model, streamed.
	stream := ac.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
		Model: "gpt-4o-mini", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	var m anthropic.Message
	for stream.Next() {
		if err := m.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil || len(m.Content) == 0 || m.Content[0].Text != up.openai.ReplyText() {
		t.Fatalf("Anthropic client to GPT: %v %+v", err, m)
	}
	// A preset provider.
	chat, err = oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "llama-3.1-8b-instant", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err != nil || chat.Choices[0].Message.Content != groq.ReplyText() || groq.Requests()[0].Path != "/openai/v1/chat/completions" {
		t.Fatalf("groq preset: %v %+v", err, chat)
	}
	// The passthrough service, its credential from the vault.
	req, _ := http.NewRequest("GET", in.addrs.Gateway+"/proxy/billing/v1/invoices", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"/api/v1/invoices"`) {
		t.Fatalf("passthrough: %d %s", resp.StatusCode, body)
	}
	mu.Lock()
	got := billingSeen[0].Get("X-Billing-Key")
	mu.Unlock()
	if got != billingKey {
		t.Fatal("the billing API did not receive its credential from the vault")
	}
	// /v1/models lists the alias next to the providers' models.
	page, err := oc.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range page.Data {
		ids[m.ID] = true
	}
	if !ids["smart"] || !ids["gpt-4o-mini"] {
		t.Fatalf("models: %v", ids)
	}
	// Every call is on the trail, the passthrough one naming its service.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var evs struct {
			Events []struct {
				Resource string            `json:"resource"`
				Fields   map[string]string `json:"fields"`
			} `json:"events"`
		}
		if err := json.Unmarshal([]byte(in.mustCLI(nil, "", "--json", "audit", "search", "--key", "one-key")), &evs); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range evs.Events {
			if ev.Resource == "GET /proxy/billing/v1/invoices" && ev.Fields["provider"] == "billing" {
				found = true
			}
		}
		if found && len(evs.Events) >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trail holds %d of the key's events, passthrough found: %v", len(evs.Events), found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
