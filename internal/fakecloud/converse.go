package fakecloud

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// converseRequest is a Converse (and ConverseStream) request body as the
// AWS API reference defines it; checkConverseBody refuses members it does
// not list, so a translator that writes a wrong name fails here rather
// than at AWS.
type converseRequest struct {
	Messages []struct {
		Role    string            `json:"role"`
		Content []json.RawMessage `json:"content"`
	} `json:"messages"`
	System          []map[string]json.RawMessage `json:"system"`
	InferenceConfig *struct {
		MaxTokens     *int     `json:"maxTokens"`
		Temperature   *float64 `json:"temperature"`
		TopP          *float64 `json:"topP"`
		StopSequences []string `json:"stopSequences"`
	} `json:"inferenceConfig"`
	ToolConfig *struct {
		Tools []struct {
			ToolSpec *struct {
				Name        string `json:"name"`
				Description string `json:"description"`
				InputSchema struct {
					JSON json.RawMessage `json:"json"`
				} `json:"inputSchema"`
			} `json:"toolSpec"`
			CachePoint json.RawMessage `json:"cachePoint"`
		} `json:"tools"`
		ToolChoice map[string]json.RawMessage `json:"toolChoice"`
	} `json:"toolConfig"`
	AdditionalModelRequestFields      json.RawMessage    `json:"additionalModelRequestFields"`
	RequestMetadata                   map[string]string  `json:"requestMetadata"`
	GuardrailConfig                   *converseGuardrail `json:"guardrailConfig"`
	PerformanceConfig                 json.RawMessage    `json:"performanceConfig"`
	PromptVariables                   json.RawMessage    `json:"promptVariables"`
	AdditionalModelResponseFieldPaths []string           `json:"additionalModelResponseFieldPaths"`
}

// converseGuardrail is Converse's guardrailConfig, and ConverseStream's
// (which alone takes streamProcessingMode).
type converseGuardrail struct {
	GuardrailIdentifier  string `json:"guardrailIdentifier"`
	GuardrailVersion     string `json:"guardrailVersion"`
	Trace                string `json:"trace"`
	StreamProcessingMode string `json:"streamProcessingMode"`
}

// converseBlockKinds are the members a Converse content block may hold,
// exactly one each.
var converseBlockKinds = map[string]bool{"text": true, "image": true, "document": true, "video": true, "toolUse": true,
	"toolResult": true, "guardContent": true, "cachePoint": true, "reasoningContent": true, "citationsContent": true}

// checkConverseBody validates a Converse (stream false) or ConverseStream
// request body the way Bedrock's validation does, answering in its
// ValidationException wording.
func checkConverseBody(body []byte, stream bool) (*converseRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var in converseRequest
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("Malformed input request: %v, please reformat your input and try again.", err)
	}
	if len(in.Messages) == 0 {
		return nil, errors.New("1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null")
	}
	if in.Messages[0].Role != "user" {
		return nil, errors.New("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
	}
	for i, m := range in.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, fmt.Errorf("1 validation error detected: Value '%s' at 'messages.%d.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", m.Role, i+1)
		}
		if i > 0 && in.Messages[i-1].Role == m.Role {
			return nil, errors.New("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
		}
		if len(m.Content) == 0 {
			return nil, fmt.Errorf("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i)
		}
		for j, c := range m.Content {
			if err := checkConverseBlock(c); err != nil {
				return nil, fmt.Errorf("messages.%d.content.%d: %w", i, j, err)
			}
		}
	}
	for i, s := range in.System {
		if len(s) != 1 || (s["text"] == nil && s["cachePoint"] == nil && s["guardContent"] == nil) {
			return nil, fmt.Errorf("system.%d: a SystemContentBlock holds exactly one of text, guardContent and cachePoint", i)
		}
		if cp := s["cachePoint"]; cp != nil {
			if err := checkCachePoint(cp); err != nil {
				return nil, fmt.Errorf("system.%d: %w", i, err)
			}
		}
	}
	if tc := in.ToolConfig; tc != nil {
		if len(tc.Tools) == 0 {
			return nil, errors.New("1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1")
		}
		for i, t := range tc.Tools {
			if t.CachePoint != nil && t.ToolSpec == nil {
				if err := checkCachePoint(t.CachePoint); err != nil {
					return nil, fmt.Errorf("toolConfig.tools.%d: %w", i, err)
				}
				continue
			}
			if t.ToolSpec == nil || t.ToolSpec.Name == "" || len(t.ToolSpec.InputSchema.JSON) == 0 || t.CachePoint != nil {
				return nil, fmt.Errorf("toolConfig.tools.%d: a tool needs toolSpec with a name and inputSchema.json, or is a cachePoint", i)
			}
		}
	}
	if g := in.GuardrailConfig; g != nil {
		if g.GuardrailIdentifier == "" || g.GuardrailVersion == "" {
			return nil, errors.New("1 validation error detected: guardrailConfig needs guardrailIdentifier and guardrailVersion")
		}
		if g.StreamProcessingMode != "" && !stream {
			return nil, errors.New("Malformed input request: #/guardrailConfig: extraneous key [streamProcessingMode] is not permitted, please reformat your input and try again.")
		}
		if g.Trace != "" && g.Trace != "enabled" && g.Trace != "disabled" && g.Trace != "enabled_full" {
			return nil, fmt.Errorf("1 validation error detected: Value '%s' at 'guardrailConfig.trace' failed to satisfy constraint: Member must satisfy enum value set: [enabled, disabled, enabled_full]", g.Trace)
		}
		if g.StreamProcessingMode != "" && g.StreamProcessingMode != "sync" && g.StreamProcessingMode != "async" {
			return nil, fmt.Errorf("1 validation error detected: Value '%s' at 'guardrailConfig.streamProcessingMode' failed to satisfy constraint: Member must satisfy enum value set: [sync, async]", g.StreamProcessingMode)
		}
	}
	return &in, nil
}

// checkCachePoint validates a CachePointBlock.
func checkCachePoint(raw json.RawMessage) error {
	var cp map[string]string
	if err := json.Unmarshal(raw, &cp); err != nil || cp["type"] != "default" {
		return errors.New("a cachePoint needs type default")
	}
	for k, v := range cp {
		if k == "ttl" && v != "5m" && v != "1h" {
			return fmt.Errorf("1 validation error detected: Value '%s' at 'cachePoint.ttl' failed to satisfy constraint: Member must satisfy enum value set: [5m, 1h]", v)
		}
		if k != "type" && k != "ttl" {
			return fmt.Errorf("unknown cachePoint member %q", k)
		}
	}
	return nil
}

// checkDocument validates a DocumentBlock with its bytes inline: a known
// format, a name in the characters Converse allows, base64 bytes.
func checkDocument(raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d struct {
		Format string `json:"format"`
		Name   string `json:"name"`
		Source struct {
			Bytes []byte `json:"bytes"` // base64 in JSON
		} `json:"source"`
		Context   string          `json:"context"`
		Citations json.RawMessage `json:"citations"`
	}
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("Malformed input request: document: %v, please reformat your input and try again.", err)
	}
	switch d.Format {
	case "pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md":
	default:
		return fmt.Errorf("1 validation error detected: Value '%s' at 'document.format' failed to satisfy constraint: Member must satisfy enum value set: [pdf, csv, doc, docx, xls, xlsx, html, txt, md]", d.Format)
	}
	if len(d.Source.Bytes) == 0 {
		return errors.New("The document source is empty. Add the document's bytes and try again.")
	}
	if !docNameOK(d.Name) {
		return errors.New("The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets. The name can't contain more than one consecutive whitespace character.")
	}
	return nil
}

// docNameOK applies DocumentBlock.name's rules: 1 to 200 characters,
// letters, digits, hyphens, parentheses, square brackets and whitespace,
// never two whitespace characters in a row.
func docNameOK(name string) bool {
	if name == "" || len(name) > 200 {
		return false
	}
	prevSpace := false
	for _, r := range name {
		space := r == ' ' || r == '\t' || r == '\n'
		if space && prevSpace {
			return false
		}
		prevSpace = space
		if !space && r != '-' && r != '(' && r != ')' && r != '[' && r != ']' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

func checkConverseBlock(raw json.RawMessage) error {
	var block map[string]json.RawMessage
	if err := json.Unmarshal(raw, &block); err != nil {
		return errors.New("a ContentBlock is an object")
	}
	if len(block) != 1 {
		return fmt.Errorf("a ContentBlock holds exactly one member, not %d", len(block))
	}
	for k, v := range block {
		if !converseBlockKinds[k] {
			return fmt.Errorf("unknown ContentBlock member %q", k)
		}
		var s string
		if k == "text" && (json.Unmarshal(v, &s) != nil || s == "") {
			return errors.New("The text field in the ContentBlock object is blank. Add text to the text field, and try again.")
		}
		switch k {
		case "document":
			if err := checkDocument(v); err != nil {
				return err
			}
		case "cachePoint":
			if err := checkCachePoint(v); err != nil {
				return err
			}
		case "toolResult":
			var tr struct {
				Content []json.RawMessage `json:"content"`
			}
			_ = json.Unmarshal(v, &tr)
			for _, c := range tr.Content {
				var d struct {
					Document json.RawMessage `json:"document"`
				}
				if json.Unmarshal(c, &d) == nil && d.Document != nil {
					if err := checkDocument(d.Document); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// calledTool is the tool a request's toolChoice makes the model call: the
// named one, or the first for "any"; "" for none.
func (in *converseRequest) calledTool() string {
	tc := in.ToolConfig
	if tc == nil || len(tc.Tools) == 0 {
		return ""
	}
	if raw, ok := tc.ToolChoice["tool"]; ok {
		var named struct{ Name string }
		_ = json.Unmarshal(raw, &named)
		return named.Name
	}
	if _, ok := tc.ToolChoice["any"]; ok {
		return tc.Tools[0].ToolSpec.Name
	}
	return ""
}

// lastToolResult is the text of a tool result in the last message, "" if
// it holds none.
func (in *converseRequest) lastToolResult() string {
	last := in.Messages[len(in.Messages)-1]
	for _, c := range last.Content {
		var b struct {
			ToolResult *struct {
				Content []struct{ Text string } `json:"content"`
			} `json:"toolResult"`
		}
		if json.Unmarshal(c, &b) == nil && b.ToolResult != nil && len(b.ToolResult.Content) > 0 {
			return b.ToolResult.Content[0].Text
		}
	}
	return ""
}

// hasCachePoint reports whether a request marks a prefix to cache.
func (in *converseRequest) hasCachePoint() bool {
	for _, s := range in.System {
		if s["cachePoint"] != nil {
			return true
		}
	}
	if in.ToolConfig != nil {
		for _, t := range in.ToolConfig.Tools {
			if t.CachePoint != nil {
				return true
			}
		}
	}
	for _, m := range in.Messages {
		for _, c := range m.Content {
			if bytes.HasPrefix(bytes.TrimSpace(c), []byte(`{"cachePoint"`)) {
				return true
			}
		}
	}
	return false
}

// CachedTokens is how many tokens the fake Bedrock says a request's
// cached prefix holds: the first request with a cache point writes them
// (cacheWriteInputTokens), every later one reads them
// (cacheReadInputTokens), on top of the usual 10 input tokens.
const CachedTokens = 1000

// converseUsage is the usage object of an answer to in.
func (b *Bedrock) converseUsage(in *converseRequest) map[string]int {
	u := map[string]int{"inputTokens": 10, "outputTokens": 7, "totalTokens": 17}
	if !in.hasCachePoint() {
		return u
	}
	b.mu.Lock()
	warm := b.cacheWarm
	b.cacheWarm = true
	b.mu.Unlock()
	if warm {
		u["cacheReadInputTokens"] = CachedTokens
	} else {
		u["cacheWriteInputTokens"] = CachedTokens
	}
	u["totalTokens"] += CachedTokens
	return u
}

// converseToolUse answers with a call of tool, as Converse or as
// ConverseStream (the input streamed in two pieces).
func converseToolUse(w http.ResponseWriter, stream bool, tool string, usage map[string]int) {
	const id = "tooluse_fake01"
	if !stream {
		writeJSON(w, 200, map[string]any{"output": map[string]any{"message": map[string]any{"role": "assistant", "content": []map[string]any{
			{"toolUse": map[string]any{"toolUseId": id, "name": tool, "input": map[string]string{"city": "Paris"}}}}}},
			"stopReason": "tool_use", "usage": usage, "metrics": map[string]int{"latencyMs": 5}})
		return
	}
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(200)
	writeEvent(w, "messageStart", []byte(`{"role":"assistant"}`))
	start, _ := json.Marshal(map[string]any{"contentBlockIndex": 0, "start": map[string]any{"toolUse": map[string]string{"toolUseId": id, "name": tool}}})
	writeEvent(w, "contentBlockStart", start)
	writeEvent(w, "contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{\"city\":"}}}`))
	writeEvent(w, "contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"toolUse":{"input":"\"Paris\"}"}}}`))
	writeEvent(w, "contentBlockStop", []byte(`{"contentBlockIndex":0}`))
	writeEvent(w, "messageStop", []byte(`{"stopReason":"tool_use"}`))
	writeEvent(w, "metadata", converseMetadata(usage))
}

// converseMetadata is a ConverseStream metadata event's payload.
func converseMetadata(usage map[string]int) []byte {
	b, _ := json.Marshal(map[string]any{"usage": usage, "metrics": map[string]int{"latencyMs": 5}})
	return b
}
