package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// ParseError reads an upstream error body into the message and code keygate
// re-emits in the client's dialect. It reads the shapes the presets'
// services answer with:
//
//	{"error":{"message","type","param","code"}}         OpenAI, Groq, DeepSeek, Together, Ollama, newer vLLM
//	{"error":{"code":"DeploymentNotFound","message"}}   Azure OpenAI
//	{"type":"error","error":{"type","message"}}         Anthropic
//	[{"error":{"code":400,"message","status","details"}}] Gemini's OpenAI endpoint (the bare object too)
//	{"error":{"message","code":401}}                    OpenRouter
//	{"code":"<gRPC status text>","error":"<message>"}   xAI
//	{"error":"Unauthorized"}                            vLLM started with --api-key
//	{"detail":"..."}, {"object":"error","message","type","code"} Mistral, older vLLM
//
// code is the most specific identifier the body has: a Google ErrorInfo
// reason (API_KEY_INVALID), else the code, else the type, else a Google
// status (INVALID_ARGUMENT). xAI's gRPC status texts become their snake_case
// names (invalid_argument). Numeric codes, which repeat the HTTP status, and
// anything that is not a short identifier are not codes; code is then empty.
// When no message can be read, message names the preset and the status; the
// body is never quoted unparsed. Messages can echo the upstream key, so
// callers pass a body already scrubbed of it (see Scrub).
func (p Preset) ParseError(status int, body []byte) (message, code string) {
	message, code = parseErrorBody(bytes.TrimSpace(body))
	if message == "" {
		message = fmt.Sprintf("upstream provider %q answered %d %s", p.Name, status, http.StatusText(status))
	}
	return message, code
}

func parseErrorBody(b []byte) (message, code string) {
	if len(b) > 0 && b[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(b, &list) != nil || len(list) == 0 {
			return "", ""
		}
		b = list[0]
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return "", ""
	}
	if raw, ok := top["error"]; ok {
		if msg, ok := jsonString(raw); ok {
			c := jsonStringOr(top["code"])
			if name, ok := grpcStatusNames()[c]; ok {
				c = name
			}
			return msg, firstIdentifier(c)
		}
		var d map[string]json.RawMessage
		if json.Unmarshal(raw, &d) == nil && d != nil {
			return jsonStringOr(d["message"]), firstIdentifier(googleReason(d["details"]),
				jsonStringOr(d["code"]), jsonStringOr(d["type"]), jsonStringOr(d["status"]))
		}
	}
	message = jsonStringOr(top["message"])
	if message == "" {
		message = jsonStringOr(top["detail"])
	}
	return message, firstIdentifier(jsonStringOr(top["code"]), jsonStringOr(top["type"]))
}

// googleReason returns the reason of the first google.rpc.ErrorInfo in a
// Google error's details.
func googleReason(raw json.RawMessage) string {
	var details []struct {
		Type   string `json:"@type"`
		Reason string `json:"reason"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &details) != nil {
		return ""
	}
	for _, d := range details {
		if d.Type == "type.googleapis.com/google.rpc.ErrorInfo" && d.Reason != "" {
			return d.Reason
		}
	}
	return ""
}

// grpcStatusNames maps the gRPC status descriptions xAI sends as "code" to
// the status names.
func grpcStatusNames() map[string]string {
	return map[string]string{
		"The operation was cancelled":                                            "cancelled",
		"Unknown error":                                                          "unknown",
		"Client specified an invalid argument":                                   "invalid_argument",
		"Deadline expired before operation could complete":                       "deadline_exceeded",
		"Some requested entity was not found":                                    "not_found",
		"Some entity that we attempted to create already exists":                 "already_exists",
		"The caller does not have permission to execute the specified operation": "permission_denied",
		"Some resource has been exhausted":                                       "resource_exhausted",
		"The system is not in a state required for the operation's execution":    "failed_precondition",
		"The operation was aborted":                                              "aborted",
		"Operation was attempted past the valid range":                           "out_of_range",
		"Operation is not implemented or not supported":                          "unimplemented",
		"Internal error":                                             "internal",
		"The service is currently unavailable":                       "unavailable",
		"Unrecoverable data loss or corruption":                      "data_loss",
		"The request does not have valid authentication credentials": "unauthenticated",
	}
}

// firstIdentifier returns the first candidate that is a short identifier
// and not a bare number.
func firstIdentifier(candidates ...string) string {
	for _, c := range candidates {
		if isIdentifier(c) {
			return c
		}
	}
	return ""
}

func isIdentifier(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	digits := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-', c == '.':
			digits = false
		default:
			return false
		}
	}
	return !digits
}

// jsonString decodes raw when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func jsonStringOr(raw json.RawMessage) string {
	s, _ := jsonString(raw)
	return s
}
