package translate

import (
	"errors"
	"fmt"
	"strings"
)

// ConverseOptions are what a provider adds to every Converse call keygate
// sends it, whatever the client asked.
type ConverseOptions struct {
	// Guardrail, when set, is applied to every Converse and ConverseStream
	// call (guardrailConfig).
	Guardrail *ConverseGuardrail
}

// Check reports options Bedrock would refuse, naming the field and what to
// give instead, so that a provider's configuration fails when it is saved
// rather than on every call.
func (o ConverseOptions) Check() error {
	if o.Guardrail == nil {
		return nil
	}
	return o.Guardrail.Check()
}

// ConverseGuardrail names an Amazon Bedrock guardrail: Bedrock evaluates
// every prompt and answer against it, and an intervention ends the answer
// with stop reason guardrail_intervened (Anthropic "refusal", OpenAI
// "content_filter").
type ConverseGuardrail struct {
	// Identifier is the guardrail's id or ARN.
	Identifier string `json:"identifier"`
	// Version is a published version number, or "DRAFT".
	Version string `json:"version"`
	// Trace is "enabled", "enabled_full" or "disabled" ("": Bedrock's
	// default, disabled). keygate does not pass the trace to clients.
	Trace string `json:"trace,omitempty"`
	// StreamProcessingMode is "sync" or "async" for ConverseStream ("":
	// Bedrock's default, sync); Converse calls leave it out.
	StreamProcessingMode string `json:"stream_processing_mode,omitempty"`
}

// guardrailIDOK matches Bedrock's pattern for a guardrail identifier: an
// id of lowercase letters and digits, or
// arn:aws[-PARTITION]:bedrock:REGION:ACCOUNT:guardrail/ID.
func guardrailIDOK(s string) bool {
	id := func(s string) bool {
		for _, r := range s {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
				return false
			}
		}
		return s != ""
	}
	if !strings.HasPrefix(s, "arn:") {
		return id(s)
	}
	parts := strings.Split(s, ":")
	if len(parts) != 6 || (parts[1] != "aws" && !strings.HasPrefix(parts[1], "aws-")) || parts[2] != "bedrock" {
		return false
	}
	region, account, res := parts[3], parts[4], parts[5]
	if len(region) < 1 || len(region) > 20 || strings.Trim(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return false
	}
	if len(account) != 12 || strings.Trim(account, "0123456789") != "" {
		return false
	}
	gid, ok := strings.CutPrefix(res, "guardrail/")
	return ok && id(gid)
}

// guardrailVersionOK matches Bedrock's pattern for a guardrail version:
// 1 to 99999999, or DRAFT.
func guardrailVersionOK(s string) bool {
	if s == "DRAFT" {
		return true
	}
	return len(s) >= 1 && len(s) <= 8 && s[0] != '0' && strings.Trim(s, "0123456789") == ""
}

// Check reports a guardrail Bedrock would refuse.
func (g *ConverseGuardrail) Check() error {
	switch {
	case g.Identifier == "":
		return errors.New("bedrock guardrail: identifier is empty; give the guardrail's id (such as gr1a2b3c4d5e) or its ARN")
	case len(g.Identifier) > 2048 || !guardrailIDOK(g.Identifier):
		return errors.New("bedrock guardrail: identifier is neither a guardrail id (lowercase letters and digits) nor a guardrail ARN (arn:aws:bedrock:REGION:ACCOUNT:guardrail/ID)")
	case !guardrailVersionOK(g.Version):
		return fmt.Errorf("bedrock guardrail: version %q is not a version number (1, 2, ...) or DRAFT", g.Version)
	}
	switch g.Trace {
	case "", "enabled", "disabled", "enabled_full":
	default:
		return fmt.Errorf("bedrock guardrail: trace %q is not enabled, enabled_full or disabled", g.Trace)
	}
	switch g.StreamProcessingMode {
	case "", "sync", "async":
	default:
		return fmt.Errorf("bedrock guardrail: stream_processing_mode %q is not sync or async", g.StreamProcessingMode)
	}
	return nil
}

// converseGuardrailConfig is Converse's guardrailConfig (and
// ConverseStream's, which adds streamProcessingMode).
type converseGuardrailConfig struct {
	GuardrailIdentifier  string `json:"guardrailIdentifier"`
	GuardrailVersion     string `json:"guardrailVersion"`
	Trace                string `json:"trace,omitempty"`
	StreamProcessingMode string `json:"streamProcessingMode,omitempty"`
}

// config is g as a Converse (stream false) or ConverseStream request's
// guardrailConfig; nil for no guardrail.
func (g *ConverseGuardrail) config(stream bool) *converseGuardrailConfig {
	if g == nil {
		return nil
	}
	c := &converseGuardrailConfig{GuardrailIdentifier: g.Identifier, GuardrailVersion: g.Version, Trace: g.Trace}
	if stream {
		c.StreamProcessingMode = g.StreamProcessingMode
	}
	return c
}
