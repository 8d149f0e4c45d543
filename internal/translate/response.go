package translate

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Response shapes.
type (
	messagesResponseIn struct {
		ID      string `json:"id"`
		Type    string `json:"type"`
		Content []struct {
			Type  string          `json:"type"`
			Text  string          `json:"text"`
			ID    string          `json:"id"`
			Name  string          `json:"name"`
			Input json.RawMessage `json:"input"`
		} `json:"content"`
		StopReason *string `json:"stop_reason"`
		Usage      struct {
			InputTokens              uint64 `json:"input_tokens"`
			OutputTokens             uint64 `json:"output_tokens"`
			CacheCreationInputTokens uint64 `json:"cache_creation_input_tokens"`
			CacheReadInputTokens     uint64 `json:"cache_read_input_tokens"`
		} `json:"usage"`
	}
	chatResponse struct {
		ID      string       `json:"id"`
		Object  string       `json:"object"`
		Created int64        `json:"created"`
		Model   string       `json:"model"`
		Choices []chatChoice `json:"choices"`
		Usage   chatUsage    `json:"usage"`
	}
	chatChoice struct {
		Index        int                 `json:"index"`
		Message      chatResponseMessage `json:"message"`
		Logprobs     *struct{}           `json:"logprobs"`
		FinishReason string              `json:"finish_reason"`
	}
	chatResponseMessage struct {
		Role      string            `json:"role"`
		Content   *string           `json:"content"`
		Refusal   *string           `json:"refusal"`
		ToolCalls []chatToolCallOut `json:"tool_calls,omitempty"`
	}
	chatUsage struct {
		PromptTokens        uint64 `json:"prompt_tokens"`
		CompletionTokens    uint64 `json:"completion_tokens"`
		TotalTokens         uint64 `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens uint64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	}

	chatResponseIn struct {
		ID      string `json:"id"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Content   *string        `json:"content"`
				Refusal   *string        `json:"refusal"`
				ToolCalls []chatToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens        uint64 `json:"prompt_tokens"`
			CompletionTokens    uint64 `json:"completion_tokens"`
			PromptTokensDetails *struct {
				CachedTokens uint64 `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	messagesResponse struct {
		ID           string          `json:"id"`
		Type         string          `json:"type"`
		Role         string          `json:"role"`
		Model        string          `json:"model"`
		Content      []messagesBlock `json:"content"`
		StopReason   *string         `json:"stop_reason"`
		StopSequence *string         `json:"stop_sequence"`
		Usage        messagesUsage   `json:"usage"`
	}
	messagesUsage struct {
		InputTokens          uint64 `json:"input_tokens"`
		CacheReadInputTokens uint64 `json:"cache_read_input_tokens"`
		OutputTokens         uint64 `json:"output_tokens"`
	}
)

// MessagesToChatResponse translates a successful Anthropic Messages response
// body into an OpenAI chat.completion body that names clientModel. Text
// blocks are joined into the message content, tool_use blocks become
// tool_calls; thinking and server tool blocks are left out. Error bodies go
// through MessagesToChatError instead.
func MessagesToChatResponse(body []byte, clientModel string) ([]byte, error) {
	return messagesToChatResponse(body, clientModel, time.Now().Unix())
}

func messagesToChatResponse(body []byte, clientModel string, created int64) ([]byte, error) {
	var in messagesResponseIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("", "the upstream Anthropic response is not a message object (%v)", err)
	}
	if in.Type == "error" {
		return nil, invalid("type", "the upstream body is an Anthropic error; translate it with MessagesToChatError")
	}
	msg := chatResponseMessage{Role: "assistant"}
	var text strings.Builder
	hasText := false
	for i, b := range in.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
			hasText = true
		case "tool_use":
			args := "{}"
			if !isNull(b.Input) {
				obj, ok := compactObject(b.Input)
				if !ok {
					return nil, invalid(fmt.Sprintf("content[%d].input", i), "the upstream tool input is not a JSON object")
				}
				args = string(obj)
			}
			msg.ToolCalls = append(msg.ToolCalls, chatToolCallOut{ID: b.ID, Type: "function", Function: chatFunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	if hasText {
		s := text.String()
		msg.Content = &s
	}
	reason := "stop"
	if in.StopReason != nil {
		reason = strings.Trim(finishReason([]byte(`"`+*in.StopReason+`"`)), `"`)
	}
	u := in.Usage
	out := chatResponse{
		ID:      in.ID,
		Object:  "chat.completion",
		Created: created,
		Model:   clientModel,
		Choices: []chatChoice{{Message: msg, FinishReason: reason}},
	}
	out.Usage.PromptTokens = u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	out.Usage.CompletionTokens = u.OutputTokens
	out.Usage.TotalTokens = out.Usage.PromptTokens + u.OutputTokens
	out.Usage.PromptTokensDetails.CachedTokens = u.CacheReadInputTokens
	return marshal(out)
}

// ChatToMessagesResponse translates a successful OpenAI chat.completion body
// into an Anthropic message body that names clientModel. Only the first
// choice is translated: its content and refusal become text blocks, its
// tool_calls tool_use blocks. OpenAI does not say which stop sequence
// matched, so a stop is reported as end_turn. Error bodies go through
// ChatToMessagesError instead.
func ChatToMessagesResponse(body []byte, clientModel string) ([]byte, error) {
	var in chatResponseIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("", "the upstream OpenAI response is not a chat completion object (%v)", err)
	}
	if len(in.Choices) == 0 {
		return nil, invalid("choices", "the upstream OpenAI response has no choices")
	}
	c := in.Choices[0]
	out := messagesResponse{
		ID:      in.ID,
		Type:    "message",
		Role:    "assistant",
		Model:   clientModel,
		Content: []messagesBlock{},
	}
	if c.Message.Content != nil && *c.Message.Content != "" {
		out.Content = append(out.Content, messagesBlock{Type: "text", Text: *c.Message.Content})
	}
	if c.Message.Refusal != nil && *c.Message.Refusal != "" {
		out.Content = append(out.Content, messagesBlock{Type: "text", Text: *c.Message.Refusal})
	}
	for i, tc := range c.Message.ToolCalls {
		input := json.RawMessage(`{}`)
		if strings.TrimSpace(tc.Function.Arguments) != "" {
			var ok bool
			if input, ok = compactObject([]byte(tc.Function.Arguments)); !ok {
				return nil, invalid(fmt.Sprintf("choices[0].message.tool_calls[%d].function.arguments", i), "the upstream model produced tool arguments that are not a JSON object")
			}
		}
		out.Content = append(out.Content, messagesBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	if c.FinishReason != nil {
		r := strings.Trim(stopReason([]byte(`"`+*c.FinishReason+`"`)), `"`)
		out.StopReason = &r
	}
	if u := in.Usage; u != nil {
		var cached uint64
		if u.PromptTokensDetails != nil {
			cached = min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
		}
		out.Usage = messagesUsage{InputTokens: u.PromptTokens - cached, CacheReadInputTokens: cached, OutputTokens: u.CompletionTokens}
	}
	return marshal(out)
}
