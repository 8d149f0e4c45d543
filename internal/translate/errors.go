package translate

import "fmt"

// UnsupportedError reports a request that uses a feature the other API has
// no counterpart for. Field is the JSON path of the offending field as the
// client sent it, Reason says what to change.
type UnsupportedError struct {
	Field  string
	Reason string
	// To names the API the request was translated to when it is not one
	// of OpenAI's and Anthropic's (Bedrock's Converse API); "" otherwise.
	To string
}

// Error implements error.
func (e *UnsupportedError) Error() string {
	if e.To != "" {
		return fmt.Sprintf("translate: %s cannot be translated to %s: %s", e.Field, e.To, e.Reason)
	}
	return fmt.Sprintf("translate: %s cannot be translated between the OpenAI and Anthropic APIs: %s", e.Field, e.Reason)
}

// InvalidError reports a body that is not valid JSON or does not have the
// shape its API defines. Field is the JSON path of the offending value, or
// empty for the whole body.
type InvalidError struct {
	Field  string
	Reason string
}

// Error implements error.
func (e *InvalidError) Error() string {
	if e.Field == "" {
		return "translate: invalid body: " + e.Reason
	}
	return fmt.Sprintf("translate: invalid %s: %s", e.Field, e.Reason)
}

func unsupported(field, reason string) error { return &UnsupportedError{Field: field, Reason: reason} }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
