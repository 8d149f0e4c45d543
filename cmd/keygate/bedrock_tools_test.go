package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aopt "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	oopt "github.com/openai/openai-go/v3/option"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakecloud"
)

// Tool use, documents and prompt caching through the Anthropic and OpenAI
// dialects to a Bedrock model reached through Converse, end to end: the
// official SDKs call keygate, keygate calls internal/fakecloud's Bedrock
// runtime (which verifies every SigV4 signature and checks Converse bodies
// as the AWS API reference describes them). No real AWS is called.

// streamMessage runs a Messages stream with the Anthropic SDK and returns
// the accumulated message.
func streamMessage(t *testing.T, ctx context.Context, an anthropic.Client, params anthropic.MessageNewParams) anthropic.Message {
	t.Helper()
	st := an.Messages.NewStreaming(ctx, params)
	var m anthropic.Message
	for st.Next() {
		if err := m.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("anthropic SDK stream: %v", err)
	}
	return m
}

// TestBedrockAnthropicToolUse: the official Anthropic SDK gives a Meta
// Llama model on Bedrock a tool and requires its call; keygate sends the
// tool to Converse as a toolConfig, and the model's toolUse comes back as
// a tool_use block whose input the SDK parses, plain and streamed (the
// input in two pieces). The SDK sends the tool_result back, which reaches
// the model as a toolResult, and the final text comes back, plain and
// streamed.
func TestBedrockAnthropicToolUse(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, env := converseGateway(t, fake, c)
	key := in.createKeyEnv(env, "--name", "anthropic-tools")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	an := anthropic.NewClient(aopt.WithBaseURL(in.addrs.Gateway), aopt.WithAPIKey(key), aopt.WithMaxRetries(0), aopt.WithHTTPClient(gatewayHTTP(t, in)))

	weather := anthropic.ToolParam{Name: "get_weather", Description: anthropic.String("Weather for a city"),
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}}
	params := anthropic.MessageNewParams{Model: anthropic.Model("bedrock/" + llamaModel), MaxTokens: 256,
		Tools:      []anthropic.ToolUnionParam{{OfTool: &weather}},
		ToolChoice: anthropic.ToolChoiceParamOfTool("get_weather"),
		Messages:   []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?"))}}

	checkCall := func(how string, m anthropic.Message) anthropic.ToolUseBlock {
		t.Helper()
		if m.StopReason != anthropic.StopReasonToolUse || len(m.Content) != 1 {
			t.Fatalf("%s: %+v", how, m)
		}
		call, ok := m.Content[0].AsAny().(anthropic.ToolUseBlock)
		if !ok {
			t.Fatalf("%s: a %T, not a tool_use block", how, m.Content[0].AsAny())
		}
		var input struct {
			City string `json:"city"`
		}
		if err := json.Unmarshal(call.Input, &input); err != nil || input.City != "Paris" || call.Name != "get_weather" || call.ID != "tooluse_fake01" {
			t.Fatalf("%s: tool_use %+v (input %s: %v)", how, call, call.Input, err)
		}
		return call
	}
	msg, err := an.Messages.New(ctx, params)
	if err != nil {
		t.Fatalf("a required tool call: %v", err)
	}
	call := checkCall("a required tool call", *msg)
	checkCall("a streamed tool call", streamMessage(t, ctx, an, params))

	var first struct {
		ToolConfig struct {
			Tools []struct {
				ToolSpec struct {
					Name        string `json:"name"`
					InputSchema struct {
						JSON struct {
							Required []string `json:"required"`
						} `json:"json"`
					} `json:"inputSchema"`
				} `json:"toolSpec"`
			} `json:"tools"`
			ToolChoice map[string]struct{ Name string } `json:"toolChoice"`
		} `json:"toolConfig"`
	}
	if err := json.Unmarshal(fake.Snapshot().Bodies[0], &first); err != nil || len(first.ToolConfig.Tools) != 1 || first.ToolConfig.Tools[0].ToolSpec.Name != "get_weather" ||
		len(first.ToolConfig.Tools[0].ToolSpec.InputSchema.JSON.Required) != 1 || first.ToolConfig.ToolChoice["tool"].Name != "get_weather" {
		t.Fatalf("the toolConfig upstream: %v %s", err, fake.Snapshot().Bodies[0])
	}

	params.Messages = append(params.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(call.ID, "18C and sunny", false)))
	params.ToolChoice = anthropic.ToolChoiceUnionParam{OfAuto: &anthropic.ToolChoiceAutoParam{}}
	final, err := an.Messages.New(ctx, params)
	if err != nil || final.StopReason != anthropic.StopReasonEndTurn || len(final.Content) != 1 || final.Content[0].Text != "tool result: 18C and sunny" {
		t.Fatalf("the answer after the tool's result: %v %+v", err, final)
	}
	streamed := streamMessage(t, ctx, an, params)
	if streamed.StopReason != anthropic.StopReasonEndTurn || len(streamed.Content) != 1 || streamed.Content[0].Text != "tool result: 18C and sunny" {
		t.Fatalf("the streamed answer after the tool's result: %+v", streamed)
	}

	seen := fake.Snapshot()
	want := []string{"converse", "converse-stream", "converse", "converse-stream"}
	if len(seen.Requests) != len(want) {
		t.Fatalf("upstream requests %v", seen.Requests)
	}
	for i, op := range want {
		if seen.Requests[i] != "POST /model/"+llamaModel+"/"+op || seen.KeyIDs[i] != c.AWSKey.AccessKeyID {
			t.Fatalf("upstream request %d: %s signed by %s", i, seen.Requests[i], seen.KeyIDs[i])
		}
	}
	var last struct {
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				ToolUse *struct {
					ToolUseID string          `json:"toolUseId"`
					Input     json.RawMessage `json:"input"`
				} `json:"toolUse"`
				ToolResult *struct {
					ToolUseID string `json:"toolUseId"`
					Status    string `json:"status"`
					Content   []struct {
						Text string `json:"text"`
					} `json:"content"`
				} `json:"toolResult"`
			} `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(seen.Bodies[3], &last); err != nil || len(last.Messages) != 3 {
		t.Fatalf("the conversation upstream: %v %s", err, seen.Bodies[3])
	}
	use, res := last.Messages[1].Content[0].ToolUse, last.Messages[2].Content[0].ToolResult
	if use == nil || use.ToolUseID != call.ID || string(use.Input) != `{"city":"Paris"}` ||
		res == nil || res.ToolUseID != call.ID || res.Status != "" || len(res.Content) != 1 || res.Content[0].Text != "18C and sunny" {
		t.Fatalf("the tool call and result upstream: %s", seen.Bodies[3])
	}
}

// TestBedrockDocumentsAndCachePoints: the Anthropic SDK sends a PDF
// document with cache_control on the system prompt and the document; the
// OpenAI SDK sends a PDF and a CSV as file parts. Each reaches Converse as
// document blocks (named from the title or file name, the format from the
// media type or extension) and the cache_control hints as cache points.
// Cache writes and reads come back in the Anthropic usage, plain and
// streamed, and are metered (a cache write counts as input, as it does for
// Anthropic's own API). A document Converse cannot take (a URL, an OpenAI
// file_id) is refused in the client's dialect before anything goes
// upstream.
func TestBedrockDocumentsAndCachePoints(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, env := converseGateway(t, fake, c)
	key := in.createKeyEnv(env, "--name", "docs-app")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hc := gatewayHTTP(t, in)
	an := anthropic.NewClient(aopt.WithBaseURL(in.addrs.Gateway), aopt.WithAPIKey(key), aopt.WithMaxRetries(0), aopt.WithHTTPClient(hc))
	oa := openai.NewClient(oopt.WithBaseURL(in.addrs.Gateway+"/v1"), oopt.WithAPIKey(key), oopt.WithMaxRetries(0), oopt.WithHTTPClient(hc))
	pdf := base64.StdEncoding.EncodeToString([]byte("%PDF-1.4\n%fake document\n"))

	doc := anthropic.DocumentBlockParam{Source: anthropic.DocumentBlockParamSourceUnion{OfBase64: &anthropic.Base64PDFSourceParam{Data: pdf}},
		Title: anthropic.String("Q3 report_final.pdf"), CacheControl: anthropic.NewCacheControlEphemeralParam()}
	params := anthropic.MessageNewParams{Model: anthropic.Model("bedrock/" + novaModel), MaxTokens: 256,
		System: []anthropic.TextBlockParam{{Text: "You read reports.", CacheControl: anthropic.NewCacheControlEphemeralParam()}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.ContentBlockParamUnion{OfDocument: &doc},
			anthropic.NewTextBlock("Summarise it."))}}
	written, err := an.Messages.New(ctx, params)
	if err != nil {
		t.Fatalf("a document with cache points: %v", err)
	}
	if written.Content[0].Text != fakecloud.ReplyText || written.Usage.InputTokens != 10 || written.Usage.CacheCreationInputTokens != fakecloud.CachedTokens || written.Usage.CacheReadInputTokens != 0 {
		t.Fatalf("the first cached call's answer: %+v", written.Usage)
	}
	read := streamMessage(t, ctx, an, params)
	if read.Content[0].Text != fakecloud.ReplyText || read.Usage.InputTokens != 10 || read.Usage.CacheReadInputTokens != fakecloud.CachedTokens || read.Usage.CacheCreationInputTokens != 0 {
		t.Fatalf("the second cached call's streamed usage: %+v", read.Usage)
	}

	type block struct {
		Text       *string `json:"text"`
		CachePoint *struct {
			Type string `json:"type"`
		} `json:"cachePoint"`
		Document *struct {
			Format string `json:"format"`
			Name   string `json:"name"`
			Source struct {
				Bytes string `json:"bytes"`
			} `json:"source"`
		} `json:"document"`
	}
	var body struct {
		System   []block `json:"system"`
		Messages []struct {
			Content []block `json:"content"`
		} `json:"messages"`
	}
	seen := fake.Snapshot()
	if err := json.Unmarshal(seen.Bodies[0], &body); err != nil || len(body.System) != 2 || body.System[1].CachePoint == nil || body.System[1].CachePoint.Type != "default" ||
		len(body.Messages) != 1 || len(body.Messages[0].Content) != 3 {
		t.Fatalf("the Converse body upstream: %v %s", err, seen.Bodies[0])
	}
	got := body.Messages[0].Content
	if d := got[0].Document; d == nil || d.Format != "pdf" || d.Name != "Q3 report final" || d.Source.Bytes != pdf || got[1].CachePoint == nil || got[2].Text == nil {
		t.Fatalf("the document and its cache point upstream: %s", seen.Bodies[0])
	}

	csv := base64.StdEncoding.EncodeToString([]byte("city,temp\nParis,18\n"))
	resp, err := oa.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "bedrock/" + novaModel, Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.FileContentPart(openai.ChatCompletionContentPartFileFileParam{FileData: openai.String("data:application/pdf;base64," + pdf), Filename: openai.String("report.pdf")}),
			openai.FileContentPart(openai.ChatCompletionContentPartFileFileParam{FileData: openai.String(csv), Filename: openai.String("temps.csv")}),
			openai.TextContentPart("Compare them."),
		})}})
	if err != nil || resp.Choices[0].Message.Content != fakecloud.ReplyText {
		t.Fatalf("OpenAI file parts: %v %+v", err, resp)
	}
	seen = fake.Snapshot()
	body.Messages = nil
	if err := json.Unmarshal(seen.Bodies[2], &body); err != nil || len(body.Messages) != 1 || len(body.Messages[0].Content) != 3 {
		t.Fatalf("the OpenAI files upstream: %v %s", err, seen.Bodies[2])
	}
	got = body.Messages[0].Content
	if d := got[0].Document; d == nil || d.Format != "pdf" || d.Name != "report" || d.Source.Bytes != pdf {
		t.Fatalf("the PDF file upstream: %s", seen.Bodies[2])
	}
	if d := got[1].Document; d == nil || d.Format != "csv" || d.Name != "temps" || d.Source.Bytes != csv {
		t.Fatalf("the CSV file upstream: %s", seen.Bodies[2])
	}

	// Refused before anything goes upstream, in each client's dialect.
	urlDoc := anthropic.NewDocumentBlock(anthropic.URLPDFSourceParam{URL: "https://example.com/report.pdf"})
	_, err = an.Messages.New(ctx, anthropic.MessageNewParams{Model: anthropic.Model("bedrock/" + novaModel), MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(urlDoc, anthropic.NewTextBlock("Summarise it."))}})
	var aerr *anthropic.Error
	if !errors.As(err, &aerr) || aerr.StatusCode != 400 || !strings.Contains(aerr.Error(), "messages[0].content[0].source.type") || !strings.Contains(aerr.Error(), "not a URL") {
		t.Fatalf("a document URL for a Converse model: %v", err)
	}
	_, err = oa.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "bedrock/" + novaModel, Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.FileContentPart(openai.ChatCompletionContentPartFileFileParam{FileID: openai.String("file-abc123")}), openai.TextContentPart("Summarise it.")})}})
	var oerr *openai.Error
	if !errors.As(err, &oerr) || oerr.StatusCode != 400 || !strings.Contains(oerr.Message, "file_id") {
		t.Fatalf("an OpenAI file_id: %v", err)
	}
	if n := len(fake.Snapshot().Requests); n != 3 {
		t.Fatalf("a refused request went upstream: %d requests", n)
	}

	// Metered: the cache write counts as input (10 + 1000), the cache
	// read does not (10), and the OpenAI call 10; nothing for the refusals.
	until(t, "the usage of the document calls", func() bool {
		var u adminapi.KeyUsage
		decodeJSON(t, in.mustCLI(env, "", "--json", "key", "usage", "docs-app"), &u)
		for _, r := range u.Rows {
			if r.Model == "bedrock/"+novaModel {
				return r.Requests == 3 && r.InputTokens == 10+fakecloud.CachedTokens+10+10 && r.OutputTokens == 21
			}
		}
		return false
	})
}
