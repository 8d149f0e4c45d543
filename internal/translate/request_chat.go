package translate

import (
	"encoding/json"
	"fmt"
	"strings"
)

// OpenAI request shapes written by MessagesToChatRequest.
type (
	chatRequest struct {
		Model               string             `json:"model"`
		Messages            []chatMessage      `json:"messages"`
		MaxCompletionTokens *int64             `json:"max_completion_tokens,omitempty"`
		Stop                []string           `json:"stop,omitempty"`
		Temperature         *float64           `json:"temperature,omitempty"`
		TopP                *float64           `json:"top_p,omitempty"`
		Stream              bool               `json:"stream,omitempty"`
		StreamOptions       *chatStreamOptions `json:"stream_options,omitempty"`
		Tools               []chatToolOut      `json:"tools,omitempty"`
		ToolChoice          any                `json:"tool_choice,omitempty"`
		ParallelToolCalls   *bool              `json:"parallel_tool_calls,omitempty"`
		User                string             `json:"user,omitempty"`
	}
	chatStreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	}
	chatMessage struct {
		Role       string            `json:"role"`
		Content    any               `json:"content"`
		ToolCalls  []chatToolCallOut `json:"tool_calls,omitempty"`
		ToolCallID string            `json:"tool_call_id,omitempty"`
	}
	chatPartOut struct {
		Type     string        `json:"type"`
		Text     string        `json:"text,omitempty"`
		ImageURL *chatImageURL `json:"image_url,omitempty"`
	}
	chatImageURL struct {
		URL string `json:"url"`
	}
	chatToolCallOut struct {
		ID       string           `json:"id"`
		Type     string           `json:"type"`
		Function chatFunctionCall `json:"function"`
	}
	chatFunctionCall struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	chatToolOut struct {
		Type     string       `json:"type"`
		Function chatFunction `json:"function"`
	}
	chatFunction struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
		Strict      *bool           `json:"strict,omitempty"`
	}
	chatNamedToolChoice struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
)

// Anthropic request shapes read by MessagesToChatRequest.
type (
	messagesMessageIn struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	messagesBlockIn struct {
		Type      string          `json:"type"`
		Text      string          `json:"text"`
		Source    *messagesSource `json:"source"`
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
		ToolUseID string          `json:"tool_use_id"`
		Content   json.RawMessage `json:"content"`
	}
	messagesToolIn struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"input_schema"`
		Strict      *bool           `json:"strict"`
	}
)

// MessagesToChatRequest translates an Anthropic Messages request body into
// an OpenAI Chat Completions request body for the upstream model. max_tokens
// becomes max_completion_tokens, the limit every current OpenAI model
// accepts. A streaming request also asks upstream for usage
// (stream_options.include_usage), which ChatToMessagesStream needs to report
// tokens. A field with no OpenAI counterpart fails with *UnsupportedError; a
// malformed body with *InvalidError.
func MessagesToChatRequest(body []byte, model string) ([]byte, error) {
	top, keys, err := topLevel(body, "Messages")
	if err != nil {
		return nil, err
	}
	out := chatRequest{Model: model}
	var system []string
	var noParallel bool
	for _, k := range keys {
		v := top[k]
		switch k {
		case "model", "messages", "cache_control", "service_tier":
			// model is replaced, messages read below; caching hints and the
			// service tier change no result.
		case "max_tokens":
			if err := decode(v, &out.MaxCompletionTokens, k, "an integer"); err != nil {
				return nil, err
			}
		case "system":
			text, blocks, err := stringOrParts[messagesBlockIn](v, k)
			if err != nil {
				return nil, err
			}
			if text != nil && *text != "" {
				system = append(system, *text)
			}
			for i, b := range blocks {
				if b.Type != "text" {
					return nil, unsupported(fmt.Sprintf("system[%d].type", i), fmt.Sprintf("a %q block cannot be part of an OpenAI system message; send text", b.Type))
				}
				system = append(system, b.Text)
			}
		case "stop_sequences":
			if err := decode(v, &out.Stop, k, "an array of strings"); err != nil {
				return nil, err
			}
		case "temperature":
			if err := decode(v, &out.Temperature, k, "a number"); err != nil {
				return nil, err
			}
		case "top_p":
			if err := decode(v, &out.TopP, k, "a number"); err != nil {
				return nil, err
			}
		case "stream":
			if err := decode(v, &out.Stream, k, "a boolean"); err != nil {
				return nil, err
			}
		case "metadata":
			var md struct {
				UserID string `json:"user_id"`
			}
			if err := decode(v, &md, k, "an object"); err != nil {
				return nil, err
			}
			out.User = md.UserID
		case "tools":
			var ts []messagesToolIn
			if err := decode(v, &ts, k, "an array of tools"); err != nil {
				return nil, err
			}
			for i, t := range ts {
				path := fmt.Sprintf("tools[%d]", i)
				if t.Type != "" && t.Type != "custom" {
					return nil, unsupported(path+".type", fmt.Sprintf("Anthropic server tool %q has no OpenAI Chat Completions counterpart; remove it or define it as a custom tool with an input_schema", t.Type))
				}
				if t.Name == "" {
					return nil, invalid(path+".name", "a tool needs a name")
				}
				fn := chatFunction{Name: t.Name, Description: t.Description, Strict: t.Strict}
				if !isNull(t.InputSchema) {
					var ok bool
					if fn.Parameters, ok = compactObject(t.InputSchema); !ok {
						return nil, invalid(path+".input_schema", "input_schema must be a JSON Schema object")
					}
				}
				out.Tools = append(out.Tools, chatToolOut{Type: "function", Function: fn})
			}
		case "tool_choice":
			var tc struct {
				Type                   string `json:"type"`
				Name                   string `json:"name"`
				DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
			}
			if err := decode(v, &tc, k, "an object"); err != nil {
				return nil, err
			}
			switch tc.Type {
			case "auto":
				out.ToolChoice = "auto"
			case "none":
				out.ToolChoice = "none"
			case "any":
				out.ToolChoice = "required"
			case "tool":
				if tc.Name == "" {
					return nil, invalid("tool_choice.name", "a tool choice of type tool needs the tool name")
				}
				var named chatNamedToolChoice
				named.Type = "function"
				named.Function.Name = tc.Name
				out.ToolChoice = named
			default:
				return nil, invalid("tool_choice.type", "unknown type %q; use auto, any, tool or none", tc.Type)
			}
			noParallel = tc.DisableParallelToolUse
		case "thinking":
			var th struct {
				Type string `json:"type"`
			}
			if err := decode(v, &th, k, "an object"); err != nil {
				return nil, err
			}
			if th.Type != "disabled" {
				return nil, unsupported(k, "extended thinking has no OpenAI Chat Completions counterpart; remove thinking")
			}
		case "top_k":
			return nil, unsupported(k, "OpenAI has no top-k sampling; remove top_k (top_p is translated)")
		case "container", "mcp_servers", "context_management":
			return nil, unsupported(k, "this Anthropic platform feature has no OpenAI Chat Completions counterpart; remove "+k)
		case "output_config", "output_format":
			return nil, unsupported(k, "structured output settings are not translated; remove "+k)
		default:
			return nil, unsupported(k, "keygate does not know an OpenAI counterpart for this field; remove it")
		}
	}
	if out.Stream {
		out.StreamOptions = &chatStreamOptions{IncludeUsage: true}
	}
	if noParallel && len(out.Tools) > 0 {
		f := false
		out.ParallelToolCalls = &f
	}
	for _, s := range system {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: s})
	}

	raw, ok := top["messages"]
	if !ok || isNull(raw) {
		return nil, invalid("messages", "the request has no messages; send at least one user message")
	}
	var msgs []messagesMessageIn
	if err := decode(raw, &msgs, "messages", "an array of messages"); err != nil {
		return nil, err
	}
	for i, m := range msgs {
		path := fmt.Sprintf("messages[%d]", i)
		var err error
		switch m.Role {
		case "user":
			out.Messages, err = appendUser(out.Messages, m.Content, path+".content")
		case "assistant":
			out.Messages, err = appendAssistant(out.Messages, m.Content, path+".content")
		default:
			err = invalid(path+".role", "unknown role %q; use user or assistant (system goes in the top-level system field)", m.Role)
		}
		if err != nil {
			return nil, err
		}
	}
	return marshal(out)
}

// appendUser adds an Anthropic user message: its tool results become tool
// messages, which OpenAI wants right after the assistant's tool calls, and
// the rest one user message after them.
func appendUser(msgs []chatMessage, raw json.RawMessage, path string) ([]chatMessage, error) {
	text, blocks, err := stringOrParts[messagesBlockIn](raw, path)
	if err != nil {
		return nil, err
	}
	if text != nil {
		return append(msgs, chatMessage{Role: "user", Content: *text}), nil
	}
	var parts []chatPartOut
	for i, b := range blocks {
		bp := fmt.Sprintf("%s[%d]", path, i)
		switch b.Type {
		case "text":
			parts = append(parts, chatPartOut{Type: "text", Text: b.Text})
		case "image":
			url, err := imageURL(b.Source, bp+".source")
			if err != nil {
				return nil, err
			}
			parts = append(parts, chatPartOut{Type: "image_url", ImageURL: &chatImageURL{URL: url}})
		case "tool_result":
			if b.ToolUseID == "" {
				return nil, invalid(bp+".tool_use_id", "a tool result needs the id of the tool use it answers")
			}
			content, err := toolResultContent(b.Content, bp+".content")
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, chatMessage{Role: "tool", Content: content, ToolCallID: b.ToolUseID})
		default:
			return nil, unsupportedBlock(b.Type, bp)
		}
	}
	switch {
	case len(parts) == 1 && parts[0].Type == "text":
		msgs = append(msgs, chatMessage{Role: "user", Content: parts[0].Text})
	case len(parts) > 0:
		msgs = append(msgs, chatMessage{Role: "user", Content: parts})
	case len(blocks) == 0:
		msgs = append(msgs, chatMessage{Role: "user", Content: ""})
	}
	return msgs, nil
}

func unsupportedBlock(typ, path string) error {
	switch typ {
	case "document":
		return unsupported(path, "document blocks are not translated; send the document's text")
	case "thinking", "redacted_thinking":
		return unsupported(path, "thinking blocks have no OpenAI Chat Completions counterpart; leave them out of the conversation history")
	case "tool_use":
		return unsupported(path, "tool_use blocks belong in assistant messages")
	}
	return unsupported(path+".type", fmt.Sprintf("content block type %q has no OpenAI Chat Completions counterpart", typ))
}

// toolResultContent reads a tool_result's content: a string, or text blocks.
// OpenAI tool messages carry text only.
func toolResultContent(raw json.RawMessage, path string) (any, error) {
	text, blocks, err := stringOrParts[messagesBlockIn](raw, path)
	if err != nil {
		return nil, err
	}
	if text != nil {
		return *text, nil
	}
	var parts []chatPartOut
	for i, b := range blocks {
		if b.Type != "text" {
			return nil, unsupported(fmt.Sprintf("%s[%d].type", path, i), fmt.Sprintf("OpenAI tool messages carry text only; send the tool result as text blocks (found a block of type %q)", b.Type))
		}
		parts = append(parts, chatPartOut{Type: "text", Text: b.Text})
	}
	switch len(parts) {
	case 0:
		return "", nil
	case 1:
		return parts[0].Text, nil
	}
	return parts, nil
}

func imageURL(src *messagesSource, path string) (string, error) {
	if src == nil {
		return "", invalid(path, "an image block needs a source")
	}
	switch src.Type {
	case "base64":
		if src.MediaType == "" || src.Data == "" {
			return "", invalid(path, "a base64 image needs media_type and data")
		}
		return "data:" + src.MediaType + ";base64," + src.Data, nil
	case "url":
		if !strings.HasPrefix(src.URL, "https://") && !strings.HasPrefix(src.URL, "http://") {
			return "", invalid(path+".url", "an image URL must be http(s)")
		}
		return src.URL, nil
	}
	return "", unsupported(path+".type", fmt.Sprintf("image source %q has no OpenAI counterpart; send base64 data or a URL", src.Type))
}

// appendAssistant adds an Anthropic assistant message: its text joined as
// the content, its tool_use blocks as tool_calls.
func appendAssistant(msgs []chatMessage, raw json.RawMessage, path string) ([]chatMessage, error) {
	text, blocks, err := stringOrParts[messagesBlockIn](raw, path)
	if err != nil {
		return nil, err
	}
	if text != nil {
		return append(msgs, chatMessage{Role: "assistant", Content: *text}), nil
	}
	m := chatMessage{Role: "assistant"}
	var sb strings.Builder
	hasText := false
	for i, b := range blocks {
		bp := fmt.Sprintf("%s[%d]", path, i)
		switch b.Type {
		case "text":
			sb.WriteString(b.Text)
			hasText = true
		case "tool_use":
			if b.ID == "" || b.Name == "" {
				return nil, invalid(bp, "a tool_use block needs an id and a name")
			}
			args := "{}"
			if !isNull(b.Input) {
				obj, ok := compactObject(b.Input)
				if !ok {
					return nil, invalid(bp+".input", "tool input must be a JSON object")
				}
				args = string(obj)
			}
			m.ToolCalls = append(m.ToolCalls, chatToolCallOut{ID: b.ID, Type: "function", Function: chatFunctionCall{Name: b.Name, Arguments: args}})
		default:
			return nil, unsupportedBlock(b.Type, bp)
		}
	}
	if hasText || len(m.ToolCalls) == 0 {
		m.Content = sb.String()
	}
	return append(msgs, m), nil
}
