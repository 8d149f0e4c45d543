package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aopt "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/openai/openai-go/v3"
	oopt "github.com/openai/openai-go/v3/option"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/server"
)

// Bedrock models that are not Anthropic's (Amazon Nova, Meta Llama) reached
// from the OpenAI and Anthropic dialects: keygate translates each call to
// Bedrock's Converse or ConverseStream and the answer back. Upstream is
// internal/fakecloud's Bedrock runtime, which verifies every SigV4
// signature and checks Converse bodies against the AWS API reference's
// shapes. No real AWS is called.

const (
	novaModel  = "amazon.nova-pro-v1:0"
	llamaModel = "meta.llama3-3-70b-instruct-v1:0"
	claudeID   = "anthropic.claude-sonnet-4-5-20250929-v1:0"
)

// converseGateway runs keygate with a Bedrock provider (static AWS keys
// sealed in the vault) in front of a fake Bedrock runtime, serving TLS so
// Bedrock API key clients can reach it too.
func converseGateway(t *testing.T, fake *fakecloud.Bedrock, c *fakecloud.Clouds) (*instance, map[string]string) {
	t.Helper()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := testConfig(t, t.TempDir())
	cfg.TLS.SelfSigned = true
	in := start(t, cfg, "", server.WithGetenv(func(string) string { return "" }))
	env := map[string]string{"KEYGATE_ADMIN_CA": filepath.Join(cfg.DataDir, "tls", "self-signed.crt")}
	cred := cloudauth.Credential{Kind: "aws", Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: c.AWSKey.SecretAccessKey}
	in.mustCLI(env, "", "provider", "add", "bedrock", "--preset", "bedrock", "--base-url", srv.URL, "--credential-file", credentialFile(t, cred))
	return in, env
}

// gatewayHTTP trusts the gateway's self-signed certificate.
func gatewayHTTP(t *testing.T, in *instance) *http.Client {
	t.Helper()
	return bedrockClient(t, in, "unused").Options().HTTPClient.(*http.Client)
}

// TestBedrockConverseThroughTheGateway: the official OpenAI and Anthropic
// Go SDKs call Amazon Nova and Meta Llama on Bedrock through keygate,
// plain and streaming, with a system prompt and several turns. Each call
// reaches the fake's Converse or ConverseStream signed with keygate's AWS
// key and never carrying the client's keygate key; the answer, the stop
// reason and the usage come back in the client's dialect; usage is
// metered; a field Converse cannot take is refused before anything goes
// upstream, and Bedrock's own validation error reaches the client in its
// dialect's error shape.
func TestBedrockConverseThroughTheGateway(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, env := converseGateway(t, fake, c)
	key := in.createKeyEnv(env, "--name", "converse-app")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hc := gatewayHTTP(t, in)

	oa := openai.NewClient(oopt.WithBaseURL(in.addrs.Gateway+"/v1"), oopt.WithAPIKey(key), oopt.WithMaxRetries(0), oopt.WithHTTPClient(hc))
	chat := openai.ChatCompletionNewParams{Model: "bedrock/" + novaModel, Messages: []openai.ChatCompletionMessageParamUnion{
		openai.SystemMessage("You answer briefly."), openai.UserMessage("hi"), openai.AssistantMessage("Hello."), openai.UserMessage("and again?")}}
	resp, err := oa.Chat.Completions.New(ctx, chat)
	if err != nil {
		t.Fatalf("openai SDK, Converse: %v", err)
	}
	if resp.Choices[0].Message.Content != fakecloud.ReplyText || resp.Choices[0].FinishReason != "stop" || resp.Usage.PromptTokens != 10 || resp.Usage.CompletionTokens != 7 {
		t.Fatalf("openai SDK, Converse: %+v", resp)
	}
	chat.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	st := oa.Chat.Completions.NewStreaming(ctx, chat)
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatalf("openai SDK, ConverseStream: %v", err)
	}
	if acc.Choices[0].Message.Content != fakecloud.ReplyText || acc.Choices[0].FinishReason != "stop" || acc.Usage.PromptTokens != 10 || acc.Usage.CompletionTokens != 7 {
		t.Fatalf("openai SDK, ConverseStream: %+v %+v", acc.Choices, acc.Usage)
	}
	short := openai.ChatCompletionNewParams{Model: "bedrock/" + novaModel, MaxTokens: openai.Int(5), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	if resp, err := oa.Chat.Completions.New(ctx, short); err != nil || resp.Choices[0].FinishReason != "length" {
		t.Fatalf("openai SDK, Converse cut at maxTokens: %v %+v", err, resp)
	}

	an := anthropic.NewClient(aopt.WithBaseURL(in.addrs.Gateway), aopt.WithAPIKey(key), aopt.WithMaxRetries(0), aopt.WithHTTPClient(hc))
	// Refused before anything goes upstream or any limit is taken, so it
	// costs nothing (the usage below): extended thinking is not
	// translated to Converse.
	_, err = an.Messages.New(ctx, anthropic.MessageNewParams{Model: anthropic.Model("bedrock/" + llamaModel), MaxTokens: 2048, Thinking: anthropic.ThinkingConfigParamOfEnabled(1024),
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	var aerr *anthropic.Error
	if !errors.As(err, &aerr) || aerr.StatusCode != 400 || !strings.Contains(aerr.Error(), "thinking") || !strings.Contains(aerr.Error(), "through Bedrock's Converse API") {
		t.Fatalf("extended thinking for a Converse model: %v", err)
	}
	if n := len(fake.Snapshot().Requests); n != 3 {
		t.Fatalf("a refused request went upstream: %d requests", n)
	}
	msgs := anthropic.MessageNewParams{Model: anthropic.Model("bedrock/" + llamaModel), MaxTokens: 64, System: []anthropic.TextBlockParam{{Text: "You answer briefly."}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi")), anthropic.NewAssistantMessage(anthropic.NewTextBlock("Hello.")),
			anthropic.NewUserMessage(anthropic.NewTextBlock("and again?"))}}
	msg, err := an.Messages.New(ctx, msgs)
	if err != nil {
		t.Fatalf("anthropic SDK, Converse: %v", err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != fakecloud.ReplyText || msg.StopReason != anthropic.StopReasonEndTurn || msg.Usage.InputTokens != 10 || msg.Usage.OutputTokens != 7 {
		t.Fatalf("anthropic SDK, Converse: %+v", msg)
	}
	ast := an.Messages.NewStreaming(ctx, msgs)
	var macc anthropic.Message
	for ast.Next() {
		if err := macc.Accumulate(ast.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ast.Err(); err != nil {
		t.Fatalf("anthropic SDK, ConverseStream: %v", err)
	}
	if len(macc.Content) != 1 || macc.Content[0].Text != fakecloud.ReplyText || macc.StopReason != anthropic.StopReasonEndTurn || macc.Usage.OutputTokens != 7 || macc.Usage.InputTokens != 10 {
		t.Fatalf("anthropic SDK, ConverseStream: %+v", macc)
	}

	seen := fake.Snapshot()
	want := []string{novaModel + "/converse", novaModel + "/converse-stream", novaModel + "/converse", llamaModel + "/converse", llamaModel + "/converse-stream"}
	if len(seen.Requests) != len(want) {
		t.Fatalf("upstream requests %v", seen.Requests)
	}
	for i, w := range want {
		if seen.Requests[i] != "POST /model/"+w || seen.KeyIDs[i] != c.AWSKey.AccessKeyID {
			t.Fatalf("upstream request %d: %s signed by %s, want %s", i, seen.Requests[i], seen.KeyIDs[i], w)
		}
		for name, vs := range seen.Headers[i] {
			if strings.Contains(strings.Join(vs, " "), key) || (name == "Authorization" && !strings.HasPrefix(vs[0], "AWS4-HMAC-SHA256 ")) {
				t.Fatalf("upstream request %d carried the client's key or no SigV4 signature in %s", i, name)
			}
		}
		if strings.Contains(string(seen.Bodies[i]), key) {
			t.Fatalf("upstream request %d carried the client's key in its body", i)
		}
	}
	var first struct {
		System   []map[string]string `json:"system"`
		Messages []struct {
			Role    string              `json:"role"`
			Content []map[string]string `json:"content"`
		} `json:"messages"`
		InferenceConfig struct {
			MaxTokens int `json:"maxTokens"`
		} `json:"inferenceConfig"`
	}
	if err := json.Unmarshal(seen.Bodies[0], &first); err != nil || len(first.System) != 1 || first.System[0]["text"] != "You answer briefly." ||
		len(first.Messages) != 3 || first.Messages[1].Role != "assistant" || first.Messages[2].Content[0]["text"] != "and again?" || first.InferenceConfig.MaxTokens == 0 {
		t.Fatalf("the Converse body upstream: %v %s", err, seen.Bodies[0])
	}

	// Metered from Converse's usage and ConverseStream's metadata event:
	// five answered calls of 10 input and 7 output tokens, and nothing for
	// the refused one.
	until(t, "the usage of the Converse calls", func() bool {
		var u adminapi.KeyUsage
		decodeJSON(t, in.mustCLI(env, "", "--json", "key", "usage", "converse-app"), &u)
		got := map[string][3]int64{}
		for _, r := range u.Rows {
			got[r.Model] = [3]int64{r.Requests, r.InputTokens, r.OutputTokens}
		}
		return got["bedrock/"+novaModel] == [3]int64{3, 30, 21} && got["bedrock/"+llamaModel] == [3]int64{2, 20, 14}
	})

	// Bedrock's own ValidationException (an empty message), in OpenAI's shape.
	_, err = oa.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "bedrock/" + novaModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("")}})
	var oerr *openai.Error
	if !errors.As(err, &oerr) || oerr.StatusCode != 400 || !strings.Contains(oerr.Message, "is empty") {
		t.Fatalf("a blank message: %v %s", err, oerr.RawJSON())
	}
	if n := len(fake.Snapshot().Requests); n != len(want)+1 {
		t.Fatalf("upstream requests after the refusals: %d, want %d", n, len(want)+1)
	}

	// A model alias whose deployment is a Bedrock model reaches Converse
	// the same way.
	in.mustCLI(env, "", "route", "add", "deployment", "nova", "--provider", "bedrock", "--model", novaModel)
	in.mustCLI(env, "", "route", "add", "alias", "smart", "--deployment", "nova")
	before := len(fake.Snapshot().Requests)
	aliasChat := openai.ChatCompletionNewParams{Model: "smart", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	until(t, "the alias to be served", func() bool {
		resp, err := oa.Chat.Completions.New(ctx, aliasChat)
		return err == nil && resp.Choices[0].Message.Content == fakecloud.ReplyText
	})
	ast = an.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: "smart", MaxTokens: 64, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	macc = anthropic.Message{}
	for ast.Next() {
		if err := macc.Accumulate(ast.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ast.Err(); err != nil || len(macc.Content) != 1 || macc.Content[0].Text != fakecloud.ReplyText {
		t.Fatalf("anthropic SDK stream to an alias of a Bedrock deployment: %v %+v", err, macc)
	}
	seen = fake.Snapshot()
	if got := seen.Requests[len(seen.Requests)-1]; got != "POST /model/"+novaModel+"/converse-stream" || len(seen.Requests) <= before {
		t.Fatalf("the alias reached %v", seen.Requests[before:])
	}

	if strings.Contains(in.stderr.String(), c.AWSKey.SecretAccessKey) || strings.Contains(in.stderr.String(), key) {
		t.Fatal("a credential reached keygate's log")
	}
}

// TestBedrockCredentialSplitAcrossEvents: a model on Bedrock streams a
// keygate key in two pieces, each in its own event-stream message. On
// every path a client can take (Bedrock's own ConverseStream and
// InvokeModelWithResponseStream passed through to the AWS SDK, and
// ConverseStream or InvokeModelWithResponseStream translated for the
// OpenAI and Anthropic SDKs), keygate finds the key across the messages
// and cuts it out before either piece reaches the client, and the audit
// trail records it. No real AWS is called.
func TestBedrockCredentialSplitAcrossEvents(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, env := converseGateway(t, fake, c)
	key := in.createKeyEnv(env, "--name", "split-app")
	leaked := in.createKeyEnv(env, "--name", "leaked")
	cut := len(leaked) / 2
	fake.Reply = []string{"Here it is: " + leaked[:cut], leaked[cut:] + " done."}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hc := gatewayHTTP(t, in)

	check := func(path, got string) {
		t.Helper()
		if strings.Contains(got, leaked[4:cut]) || strings.Contains(got, leaked[cut:]) || !strings.Contains(got, "Here it is: [REDACTED:") || !strings.Contains(got, " done.") {
			t.Errorf("%s: the client read %q", path, got)
		}
	}

	br := bedrockClient(t, in, key)
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}
	cs, err := br.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(novaModel), Messages: msgs})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	var text strings.Builder
	for ev := range cs.GetStream().Events() {
		if d, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
			text.WriteString(d.Value.Delta.(*types.ContentBlockDeltaMemberText).Value)
		}
	}
	if err := cs.GetStream().Close(); err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	check("ConverseStream passed through", text.String())

	ims, err := br.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(claudeID), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatalf("InvokeModelWithResponseStream: %v", err)
	}
	text.Reset()
	for ev := range ims.GetStream().Events() {
		if ch, ok := ev.(*types.ResponseStreamMemberChunk); ok {
			var e struct {
				Delta struct{ Text string } `json:"delta"`
			}
			_ = json.Unmarshal(ch.Value.Bytes, &e)
			text.WriteString(e.Delta.Text)
		}
	}
	if err := ims.GetStream().Close(); err != nil {
		t.Fatalf("InvokeModelWithResponseStream: %v", err)
	}
	check("InvokeModelWithResponseStream passed through", text.String())

	oa := openai.NewClient(oopt.WithBaseURL(in.addrs.Gateway+"/v1"), oopt.WithAPIKey(key), oopt.WithMaxRetries(0), oopt.WithHTTPClient(hc))
	an := anthropic.NewClient(aopt.WithBaseURL(in.addrs.Gateway), aopt.WithAPIKey(key), aopt.WithMaxRetries(0), aopt.WithHTTPClient(hc))
	for _, model := range []string{novaModel, claudeID} {
		st := oa.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "bedrock/" + model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		var acc openai.ChatCompletionAccumulator
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if err := st.Err(); err != nil {
			t.Fatalf("openai SDK stream, %s: %v", model, err)
		}
		check("OpenAI SDK stream to "+model, acc.Choices[0].Message.Content)

		ast := an.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: anthropic.Model("bedrock/" + model), MaxTokens: 64,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
		var macc anthropic.Message
		for ast.Next() {
			if err := macc.Accumulate(ast.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := ast.Err(); err != nil {
			t.Fatalf("anthropic SDK stream, %s: %v", model, err)
		}
		check("Anthropic SDK stream to "+model, macc.Content[0].Text)
	}

	// Every one of the six calls is on the audit trail with the key found
	// in its streamed text and redacted.
	until(t, "six request events recording the redaction", func() bool {
		var evs adminapi.AuditEvents
		decodeJSON(t, in.mustCLI(env, "", "--json", "audit", "search", "--type", "request", "--since", "1h", "--limit", "100"), &evs)
		n := 0
		for _, raw := range evs.Events {
			var ev adminapi.AuditEvent
			_ = json.Unmarshal(raw, &ev)
			if ev.Fields["answer_text_leak_action"] == "redact" {
				n++
			}
		}
		return n == 6
	})
	if strings.Contains(in.stderr.String(), leaked) {
		t.Fatal("the leaked key reached keygate's log")
	}
}

// TestBedrockConverseToolUse: the official OpenAI SDK gives Amazon Nova a
// function and requires a call; keygate sends it to Converse as a
// toolConfig, and the model's toolUse comes back as a tool call, plain and
// streamed (its input in two pieces); the tool's result, sent back as a
// tool message, reaches the model as a toolResult.
func TestBedrockConverseToolUse(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, env := converseGateway(t, fake, c)
	key := in.createKeyEnv(env, "--name", "tools-app")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oa := openai.NewClient(oopt.WithBaseURL(in.addrs.Gateway+"/v1"), oopt.WithAPIKey(key), oopt.WithMaxRetries(0), oopt.WithHTTPClient(gatewayHTTP(t, in)))
	weather := openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "get_weather", Description: openai.String("Weather for a city"),
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}}})
	params := openai.ChatCompletionNewParams{Model: "bedrock/" + novaModel, Tools: []openai.ChatCompletionToolUnionParam{weather},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		Messages:   []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")}}
	resp, err := oa.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("a required tool call: %v", err)
	}
	calls := resp.Choices[0].Message.ToolCalls
	if resp.Choices[0].FinishReason != "tool_calls" || len(calls) != 1 || calls[0].Function.Name != "get_weather" || calls[0].Function.Arguments != `{"city":"Paris"}` || calls[0].ID != "tooluse_fake01" {
		t.Fatalf("a required tool call: %+v", resp.Choices[0])
	}
	st := oa.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatalf("a streamed tool call: %v", err)
	}
	if tc := acc.Choices[0].Message.ToolCalls; acc.Choices[0].FinishReason != "tool_calls" || len(tc) != 1 || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("a streamed tool call: %+v", acc.Choices[0])
	}
	var body struct {
		ToolConfig struct {
			Tools []struct {
				ToolSpec struct{ Name string } `json:"toolSpec"`
			} `json:"tools"`
			ToolChoice map[string]any `json:"toolChoice"`
		} `json:"toolConfig"`
	}
	if err := json.Unmarshal(fake.Snapshot().Bodies[0], &body); err != nil || len(body.ToolConfig.Tools) != 1 || body.ToolConfig.Tools[0].ToolSpec.Name != "get_weather" || body.ToolConfig.ToolChoice["any"] == nil {
		t.Fatalf("the toolConfig upstream: %v %s", err, fake.Snapshot().Bodies[0])
	}

	params.Messages = append(params.Messages, resp.Choices[0].Message.ToParam(), openai.ToolMessage("18C and sunny", calls[0].ID))
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
	resp, err = oa.Chat.Completions.New(ctx, params)
	if err != nil || resp.Choices[0].Message.Content != "tool result: 18C and sunny" || resp.Choices[0].FinishReason != "stop" {
		t.Fatalf("the answer after the tool's result: %v %+v", err, resp)
	}
}
