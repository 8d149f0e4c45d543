// Package usage reads token usage out of provider responses as they pass
// through keygate: from a plain JSON answer, or from a server-sent event
// stream observed chunk by chunk without buffering it. Metering and budgets
// build on these figures.
package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Usage is what a response said it consumed.
type Usage struct {
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	// Complete reports that the response carried its final usage figures; a
	// stream cut off before them reports what it had seen with Complete false.
	Complete bool
}

// wire holds the usage fields of every dialect keygate speaks.
type wire struct {
	PromptTokens        *int64 `json:"prompt_tokens"`     // OpenAI chat, completions, embeddings
	CompletionTokens    *int64 `json:"completion_tokens"` // OpenAI chat, completions
	InputTokens         *int64 `json:"input_tokens"`      // Anthropic, OpenAI Responses
	OutputTokens        *int64 `json:"output_tokens"`     // Anthropic, OpenAI Responses
	CacheRead           *int64 `json:"cache_read_input_tokens"`
	CacheWrite          *int64 `json:"cache_creation_input_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	InputTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
}

// merge copies the figures w carries into u; absent fields keep u's values,
// so Anthropic's cumulative message_delta updates the output count only.
func (u *Usage) merge(w *wire) {
	set := func(dst *int64, src *int64) {
		if src != nil {
			*dst = *src
		}
	}
	set(&u.InputTokens, w.PromptTokens)
	set(&u.InputTokens, w.InputTokens)
	set(&u.OutputTokens, w.CompletionTokens)
	set(&u.OutputTokens, w.OutputTokens)
	set(&u.CacheReadTokens, w.CacheRead)
	set(&u.CacheWriteTokens, w.CacheWrite)
	if w.PromptTokensDetails != nil {
		u.CacheReadTokens = w.PromptTokensDetails.CachedTokens
	}
	if w.InputTokensDetails != nil {
		u.CacheReadTokens = w.InputTokensDetails.CachedTokens
	}
}

// FromJSON reads the top-level "usage" object of a plain JSON response
// (OpenAI chat, completions, embeddings, responses; Anthropic messages).
// Only the usage object is decoded into values; the rest is skipped.
func FromJSON(body []byte) (Usage, error) {
	var r struct {
		Usage *wire `json:"usage"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Usage{}, fmt.Errorf("usage: response is not JSON: %w", err)
	}
	var u Usage
	if r.Usage != nil {
		u.merge(r.Usage)
		u.Complete = true
	}
	return u, nil
}

// maxLine bounds the one event line a Meter holds while it waits for the
// rest; a longer line cannot be a usage event and is skipped.
const maxLine = 1 << 20

var (
	usageKey  = []byte(`"usage"`)
	usageNull = []byte(`"usage":null`)
)

// Meter watches a server-sent event stream for usage: write each chunk
// the client receives to it. Content deltas cost a line scan and a
// substring test; only events that mention usage are decoded. A Meter is
// not safe for concurrent use; one stream writes to it.
type Meter struct {
	u        Usage
	line     []byte
	skipping bool // inside an over-long line
}

// Write observes the next bytes of the stream. It never fails.
func (m *Meter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			m.hold(p)
			break
		}
		if len(m.line) == 0 && !m.skipping {
			m.event(p[:i]) // the whole line is in this chunk: no copy
		} else {
			m.hold(p[:i])
			if !m.skipping {
				m.event(m.line)
			}
			m.line, m.skipping = m.line[:0], false
		}
		p = p[i+1:]
	}
	return n, nil
}

func (m *Meter) hold(p []byte) {
	if m.skipping {
		return
	}
	if len(m.line)+len(p) > maxLine {
		m.line, m.skipping = m.line[:0], true
		return
	}
	m.line = append(m.line, p...)
}

// event handles one line: a "data:" field that mentions usage.
func (m *Meter) event(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok || !bytes.Contains(data, usageKey) {
		return
	}
	// OpenAI sends "usage":null on every chunk but the last when the client
	// asked for usage; those carry nothing and are not decoded.
	if bytes.Contains(data, usageNull) && bytes.Count(data, usageKey) == 1 {
		return
	}
	var ev struct {
		Type    string `json:"type"`
		Usage   *wire  `json:"usage"`
		Message *struct {
			Usage *wire `json:"usage"`
		} `json:"message"`
		Response *struct {
			Usage *wire `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(bytes.TrimSpace(data), &ev) != nil {
		return
	}
	switch {
	case ev.Type == "message_start" && ev.Message != nil && ev.Message.Usage != nil: // Anthropic, opening figures
		m.u.merge(ev.Message.Usage)
	case ev.Type == "message_delta" && ev.Usage != nil: // Anthropic, cumulative final figures
		m.u.merge(ev.Usage)
		m.u.Complete = true
	case ev.Response != nil && ev.Response.Usage != nil: // OpenAI Responses: response.completed and kin
		m.u.merge(ev.Response.Usage)
		m.u.Complete = ev.Type == "response.completed"
	case ev.Type == "" && ev.Usage != nil: // OpenAI chat and completions: the include_usage chunk
		m.u.merge(ev.Usage)
		m.u.Complete = true
	}
}

// Usage returns what the stream has reported so far.
func (m *Meter) Usage() Usage { return m.u }
