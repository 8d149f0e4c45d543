package translate

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// MessagesToChatError turns an Anthropic error body, which came with HTTP
// status, into an OpenAI error body:
// {"error":{"message","type","param":null,"code"}}. The message is the
// upstream's; code carries the Anthropic error type (for example
// "overloaded_error") and type is the OpenAI class of the failure
// ("server_error" for overloaded and api errors, "rate_limit_exceeded",
// "request_forbidden", "invalid_request_error"...). A body that is not an
// Anthropic error gets a message naming the status and nothing else.
//
// The caller should keep the upstream status: both SDK families retry 429,
// 5xx and Anthropic's 529 the same way, so no status needs changing.
func MessagesToChatError(status int, body []byte) []byte {
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	msg, code := "", ""
	if json.Unmarshal(body, &e) == nil {
		msg, code = e.Error.Message, e.Error.Type
	}
	if msg == "" {
		msg = statusMessage(status)
	}
	return appendChatError(nil, status, code, msg)
}

// appendChatError appends an OpenAI error object; msg and code are Go
// strings.
func appendChatError(b []byte, status int, code, msg string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = jsonpeek.AppendString(b, msg)
	b = append(b, `,"type":`...)
	b = jsonpeek.AppendString(b, chatErrorType(status, code))
	b = append(b, `,"param":null,"code":`...)
	if code == "" {
		b = append(b, "null"...)
	} else {
		b = jsonpeek.AppendString(b, code)
	}
	return append(b, "}}"...)
}

// chatErrorType classifies an Anthropic error type (or, when it is unknown,
// the status) the way OpenAI's error "type" field does.
func chatErrorType(status int, anthropicType string) string {
	switch anthropicType {
	case "overloaded_error", "api_error", "timeout_error":
		return "server_error"
	case "rate_limit_error":
		return "rate_limit_exceeded"
	case "billing_error":
		return "insufficient_quota"
	case "permission_error":
		return "request_forbidden"
	case "authentication_error", "invalid_request_error", "not_found_error", "request_too_large":
		return "invalid_request_error"
	}
	switch {
	case status == http.StatusForbidden:
		return "request_forbidden"
	case status == http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	case status >= 500 || status == 0:
		return "server_error"
	}
	return "invalid_request_error"
}

// ChatToMessagesError turns an OpenAI error body, which came with HTTP
// status, into an Anthropic error body:
// {"type":"error","error":{"type","message"}}. The message is the
// upstream's; the Anthropic type follows the status (401
// authentication_error, 402 billing_error, 403 permission_error, 404
// not_found_error, 413 request_too_large, 429 rate_limit_error or
// billing_error for OpenAI's insufficient_quota, 503 and 529
// overloaded_error, 504 timeout_error, other 5xx api_error, anything else
// invalid_request_error). The Anthropic shape has no code or param, so those
// are not carried. A body that is not an OpenAI error gets a message naming
// the status and nothing else.
//
// The caller should keep the upstream status; the Anthropic SDKs retry 503
// like 529.
func ChatToMessagesError(status int, body []byte) []byte {
	var e struct {
		Error struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	msg, typ, code := "", "", ""
	if json.Unmarshal(body, &e) == nil {
		msg, typ = e.Error.Message, e.Error.Type
		_ = json.Unmarshal(e.Error.Code, &code)
	}
	if msg == "" {
		msg = statusMessage(status)
	}
	return appendMessagesError(nil, messagesErrorType(status, typ, code), msg)
}

func appendMessagesError(b []byte, typ, msg string) []byte {
	b = append(b, `{"type":"error","error":{"type":`...)
	b = jsonpeek.AppendString(b, typ)
	b = append(b, `,"message":`...)
	b = jsonpeek.AppendString(b, msg)
	return append(b, "}}"...)
}

// messagesErrorType classifies an OpenAI error by status, or by its type when
// there is no status (an error event inside a stream).
func messagesErrorType(status int, typ, code string) string {
	if status == 0 {
		switch typ {
		case "invalid_request_error":
			return "invalid_request_error"
		case "rate_limit_exceeded", "requests", "tokens":
			return "rate_limit_error"
		case "insufficient_quota":
			return "billing_error"
		}
	}
	switch {
	case code == "insufficient_quota" || typ == "insufficient_quota":
		return "billing_error"
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusPaymentRequired:
		return "billing_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == http.StatusServiceUnavailable || status == 529:
		return "overloaded_error"
	case status == http.StatusGatewayTimeout:
		return "timeout_error"
	case status >= 500 || status == 0:
		return "api_error"
	}
	return "invalid_request_error"
}

// statusMessage is the message for an error body keygate could not read.
func statusMessage(status int) string {
	m := "upstream returned HTTP " + strconv.Itoa(status)
	if t := http.StatusText(status); t != "" {
		m += " " + t
	}
	return m
}
