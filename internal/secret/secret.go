// Package secret provides String, a value that holds a credential and redacts
// itself wherever it could be printed: fmt verbs, log/slog, JSON, text encoding.
// The only way to read the value is the explicit Reveal method, so a reviewer
// can find every place a secret leaves its wrapper with a single search.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Redacted is what a String prints instead of its value.
const Redacted = "[REDACTED]"

// String holds a secret value. Its zero value is the empty secret.
type String struct {
	v string
}

// New wraps s as a secret.
func New(s string) String { return String{v: s} }

// Reveal returns the secret value. Call it only where the value must leave
// keygate's control: an upstream request header, a one-time display.
func (s String) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s String) IsZero() bool { return s.v == "" }

// Equal compares two secrets in constant time (for equal lengths).
func (s String) Equal(o String) bool {
	return subtle.ConstantTimeCompare([]byte(s.v), []byte(o.v)) == 1
}

// String implements fmt.Stringer with the redacted form.
func (s String) String() string { return Redacted }

// GoString implements fmt.GoStringer so %#v redacts too.
func (s String) GoString() string { return "secret.String(" + Redacted + ")" }

// Format implements fmt.Formatter: every verb, %x and %q included, prints the redacted form.
func (s String) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer.
func (s String) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON writes the redacted form, never the value.
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText writes the redacted form, never the value.
func (s String) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
