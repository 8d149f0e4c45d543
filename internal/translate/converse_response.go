package translate

import (
	"encoding/json"
	"fmt"
)

// Converse answer shapes read by ConverseToMessagesResponse.
type (
	converseResponseIn struct {
		Output struct {
			Message *struct {
				Role    string `json:"role"`
				Content []struct {
					Text             *string          `json:"text"`
					ToolUse          *converseToolUse `json:"toolUse"`
					ReasoningContent *struct {
						ReasoningText *struct {
							Text      string `json:"text"`
							Signature string `json:"signature"`
						} `json:"reasoningText"`
						RedactedContent string `json:"redactedContent"`
					} `json:"reasoningContent"`
				} `json:"content"`
			} `json:"message"`
		} `json:"output"`
		StopReason string        `json:"stopReason"`
		Usage      converseUsage `json:"usage"`
	}
	converseUsage struct {
		InputTokens           uint64 `json:"inputTokens"`
		OutputTokens          uint64 `json:"outputTokens"`
		CacheReadInputTokens  uint64 `json:"cacheReadInputTokens"`
		CacheWriteInputTokens uint64 `json:"cacheWriteInputTokens"`
	}
	converseMessagesBlock struct {
		Type      string          `json:"type"`
		Text      *string         `json:"text,omitempty"`
		ID        string          `json:"id,omitempty"`
		Name      string          `json:"name,omitempty"`
		Input     json.RawMessage `json:"input,omitempty"`
		Thinking  *string         `json:"thinking,omitempty"`
		Signature *string         `json:"signature,omitempty"`
		Data      string          `json:"data,omitempty"`
	}
	converseMessagesResponse struct {
		ID           string                  `json:"id"`
		Type         string                  `json:"type"`
		Role         string                  `json:"role"`
		Model        string                  `json:"model"`
		Content      []converseMessagesBlock `json:"content"`
		StopReason   *string                 `json:"stop_reason"`
		StopSequence *string                 `json:"stop_sequence"`
		Usage        converseMessagesUsage   `json:"usage"`
	}
	converseMessagesUsage struct {
		InputTokens              uint64 `json:"input_tokens"`
		CacheCreationInputTokens uint64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     uint64 `json:"cache_read_input_tokens"`
		OutputTokens             uint64 `json:"output_tokens"`
	}
)

// ConverseToMessagesResponse translates a successful Converse answer into
// an Anthropic Messages response with the given id, naming model. Text,
// tool calls and reasoning become text, tool_use and thinking blocks;
// image and other output blocks are left out. Error bodies are AWS errors,
// rewritten apart.
func ConverseToMessagesResponse(body []byte, id, model string) ([]byte, error) {
	var in converseResponseIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("", "the upstream Converse answer is not a JSON object (%v)", err)
	}
	if in.Output.Message == nil {
		return nil, invalid("output.message", "the upstream Converse answer holds no message")
	}
	stop := converseStopReason(in.StopReason)
	out := converseMessagesResponse{ID: id, Type: "message", Role: "assistant", Model: model,
		Content: []converseMessagesBlock{}, StopReason: &stop, Usage: in.Usage.messages()}
	for i, c := range in.Output.Message.Content {
		switch {
		case c.Text != nil:
			out.Content = append(out.Content, converseMessagesBlock{Type: "text", Text: c.Text})
		case c.ToolUse != nil:
			input := c.ToolUse.Input
			if isNull(input) {
				input = json.RawMessage(`{}`)
			}
			obj, ok := compactObject(input)
			if !ok {
				return nil, invalid(fmt.Sprintf("output.message.content[%d].toolUse.input", i), "the upstream tool input is not a JSON object")
			}
			out.Content = append(out.Content, converseMessagesBlock{Type: "tool_use", ID: c.ToolUse.ToolUseID, Name: c.ToolUse.Name, Input: obj})
		case c.ReasoningContent != nil && c.ReasoningContent.ReasoningText != nil:
			rt := c.ReasoningContent.ReasoningText
			out.Content = append(out.Content, converseMessagesBlock{Type: "thinking", Thinking: &rt.Text, Signature: &rt.Signature})
		case c.ReasoningContent != nil && c.ReasoningContent.RedactedContent != "":
			out.Content = append(out.Content, converseMessagesBlock{Type: "redacted_thinking", Data: c.ReasoningContent.RedactedContent})
		}
	}
	return marshal(out)
}

func (u converseUsage) messages() converseMessagesUsage {
	return converseMessagesUsage{InputTokens: u.InputTokens, CacheCreationInputTokens: u.CacheWriteInputTokens,
		CacheReadInputTokens: u.CacheReadInputTokens, OutputTokens: u.OutputTokens}
}

// converseStopReason maps a Converse stopReason to an Anthropic stop_reason.
func converseStopReason(r string) string {
	switch r {
	case "end_turn", "tool_use", "max_tokens", "stop_sequence", "model_context_window_exceeded":
		return r
	case "guardrail_intervened", "content_filtered":
		return "refusal"
	}
	return "end_turn"
}
