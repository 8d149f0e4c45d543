package usage

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// DialectBedrock is Amazon Bedrock's runtime API: InvokeModel answers in
// the model's own format (Anthropic's Messages for Claude), Converse in
// Bedrock's, and both stream in the AWS event-stream framing.
const DialectBedrock = "bedrock"

// FromBedrockJSON reads the usage of a plain Bedrock answer: an
// InvokeModel answer in the Anthropic Messages shape (usage.input_tokens),
// or a Converse answer (usage.inputTokens, usage.outputTokens).
func FromBedrockJSON(body []byte) (Usage, error) {
	var conv struct {
		Usage *converseUsage `json:"usage"`
	}
	if json.Unmarshal(body, &conv) == nil && conv.Usage != nil && conv.Usage.InputTokens+conv.Usage.OutputTokens > 0 {
		return conv.Usage.usage(), nil
	}
	return FromJSON(DialectAnthropic, body)
}

// converseUsage is the usage object of Converse and of ConverseStream's
// metadata event.
type converseUsage struct {
	InputTokens           int64 `json:"inputTokens"`
	OutputTokens          int64 `json:"outputTokens"`
	CacheReadInputTokens  int64 `json:"cacheReadInputTokens"`
	CacheWriteInputTokens int64 `json:"cacheWriteInputTokens"`
}

func (c converseUsage) usage() Usage {
	return Usage{InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, CacheReadTokens: c.CacheReadInputTokens,
		CacheWriteTokens: c.CacheWriteInputTokens, Complete: true}
}

// MaxFrameBytes bounds one event-stream frame the meter reads; a longer
// one (no Bedrock event comes near it) ends metering of the stream.
const MaxFrameBytes = 16 << 20

// BedrockStreamMeter reads usage from a Bedrock event stream as it passes:
// InvokeModelWithResponseStream's chunk events (each an Anthropic Messages
// stream event, base64 in "bytes", the last with
// amazon-bedrock-invocationMetrics) and ConverseStream's events
// (contentBlockDelta text, the metadata event's usage). Like StreamMeter it
// never fails and keeps no reference to what it is given; it holds only a
// frame split across writes.
type BedrockStreamMeter struct {
	held      []byte
	broken    bool
	anthropic *StreamMeter
	metrics   *Usage // from amazon-bedrock-invocationMetrics or a metadata event
	streamed  int64
	dec       *eventstream.Decoder
}

// NewBedrockStreamMeter returns a meter for one Bedrock event stream.
func NewBedrockStreamMeter() *BedrockStreamMeter {
	return &BedrockStreamMeter{anthropic: NewStreamMeter(DialectAnthropic), dec: eventstream.NewDecoder()}
}

// Write observes the next bytes of the stream.
func (m *BedrockStreamMeter) Write(p []byte) (int, error) {
	n := len(p)
	if m.broken {
		return n, nil
	}
	buf := p
	if len(m.held) > 0 {
		m.held = append(m.held, p...)
		buf = m.held
	}
	for len(buf) >= 4 {
		size := int(binary.BigEndian.Uint32(buf))
		if size < 16 || size > MaxFrameBytes {
			m.broken, m.held = true, nil
			return n, nil
		}
		if len(buf) < size {
			break
		}
		m.frame(buf[:size])
		buf = buf[size:]
	}
	m.held = append(m.held[:0], buf...)
	return n, nil
}

// frame reads one whole event-stream message.
func (m *BedrockStreamMeter) frame(f []byte) {
	msg, err := m.dec.Decode(bytes.NewReader(f), nil)
	if err != nil {
		return
	}
	var typ string
	if v := msg.Headers.Get(":event-type"); v != nil {
		typ = v.String()
	}
	switch typ {
	case "chunk":
		var c struct {
			Bytes string `json:"bytes"`
		}
		if json.Unmarshal(msg.Payload, &c) != nil {
			return
		}
		ev, err := base64.StdEncoding.DecodeString(c.Bytes)
		if err != nil {
			return
		}
		_, _ = m.anthropic.Write(append(append([]byte("data: "), ev...), '\n', '\n'))
		var inv struct {
			Metrics *struct {
				InputTokenCount  int64 `json:"inputTokenCount"`
				OutputTokenCount int64 `json:"outputTokenCount"`
			} `json:"amazon-bedrock-invocationMetrics"`
		}
		if json.Unmarshal(ev, &inv) == nil && inv.Metrics != nil {
			m.metrics = &Usage{InputTokens: inv.Metrics.InputTokenCount, OutputTokens: inv.Metrics.OutputTokenCount, Complete: true}
		}
	case "contentBlockDelta":
		var d struct {
			Delta struct {
				Text string `json:"text"`
			} `json:"delta"`
		}
		if json.Unmarshal(msg.Payload, &d) == nil {
			m.streamed += int64(len(d.Delta.Text))
		}
	case "metadata":
		var md struct {
			Usage *converseUsage `json:"usage"`
		}
		if json.Unmarshal(msg.Payload, &md) == nil && md.Usage != nil {
			u := md.Usage.usage()
			m.metrics = &u
		}
	}
}

// Usage returns what the stream has reported so far.
func (m *BedrockStreamMeter) Usage() Usage {
	u := m.anthropic.Usage()
	u.StreamedBytes += m.streamed
	if m.metrics != nil && (!u.Complete || u.InputTokens == 0) {
		streamed := u.StreamedBytes
		u = *m.metrics
		u.StreamedBytes = streamed
	}
	return u
}
