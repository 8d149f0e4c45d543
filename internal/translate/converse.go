package translate

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Bedrock's Converse API (POST /model/{modelId}/converse and
// converse-stream) is a third wire format: one request and answer shape for
// every model on Bedrock (Amazon Nova, Meta Llama, Mistral, Cohere,
// Anthropic's too). keygate reaches it from the Anthropic Messages API, and
// from the OpenAI Chat Completions API through Messages (the gateway
// translates chat to Messages first), so each client dialect has one path to
// every Bedrock model. The mapping:
//
//   - system text blocks <-> system [{text}]; max_tokens, temperature,
//     top_p, stop_sequences <-> inferenceConfig.
//   - text, base64 images ({image:{format,source:{bytes}}}), tool_use
//     <-> toolUse, tool_result <-> toolResult (is_error <-> status
//     "error"; text, images and documents inside), thinking <->
//     reasoningContent.
//   - documents -> {document:{format,name,source:{bytes}}}
//     (converse_document.go): a base64 source (PDF, Word, Excel, or text
//     types) or a plain text source; the format from the media type, or
//     from the title's extension when the media type does not say
//     (application/octet-stream; text/plain titled data.csv); the name
//     from the title, cut to the characters Converse allows (letters,
//     digits, single spaces, hyphens, parentheses, square brackets; at
//     most 200), "document N" when none is left, and made unique in the
//     request; context <-> context. OpenAI file parts reach this as
//     documents titled with their file name (ChatToMessagesRequest).
//   - cache_control {"type":"ephemeral"} (ttl 5m or 1h) on a system text
//     block, a content block or a tool -> a cachePoint {"type":"default"}
//     (same ttl) right after it; on a block inside a tool_result, where
//     Converse takes none, after the tool result.
//   - tools <-> toolConfig.tools[].toolSpec, tool_choice auto/any/tool <->
//     toolChoice; "none" leaves the tools out (refused when the
//     conversation already holds tool calls, which Converse checks against
//     the tools).
//   - a provider's guardrail (ConverseOptions, converse_guardrail.go) ->
//     guardrailConfig, with streamProcessingMode on ConverseStream.
//   - stopReason: end_turn, tool_use, max_tokens, stop_sequence and
//     model_context_window_exceeded keep their names; guardrail_intervened
//     and content_filtered become "refusal" (OpenAI: "content_filter").
//   - usage inputTokens, outputTokens, cacheReadInputTokens,
//     cacheWriteInputTokens <-> input_tokens, output_tokens,
//     cache_read_input_tokens, cache_creation_input_tokens (OpenAI:
//     prompt_tokens counts all three inputs, prompt_tokens_details.
//     cached_tokens the cache reads), in the answer and in the stream's
//     closing message_delta.
//
// top_k, which Converse has no common field for, goes in
// additionalModelRequestFields as the Anthropic models on Bedrock take it;
// a model without top-k sampling refuses it with Bedrock's
// ValidationException, which reaches the client in its dialect.
//
// Refused, with an *UnsupportedError naming the field: extended thinking, image and document URLs,
// documents made of content blocks or from Anthropic's Files API, and
// document citations (Converse takes bytes, and its citations are not
// translated back), document media types Converse has no format for,
// cache types other than ephemeral, server tools,
// disable_parallel_tool_use and strict tools (Converse has neither
// control), and any field keygate does not know.
// Dropped on purpose: metadata, service_tier and the top-level
// cache_control hint.
//
// Not mapped: video. Converse takes video blocks, but neither client
// dialect has a video part (Anthropic's Messages API has none; OpenAI's
// chat file part is for documents), so there is nothing to translate; an
// OpenAI file part holding a video is refused as a file keygate does not
// translate.

// Converse request shapes written by MessagesToConverseRequest.
type (
	converseRequest struct {
		Messages        []converseMessage        `json:"messages"`
		System          []converseSystemBlock    `json:"system,omitempty"`
		InferenceConfig *converseInference       `json:"inferenceConfig,omitempty"`
		ToolConfig      *converseTools           `json:"toolConfig,omitempty"`
		GuardrailConfig *converseGuardrailConfig `json:"guardrailConfig,omitempty"`
		// AdditionalModelRequestFields carries what Converse has no common
		// field for (top_k), for the model to take or Bedrock to refuse.
		AdditionalModelRequestFields *converseAdditional `json:"additionalModelRequestFields,omitempty"`
	}
	converseAdditional struct {
		TopK *int64 `json:"top_k,omitempty"`
	}
	// converseSystemBlock is one of text and cachePoint.
	converseSystemBlock struct {
		Text       *string             `json:"text,omitempty"`
		CachePoint *converseCachePoint `json:"cachePoint,omitempty"`
	}
	// converseCachePoint marks the end of a prompt prefix Bedrock may cache.
	converseCachePoint struct {
		Type string `json:"type"`
		TTL  string `json:"ttl,omitempty"`
	}
	converseInference struct {
		MaxTokens     *int64   `json:"maxTokens,omitempty"`
		Temperature   *float64 `json:"temperature,omitempty"`
		TopP          *float64 `json:"topP,omitempty"`
		StopSequences []string `json:"stopSequences,omitempty"`
	}
	converseMessage struct {
		Role    string          `json:"role"`
		Content []converseBlock `json:"content"`
	}
	converseBlock struct {
		Text             *string             `json:"text,omitempty"`
		Image            *converseImage      `json:"image,omitempty"`
		Document         *converseDocument   `json:"document,omitempty"`
		ToolUse          *converseToolUse    `json:"toolUse,omitempty"`
		ToolResult       *converseResult     `json:"toolResult,omitempty"`
		ReasoningContent *converseThinking   `json:"reasoningContent,omitempty"`
		CachePoint       *converseCachePoint `json:"cachePoint,omitempty"`
	}
	converseImage struct {
		Format string `json:"format"`
		Source struct {
			Bytes string `json:"bytes"`
		} `json:"source"`
	}
	converseToolUse struct {
		ToolUseID string          `json:"toolUseId"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
	}
	converseResult struct {
		ToolUseID string          `json:"toolUseId"`
		Content   []converseBlock `json:"content"`
		Status    string          `json:"status,omitempty"`
	}
	converseThinking struct {
		ReasoningText *struct {
			Text      string `json:"text"`
			Signature string `json:"signature,omitempty"`
		} `json:"reasoningText,omitempty"`
		RedactedContent string `json:"redactedContent,omitempty"`
	}
	converseTools struct {
		Tools      []converseTool `json:"tools"`
		ToolChoice map[string]any `json:"toolChoice,omitempty"`
	}
	// converseTool is one of toolSpec and cachePoint.
	converseTool struct {
		ToolSpec   *converseToolSpec   `json:"toolSpec,omitempty"`
		CachePoint *converseCachePoint `json:"cachePoint,omitempty"`
	}
	converseToolSpec struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		InputSchema struct {
			JSON json.RawMessage `json:"json"`
		} `json:"inputSchema"`
	}
)

// Anthropic shapes read only by MessagesToConverseRequest.
type (
	converseBlockIn struct {
		Type      string          `json:"type"`
		Text      string          `json:"text"`
		Source    *messagesSource `json:"source"`
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
		ToolUseID string          `json:"tool_use_id"`
		Content   json.RawMessage `json:"content"`
		IsError   bool            `json:"is_error"`
		Thinking  string          `json:"thinking"`
		Signature string          `json:"signature"`
		Data      string          `json:"data"`
		// document blocks
		Title     string          `json:"title"`
		Context   string          `json:"context"`
		Citations json.RawMessage `json:"citations"`
		// cache_control: a cache point after the block
		CacheControl json.RawMessage `json:"cache_control"`
	}
	converseToolIn struct {
		messagesToolIn
		CacheControl json.RawMessage `json:"cache_control"`
	}
	converseToolChoiceIn struct {
		Type                   string `json:"type"`
		Name                   string `json:"name"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
	}
)

// MessagesToConverseRequest translates an Anthropic Messages request body,
// as keygate sends it upstream (the model named, max_tokens set), into a
// Bedrock Converse request body. It returns the body, the model id the
// request names (it goes in the URL) and whether the client asked for a
// stream (ConverseStream). A field with no Converse counterpart fails with
// *UnsupportedError; a malformed body with *InvalidError.
func MessagesToConverseRequest(body []byte) (out []byte, model string, stream bool, err error) {
	return MessagesToConverseRequestWith(body, ConverseOptions{})
}

// MessagesToConverseRequestWith is MessagesToConverseRequest with what a
// provider adds to every Converse call it sends (a guardrail). Options that
// fail ConverseOptions.Check fail the call with that error.
func MessagesToConverseRequestWith(body []byte, o ConverseOptions) (out []byte, model string, stream bool, err error) {
	if err := o.Check(); err != nil {
		return nil, "", false, err
	}
	top, keys, err := topLevel(body, "Messages")
	if err != nil {
		return nil, "", false, err
	}
	var req converseRequest
	var inf converseInference
	var tools []converseTool
	var choice *converseToolChoiceIn
	docs := &converseDocNames{}
	for _, k := range keys {
		v := top[k]
		switch k {
		case "messages", "metadata", "service_tier", "cache_control":
			// messages are read below; the rest are hints that change no result.
		case "model":
			if err := decode(v, &model, k, "a string"); err != nil {
				return nil, "", false, err
			}
		case "stream":
			if err := decode(v, &stream, k, "a boolean"); err != nil {
				return nil, "", false, err
			}
		case "max_tokens":
			if err := decode(v, &inf.MaxTokens, k, "an integer"); err != nil {
				return nil, "", false, err
			}
		case "temperature":
			if err := decode(v, &inf.Temperature, k, "a number"); err != nil {
				return nil, "", false, err
			}
		case "top_p":
			if err := decode(v, &inf.TopP, k, "a number"); err != nil {
				return nil, "", false, err
			}
		case "stop_sequences":
			if err := decode(v, &inf.StopSequences, k, "an array of strings"); err != nil {
				return nil, "", false, err
			}
		case "system":
			text, blocks, err := stringOrParts[converseBlockIn](v, k)
			if err != nil {
				return nil, "", false, err
			}
			if text != nil && *text != "" {
				req.System = append(req.System, converseSystemBlock{Text: text})
			}
			for i, b := range blocks {
				path := fmt.Sprintf("system[%d]", i)
				if b.Type != "text" {
					return nil, "", false, unsupportedConverse(path+".type", fmt.Sprintf("a %q block cannot be part of a Converse system prompt; send text", b.Type))
				}
				req.System = append(req.System, converseSystemBlock{Text: &b.Text})
				cp, err := converseCachePointFrom(b.CacheControl, path+".cache_control")
				if err != nil {
					return nil, "", false, err
				}
				if cp != nil {
					req.System = append(req.System, converseSystemBlock{CachePoint: cp})
				}
			}
		case "tools":
			var in []converseToolIn
			if err := decode(v, &in, k, "an array of tools"); err != nil {
				return nil, "", false, err
			}
			for i, t := range in {
				path := fmt.Sprintf("tools[%d]", i)
				if t.Type != "" && t.Type != "custom" {
					return nil, "", false, unsupportedConverse(path+".type", fmt.Sprintf("server tool %q runs at Anthropic and has no Converse counterpart; define a custom tool", t.Type))
				}
				if t.Strict != nil && *t.Strict {
					return nil, "", false, unsupportedConverse(path+".strict", "Converse has no strict tool schemas; leave strict out")
				}
				if t.Name == "" {
					return nil, "", false, invalid(path+".name", "a tool needs a name")
				}
				spec := &converseToolSpec{Name: t.Name, Description: t.Description}
				spec.InputSchema.JSON = t.InputSchema
				if isNull(t.InputSchema) {
					spec.InputSchema.JSON = json.RawMessage(`{"type":"object"}`)
				}
				tools = append(tools, converseTool{ToolSpec: spec})
				cp, err := converseCachePointFrom(t.CacheControl, path+".cache_control")
				if err != nil {
					return nil, "", false, err
				}
				if cp != nil {
					tools = append(tools, converseTool{CachePoint: cp})
				}
			}
		case "tool_choice":
			choice = new(converseToolChoiceIn)
			if err := decode(v, choice, k, "a tool choice object"); err != nil {
				return nil, "", false, err
			}
			if choice.DisableParallelToolUse {
				return nil, "", false, unsupportedConverse("tool_choice.disable_parallel_tool_use", "Converse cannot stop a model from calling tools in parallel; leave it out (OpenAI: parallel_tool_calls)")
			}
		case "top_k":
			var n int64
			if err := decode(v, &n, k, "a whole number"); err != nil {
				return nil, "", false, err
			}
			if n < 0 {
				return nil, "", false, invalid(k, "top_k must be 0 or more")
			}
			req.AdditionalModelRequestFields = &converseAdditional{TopK: &n}
		case "thinking":
			return nil, "", false, unsupportedConverse(k, "extended thinking is not translated to Converse; call an Anthropic model through InvokeModel for it, or leave it out")
		default:
			return nil, "", false, unsupportedConverse(k, "keygate does not know this field and will not drop it silently; leave it out for a Converse model")
		}
	}
	if model == "" || strings.ContainsAny(model, "?#") {
		return nil, "", false, invalid("model", "the request names no model id keygate can put in a URL")
	}
	var msgs []messagesMessageIn
	if err := decode(top["messages"], &msgs, "messages", "an array of messages"); err != nil {
		return nil, "", false, err
	}
	if len(msgs) == 0 {
		return nil, "", false, invalid("messages", "at least one message is required")
	}
	hasToolBlocks := false
	for i, m := range msgs {
		path := fmt.Sprintf("messages[%d]", i)
		if m.Role != "user" && m.Role != "assistant" {
			return nil, "", false, invalid(path+".role", "expected user or assistant")
		}
		blocks, toolBlocks, err := converseBlocks(m.Content, m.Role, path+".content", docs)
		if err != nil {
			return nil, "", false, err
		}
		hasToolBlocks = hasToolBlocks || toolBlocks
		// Converse wants turns to alternate; Anthropic joins consecutive
		// messages of one role, and so does keygate.
		if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == m.Role {
			req.Messages[n-1].Content = append(req.Messages[n-1].Content, blocks...)
			continue
		}
		req.Messages = append(req.Messages, converseMessage{Role: m.Role, Content: blocks})
	}
	if len(tools) > 0 {
		tc := &converseTools{Tools: tools}
		switch {
		case choice == nil || choice.Type == "auto":
			// Converse's default.
		case choice.Type == "any":
			tc.ToolChoice = map[string]any{"any": struct{}{}}
		case choice.Type == "tool":
			if choice.Name == "" {
				return nil, "", false, invalid("tool_choice.name", "a tool choice of type tool needs a name")
			}
			tc.ToolChoice = map[string]any{"tool": map[string]string{"name": choice.Name}}
		case choice.Type == "none":
			if hasToolBlocks {
				return nil, "", false, unsupportedConverse("tool_choice.type", `Converse has no tool choice "none" and needs the tools for a conversation that holds tool calls; use "auto"`)
			}
			tc = nil
		default:
			return nil, "", false, invalid("tool_choice.type", "expected auto, any, tool or none")
		}
		req.ToolConfig = tc
	}
	if inf.MaxTokens != nil || inf.Temperature != nil || inf.TopP != nil || len(inf.StopSequences) > 0 {
		req.InferenceConfig = &inf
	}
	req.GuardrailConfig = o.Guardrail.config(stream)
	out, err = marshal(req)
	return out, model, stream, err
}

// converseBlocks reads one Anthropic message's content as Converse blocks,
// and whether it holds tool calls or results. A block's cache_control
// becomes a cachePoint block after it.
func converseBlocks(raw json.RawMessage, role, path string, docs *converseDocNames) ([]converseBlock, bool, error) {
	out, tools, _, err := converseContent(raw, role, path, docs, false)
	return out, tools, err
}

// converseContent reads Anthropic content blocks. Nested (a tool result's
// content, where Converse has no cache points) it leaves cache points out
// and reports whether any block asked for one, so that the caller puts one
// after the tool result.
func converseContent(raw json.RawMessage, role, path string, docs *converseDocNames, nested bool) (out []converseBlock, tools, cache bool, err error) {
	text, blocks, err := stringOrParts[converseBlockIn](raw, path)
	if err != nil {
		return nil, false, false, err
	}
	if text != nil {
		return []converseBlock{{Text: text}}, false, false, nil
	}
	for i, b := range blocks {
		p := fmt.Sprintf("%s[%d]", path, i)
		cp, err := converseCachePointFrom(b.CacheControl, p+".cache_control")
		if err != nil {
			return nil, false, false, err
		}
		switch b.Type {
		case "text":
			t := b.Text
			out = append(out, converseBlock{Text: &t})
		case "image":
			img, err := converseImageFrom(b.Source, p+".source")
			if err != nil {
				return nil, false, false, err
			}
			out = append(out, converseBlock{Image: img})
		case "document":
			doc, err := converseDocumentFrom(b, p, docs)
			if err != nil {
				return nil, false, false, err
			}
			out = append(out, converseBlock{Document: doc})
		case "tool_use":
			if role != "assistant" {
				return nil, false, false, unsupportedConverse(p, "tool_use blocks belong in assistant messages")
			}
			input := b.Input
			if isNull(input) {
				input = json.RawMessage(`{}`)
			}
			obj, ok := compactObject(input)
			if !ok {
				return nil, false, false, invalid(p+".input", "a tool call's input must be a JSON object")
			}
			out = append(out, converseBlock{ToolUse: &converseToolUse{ToolUseID: b.ID, Name: b.Name, Input: obj}})
			tools = true
		case "tool_result":
			if nested {
				return nil, false, false, unsupportedConverse(p, "a tool result cannot hold another tool result")
			}
			res := &converseResult{ToolUseID: b.ToolUseID}
			if b.IsError {
				res.Status = "error"
			}
			content, _, inner, err := converseContent(b.Content, "user", p+".content", docs, true)
			if err != nil {
				return nil, false, false, err
			}
			for j, c := range content {
				if c.Text == nil && c.Image == nil && c.Document == nil {
					return nil, false, false, unsupportedConverse(fmt.Sprintf("%s.content[%d]", p, j), "a Converse tool result holds text, images and documents only")
				}
			}
			if content == nil {
				content = []converseBlock{}
			}
			res.Content = content
			out = append(out, converseBlock{ToolResult: res})
			tools = true
			if cp == nil && inner {
				cp = &converseCachePoint{Type: "default"}
			}
		case "thinking":
			th := &converseThinking{ReasoningText: &struct {
				Text      string `json:"text"`
				Signature string `json:"signature,omitempty"`
			}{Text: b.Thinking, Signature: b.Signature}}
			out = append(out, converseBlock{ReasoningContent: th})
		case "redacted_thinking":
			out = append(out, converseBlock{ReasoningContent: &converseThinking{RedactedContent: b.Data}})
		default:
			return nil, false, false, unsupportedConverse(p+".type", fmt.Sprintf("content block type %q has no Converse counterpart", b.Type))
		}
		switch {
		case cp == nil:
		case nested:
			cache = true
		default:
			out = append(out, converseBlock{CachePoint: cp})
		}
	}
	if out == nil {
		out = []converseBlock{}
	}
	return out, tools, cache, nil
}

// converseCachePointFrom reads a block's (or tool's) cache_control: nil
// when there is none, else the cachePoint that goes after it. Anthropic's
// one cache type, ephemeral, is Converse's default, with the same TTLs.
func converseCachePointFrom(raw json.RawMessage, path string) (*converseCachePoint, error) {
	if isNull(raw) {
		return nil, nil
	}
	var cc struct {
		Type string `json:"type"`
		TTL  string `json:"ttl"`
	}
	if err := decode(raw, &cc, path, `an object such as {"type":"ephemeral"}`); err != nil {
		return nil, err
	}
	if cc.Type != "ephemeral" {
		return nil, unsupportedConverse(path+".type", fmt.Sprintf(`cache type %q has no Converse cache point; use "ephemeral"`, cc.Type))
	}
	if cc.TTL != "" && cc.TTL != "5m" && cc.TTL != "1h" {
		return nil, invalid(path+".ttl", `expected "5m" or "1h"`)
	}
	return &converseCachePoint{Type: "default", TTL: cc.TTL}, nil
}

// converseImageFrom turns an Anthropic base64 image source into a Converse
// image; Converse takes image bytes (or S3 locations), not URLs.
func converseImageFrom(src *messagesSource, path string) (*converseImage, error) {
	if src == nil {
		return nil, invalid(path, "an image block needs a source")
	}
	if src.Type != "base64" {
		return nil, unsupportedConverse(path+".type", fmt.Sprintf("Converse takes image bytes, not an image source of type %q; send the image as base64 data", src.Type))
	}
	format, ok := map[string]string{"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}[src.MediaType]
	if !ok {
		return nil, unsupportedConverse(path+".media_type", "Converse takes png, jpeg, gif and webp images")
	}
	img := &converseImage{Format: format}
	img.Source.Bytes = src.Data
	return img, nil
}

// unsupportedConverse is an UnsupportedError for the Converse API.
func unsupportedConverse(field, reason string) error {
	return &UnsupportedError{Field: field, Reason: reason, To: "Bedrock's Converse API"}
}
