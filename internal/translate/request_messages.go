package translate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Anthropic request shapes written by ChatToMessagesRequest.
type (
	messagesRequest struct {
		Model         string              `json:"model"`
		MaxTokens     int64               `json:"max_tokens"`
		System        any                 `json:"system,omitempty"`
		Messages      []messagesMessage   `json:"messages"`
		StopSequences []string            `json:"stop_sequences,omitempty"`
		Temperature   *float64            `json:"temperature,omitempty"`
		TopP          *float64            `json:"top_p,omitempty"`
		Stream        bool                `json:"stream,omitempty"`
		Metadata      *messagesMetadata   `json:"metadata,omitempty"`
		Tools         []messagesTool      `json:"tools,omitempty"`
		ToolChoice    *messagesToolChoice `json:"tool_choice,omitempty"`
	}
	messagesMetadata struct {
		UserID string `json:"user_id"`
	}
	messagesMessage struct {
		Role    string          `json:"role"`
		Content []messagesBlock `json:"content"`
	}
	messagesBlock struct {
		Type      string          `json:"type"`
		Text      string          `json:"text,omitempty"`
		Source    *messagesSource `json:"source,omitempty"`
		Title     string          `json:"title,omitempty"`
		ID        string          `json:"id,omitempty"`
		Name      string          `json:"name,omitempty"`
		Input     json.RawMessage `json:"input,omitempty"`
		ToolUseID string          `json:"tool_use_id,omitempty"`
		Content   any             `json:"content,omitempty"`
	}
	messagesSource struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type,omitempty"`
		Data      string `json:"data,omitempty"`
		URL       string `json:"url,omitempty"`
	}
	messagesTool struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		InputSchema json.RawMessage `json:"input_schema"`
		Strict      *bool           `json:"strict,omitempty"`
	}
	messagesToolChoice struct {
		Type                   string `json:"type"`
		Name                   string `json:"name,omitempty"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
	}
)

// OpenAI request shapes read by ChatToMessagesRequest.
type (
	chatMessageIn struct {
		Role         string          `json:"role"`
		Content      json.RawMessage `json:"content"`
		ToolCalls    []chatToolCall  `json:"tool_calls"`
		ToolCallID   string          `json:"tool_call_id"`
		Refusal      *string         `json:"refusal"`
		FunctionCall json.RawMessage `json:"function_call"`
		Audio        json.RawMessage `json:"audio"`
	}
	chatPart struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		Refusal  string `json:"refusal"`
		ImageURL *struct {
			URL string `json:"url"`
		} `json:"image_url"`
		File *chatFile `json:"file"`
	}
	chatFile struct {
		FileData string `json:"file_data"`
		FileID   string `json:"file_id"`
		Filename string `json:"filename"`
	}
	chatToolCall struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	chatTool struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
			Strict      *bool           `json:"strict"`
		} `json:"function"`
	}
)

// ChatToMessagesRequest translates an OpenAI Chat Completions request body
// into an Anthropic Messages request body for the upstream model. When the
// client set neither max_tokens nor max_completion_tokens, defaultMaxTokens
// is used, since Anthropic requires a limit. A field with no Anthropic
// counterpart fails with *UnsupportedError; a malformed body with
// *InvalidError.
func ChatToMessagesRequest(body []byte, model string, defaultMaxTokens int) ([]byte, error) {
	top, keys, err := topLevel(body, "Chat Completions")
	if err != nil {
		return nil, err
	}
	out := messagesRequest{Model: model, MaxTokens: int64(defaultMaxTokens)}
	var (
		tools               bool
		toolChoice          json.RawMessage
		noParallel          bool
		user, safetyID      string
		maxTokens, maxCompl *int64
	)
	for _, k := range keys {
		v := top[k]
		switch k {
		case "model", "messages", "seed", "metadata", "prompt_cache_key", "prompt_cache_retention", "stream_options":
			// model is replaced, messages read below; the rest change no
			// result an Anthropic model can give.
		case "store":
			var b bool
			if err := decode(v, &b, k, "a boolean"); err != nil {
				return nil, err
			}
			if b {
				return nil, unsupported(k, "Anthropic does not store completions; remove store or set it to false")
			}
		case "service_tier":
			var t string
			if err := decode(v, &t, k, "a string"); err != nil {
				return nil, err
			}
			if t != "auto" && t != "default" {
				return nil, unsupported(k, fmt.Sprintf("tier %q has no Anthropic counterpart; remove service_tier or use \"auto\"", t))
			}
		case "max_tokens":
			if err := decode(v, &maxTokens, k, "an integer"); err != nil {
				return nil, err
			}
		case "max_completion_tokens":
			if err := decode(v, &maxCompl, k, "an integer"); err != nil {
				return nil, err
			}
		case "stop":
			if v[0] == '"' {
				var s string
				if err := decode(v, &s, k, "a string or an array of strings"); err != nil {
					return nil, err
				}
				out.StopSequences = []string{s}
			} else if err := decode(v, &out.StopSequences, k, "a string or an array of strings"); err != nil {
				return nil, err
			}
		case "temperature":
			if err := decode(v, &out.Temperature, k, "a number"); err != nil {
				return nil, err
			}
			if *out.Temperature > 1 {
				return nil, unsupported(k, "Anthropic accepts a temperature from 0 to 1; lower it")
			}
		case "top_p":
			if err := decode(v, &out.TopP, k, "a number"); err != nil {
				return nil, err
			}
		case "stream":
			if err := decode(v, &out.Stream, k, "a boolean"); err != nil {
				return nil, err
			}
		case "user":
			if err := decode(v, &user, k, "a string"); err != nil {
				return nil, err
			}
		case "safety_identifier":
			if err := decode(v, &safetyID, k, "a string"); err != nil {
				return nil, err
			}
		case "tools":
			var ts []chatTool
			if err := decode(v, &ts, k, "an array of tools"); err != nil {
				return nil, err
			}
			for i, t := range ts {
				mt, err := messagesToolFrom(t, fmt.Sprintf("tools[%d]", i))
				if err != nil {
					return nil, err
				}
				out.Tools = append(out.Tools, mt)
			}
			tools = len(ts) > 0
		case "tool_choice":
			toolChoice = v
		case "parallel_tool_calls":
			var b bool
			if err := decode(v, &b, k, "a boolean"); err != nil {
				return nil, err
			}
			noParallel = !b
		case "n":
			var n int
			if err := decode(v, &n, k, "an integer"); err != nil {
				return nil, err
			}
			if n != 1 {
				return nil, unsupported(k, "Anthropic returns one choice per request; remove n or set it to 1 and send several requests instead")
			}
		case "logprobs":
			var b bool
			if err := decode(v, &b, k, "a boolean"); err != nil {
				return nil, err
			}
			if b {
				return nil, unsupported(k, "Anthropic does not return token log probabilities; remove logprobs")
			}
		case "top_logprobs":
			return nil, unsupported(k, "Anthropic does not return token log probabilities; remove top_logprobs")
		case "frequency_penalty", "presence_penalty":
			var f float64
			if err := decode(v, &f, k, "a number"); err != nil {
				return nil, err
			}
			if f != 0 {
				return nil, unsupported(k, "Anthropic has no repetition penalties; remove "+k)
			}
		case "logit_bias":
			var m map[string]json.RawMessage
			if err := decode(v, &m, k, "an object"); err != nil {
				return nil, err
			}
			if len(m) > 0 {
				return nil, unsupported(k, "Anthropic cannot bias tokens; remove logit_bias")
			}
		case "response_format":
			var rf struct {
				Type string `json:"type"`
			}
			if err := decode(v, &rf, k, "an object"); err != nil {
				return nil, err
			}
			if rf.Type != "text" {
				return nil, unsupported(k, fmt.Sprintf("type %q has no Anthropic counterpart here; remove response_format and describe the format in the prompt, or use a tool with the schema", rf.Type))
			}
		case "modalities":
			var ms []string
			if err := decode(v, &ms, k, "an array of strings"); err != nil {
				return nil, err
			}
			for _, m := range ms {
				if m != "text" {
					return nil, unsupported(k, fmt.Sprintf("Anthropic models answer in text only; remove %q from modalities", m))
				}
			}
		case "audio":
			return nil, unsupported(k, "Anthropic models do not produce audio; remove audio")
		case "functions", "function_call":
			return nil, unsupported(k, "the legacy function calling fields are not translated; send tools and tool_choice instead")
		case "reasoning_effort":
			return nil, unsupported(k, "reasoning settings are not translated to Anthropic extended thinking; remove reasoning_effort")
		case "prediction":
			return nil, unsupported(k, "Anthropic has no predicted outputs; remove prediction")
		case "web_search_options":
			return nil, unsupported(k, "web search is not translated; remove web_search_options")
		default:
			return nil, unsupported(k, "keygate does not know an Anthropic counterpart for this field; remove it")
		}
	}
	switch {
	case maxCompl != nil:
		out.MaxTokens = *maxCompl
	case maxTokens != nil:
		out.MaxTokens = *maxTokens
	}
	if out.MaxTokens <= 0 {
		return nil, invalid("max_tokens", "the token limit must be positive; set max_completion_tokens")
	}
	if user == "" {
		user = safetyID
	}
	if user != "" {
		out.Metadata = &messagesMetadata{UserID: user}
	}
	if toolChoice != nil {
		tc, err := messagesToolChoiceFrom(toolChoice)
		if err != nil {
			return nil, err
		}
		out.ToolChoice = tc
	}
	if noParallel && tools {
		if out.ToolChoice == nil {
			out.ToolChoice = &messagesToolChoice{Type: "auto"}
		}
		if out.ToolChoice.Type != "none" {
			out.ToolChoice.DisableParallelToolUse = true
		}
	}

	raw, ok := top["messages"]
	if !ok || isNull(raw) {
		return nil, invalid("messages", "the request has no messages; send at least one user message")
	}
	var msgs []chatMessageIn
	if err := decode(raw, &msgs, "messages", "an array of messages"); err != nil {
		return nil, err
	}
	var system []messagesBlock
	for i, m := range msgs {
		path := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			blocks, err := textBlocks(m.Content, path+".content")
			if err != nil {
				return nil, err
			}
			system = append(system, blocks...)
		case "user":
			blocks, err := userBlocks(m.Content, path+".content")
			if err != nil {
				return nil, err
			}
			out.Messages = appendMessage(out.Messages, "user", blocks)
		case "assistant":
			blocks, err := assistantBlocks(m, path)
			if err != nil {
				return nil, err
			}
			out.Messages = appendMessage(out.Messages, "assistant", blocks)
		case "tool":
			if m.ToolCallID == "" {
				return nil, invalid(path+".tool_call_id", "a tool message needs the id of the tool call it answers")
			}
			blocks, err := textBlocks(m.Content, path+".content")
			if err != nil {
				return nil, err
			}
			res := messagesBlock{Type: "tool_result", ToolUseID: m.ToolCallID}
			if len(blocks) > 0 {
				res.Content = blocks
			}
			out.Messages = appendMessage(out.Messages, "user", []messagesBlock{res})
		case "function":
			return nil, unsupported(path+".role", "function messages belong to the legacy function calling API; send tool messages with tool_call_id instead")
		default:
			return nil, invalid(path+".role", "unknown role %q; use system, developer, user, assistant or tool", m.Role)
		}
	}
	switch len(system) {
	case 0:
	case 1:
		out.System = system[0].Text
	default:
		out.System = system
	}
	if len(out.Messages) == 0 {
		return nil, invalid("messages", "Anthropic needs at least one user or assistant message besides the system prompt")
	}
	return marshal(out)
}

// appendMessage adds blocks as a message of role, joining them to the
// previous message when it has the same role: Anthropic expects the roles to
// alternate, and wants all results of one assistant turn in one user message.
func appendMessage(msgs []messagesMessage, role string, blocks []messagesBlock) []messagesMessage {
	if n := len(msgs); n > 0 && msgs[n-1].Role == role {
		msgs[n-1].Content = append(msgs[n-1].Content, blocks...)
		return msgs
	}
	if blocks == nil {
		blocks = []messagesBlock{}
	}
	return append(msgs, messagesMessage{Role: role, Content: blocks})
}

// textBlocks reads content that may hold only text: a string or text parts.
// Empty text is left out, since Anthropic refuses empty text blocks.
func textBlocks(raw json.RawMessage, path string) ([]messagesBlock, error) {
	text, parts, err := stringOrParts[chatPart](raw, path)
	if err != nil {
		return nil, err
	}
	if text != nil {
		if *text == "" {
			return nil, nil
		}
		return []messagesBlock{{Type: "text", Text: *text}}, nil
	}
	var blocks []messagesBlock
	for i, p := range parts {
		if p.Type != "text" {
			return nil, unsupported(fmt.Sprintf("%s[%d].type", path, i), fmt.Sprintf("a %q part cannot be translated here; send text only", p.Type))
		}
		if p.Text != "" {
			blocks = append(blocks, messagesBlock{Type: "text", Text: p.Text})
		}
	}
	return blocks, nil
}

func userBlocks(raw json.RawMessage, path string) ([]messagesBlock, error) {
	text, parts, err := stringOrParts[chatPart](raw, path)
	if err != nil {
		return nil, err
	}
	if text != nil {
		if *text == "" {
			return nil, nil
		}
		return []messagesBlock{{Type: "text", Text: *text}}, nil
	}
	var blocks []messagesBlock
	for i, p := range parts {
		pp := fmt.Sprintf("%s[%d]", path, i)
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, messagesBlock{Type: "text", Text: p.Text})
			}
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, invalid(pp+".image_url.url", "an image part needs a URL")
			}
			src, err := imageSource(p.ImageURL.URL, pp+".image_url.url")
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, messagesBlock{Type: "image", Source: src})
		case "input_audio":
			return nil, unsupported(pp, "Anthropic models do not accept audio input; transcribe it and send text")
		case "file":
			doc, err := documentBlock(p.File, pp+".file")
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, doc)
		default:
			return nil, unsupported(pp+".type", fmt.Sprintf("content part type %q has no Anthropic counterpart; send text or image_url parts", p.Type))
		}
	}
	return blocks, nil
}

func imageSource(url, path string) (*messagesSource, error) {
	if strings.HasPrefix(url, "data:") {
		media, data, ok := dataURI(url)
		if !ok {
			return nil, invalid(path, "a data URI image must look like data:<media type>;base64,<data>")
		}
		return &messagesSource{Type: "base64", MediaType: media, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return &messagesSource{Type: "url", URL: url}, nil
	}
	return nil, unsupported(path, "an image must be an http(s) URL or a data:<media type>;base64 URI")
}

func assistantBlocks(m chatMessageIn, path string) ([]messagesBlock, error) {
	if !isNull(m.FunctionCall) {
		return nil, unsupported(path+".function_call", "legacy function calls are not translated; send tool_calls instead")
	}
	if !isNull(m.Audio) {
		return nil, unsupported(path+".audio", "Anthropic models cannot continue from audio; send the transcript as text")
	}
	text, parts, err := stringOrParts[chatPart](m.Content, path+".content")
	if err != nil {
		return nil, err
	}
	var blocks []messagesBlock
	if text != nil && *text != "" {
		blocks = append(blocks, messagesBlock{Type: "text", Text: *text})
	}
	for i, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, messagesBlock{Type: "text", Text: p.Text})
			}
		case "refusal":
			if p.Refusal != "" {
				blocks = append(blocks, messagesBlock{Type: "text", Text: p.Refusal})
			}
		default:
			return nil, unsupported(fmt.Sprintf("%s.content[%d].type", path, i), fmt.Sprintf("assistant content part type %q has no Anthropic counterpart; send text", p.Type))
		}
	}
	if text == nil && len(parts) == 0 && m.Refusal != nil && *m.Refusal != "" {
		blocks = append(blocks, messagesBlock{Type: "text", Text: *m.Refusal})
	}
	for i, tc := range m.ToolCalls {
		tp := fmt.Sprintf("%s.tool_calls[%d]", path, i)
		if tc.Type != "" && tc.Type != "function" {
			return nil, unsupported(tp+".type", fmt.Sprintf("tool call type %q has no Anthropic counterpart; only function tools are translated", tc.Type))
		}
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, invalid(tp, "a tool call needs an id and a function name")
		}
		input := json.RawMessage(`{}`)
		if strings.TrimSpace(tc.Function.Arguments) != "" {
			var ok bool
			if input, ok = compactObject([]byte(tc.Function.Arguments)); !ok {
				return nil, invalid(tp+".function.arguments", "Anthropic needs tool call arguments that hold one JSON object; send the arguments the model produced, or {}")
			}
		}
		blocks = append(blocks, messagesBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	return blocks, nil
}

func messagesToolFrom(t chatTool, path string) (messagesTool, error) {
	if t.Type != "function" {
		return messagesTool{}, unsupported(path+".type", fmt.Sprintf("tool type %q has no Anthropic counterpart; only function tools are translated", t.Type))
	}
	if t.Function.Name == "" {
		return messagesTool{}, invalid(path+".function.name", "a tool needs a name")
	}
	schema := json.RawMessage(`{"type":"object","properties":{}}`)
	if !isNull(t.Function.Parameters) {
		var ok bool
		if schema, ok = compactObject(t.Function.Parameters); !ok {
			return messagesTool{}, invalid(path+".function.parameters", "parameters must be a JSON Schema object")
		}
	}
	return messagesTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema, Strict: t.Function.Strict}, nil
}

func messagesToolChoiceFrom(raw json.RawMessage) (*messagesToolChoice, error) {
	if raw[0] == '"' {
		var s string
		if err := decode(raw, &s, "tool_choice", "a string or an object"); err != nil {
			return nil, err
		}
		switch s {
		case "auto":
			return &messagesToolChoice{Type: "auto"}, nil
		case "none":
			return &messagesToolChoice{Type: "none"}, nil
		case "required":
			return &messagesToolChoice{Type: "any"}, nil
		}
		return nil, invalid("tool_choice", "unknown value %q; use auto, none, required or a named function", s)
	}
	var tc struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := decode(raw, &tc, "tool_choice", "a string or an object"); err != nil {
		return nil, err
	}
	if tc.Type != "function" {
		return nil, unsupported("tool_choice.type", fmt.Sprintf("tool choice %q has no Anthropic counterpart; use auto, none, required or {\"type\":\"function\",\"function\":{\"name\":...}}", tc.Type))
	}
	if tc.Function.Name == "" {
		return nil, invalid("tool_choice.function.name", "a named tool choice needs the function name")
	}
	return &messagesToolChoice{Type: "tool", Name: tc.Function.Name}, nil
}

// documentMediaType is the media type of a document format (a Converse
// format name, see converseDocExtension).
func documentMediaType(format string) string {
	switch format {
	case "pdf":
		return "application/pdf"
	case "txt":
		return "text/plain"
	case "md":
		return "text/markdown"
	case "html":
		return "text/html"
	case "csv":
		return "text/csv"
	case "doc":
		return "application/msword"
	case "docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case "xls":
		return "application/vnd.ms-excel"
	case "xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	return ""
}

// documentBlock translates an OpenAI file content part (file_data: a
// data: URI or bare base64, with a filename) into an Anthropic document
// block titled with the file name. PDF stays base64; text (plain,
// Markdown, HTML, CSV) becomes a plain text source, the only text
// Anthropic reads; Word and Excel files stay base64 in their media type,
// which Bedrock's Converse reads and Anthropic refuses. The media type is
// the data URI's, or the file name's extension's.
func documentBlock(f *chatFile, p string) (messagesBlock, error) {
	switch {
	case f == nil:
		return messagesBlock{}, invalid(p, "a file part needs a file object")
	case f.FileID != "" && f.FileData == "":
		return messagesBlock{}, unsupported(p+".file_id", "a file uploaded to OpenAI cannot be read by another provider; send its content as file_data (base64) with a filename")
	case f.FileData == "":
		return messagesBlock{}, invalid(p+".file_data", "a file part needs file_data")
	}
	mediaType, data := "", f.FileData
	if strings.HasPrefix(data, "data:") {
		var ok bool
		if mediaType, data, ok = dataURI(data); !ok {
			return messagesBlock{}, invalid(p+".file_data", "a data URI file must look like data:<media type>;base64,<data>")
		}
	}
	mediaType, _, _ = strings.Cut(strings.ToLower(strings.TrimSpace(mediaType)), ";")
	format := converseDocFormat(mediaType)
	if format == "" || format == "txt" {
		// A generic media type (application/octet-stream, or text/plain
		// for a CSV file): the file name says more.
		if byName := converseDocExtension(f.Filename); byName != "" {
			format, mediaType = byName, documentMediaType(byName)
		}
	}
	src := &messagesSource{Type: "base64", MediaType: mediaType, Data: data}
	switch format {
	case "":
		return messagesBlock{}, unsupported(p, fmt.Sprintf("the file (media type %q) is not a document keygate translates: PDF, plain text, Markdown, HTML, CSV, Word or Excel, by its media type or its file name's extension; send its text, or an image as an image_url part", mediaType))
	case "txt", "md", "html", "csv":
		raw, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return messagesBlock{}, invalid(p+".file_data", "the file's data is not base64")
		}
		if !utf8.Valid(raw) {
			return messagesBlock{}, invalid(p+".file_data", "a %s file must hold UTF-8 text", format)
		}
		src = &messagesSource{Type: "text", MediaType: "text/plain", Data: string(raw)}
	default:
		if !isBase64(data) {
			return messagesBlock{}, invalid(p+".file_data", "the file's data is not base64")
		}
	}
	return messagesBlock{Type: "document", Source: src, Title: f.Filename}, nil
}
