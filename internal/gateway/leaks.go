package gateway

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/principal"
)

// LeakOptions configure the outbound credential check: every body keygate
// forwards is checked, before anything goes upstream, for values held in
// the vault, keygate's own credentials and other credential formats.
type LeakOptions struct {
	// Action gives the action for a hit; nil means leak.DefaultAction of
	// its kind (block vault values and keygate credentials, alert on the
	// rest).
	Action func(leak.Hit) leak.Action
	// StreamTextFindOnly sends a stream's events at once instead of
	// holding its last few dozen characters of text back: a credential
	// split across events is then found and recorded, not redacted.
	StreamTextFindOnly bool
}

// RuleCredentialLeak names the risk finding a request carrying a
// credential raises, for the detectors (an alert, and a suspension where
// detect's actions say so).
const RuleCredentialLeak = "credential-leak"

// SetLeakMatcher replaces what the outbound check looks for: the vault's
// values change as providers and secrets do. nil checks formats only
// until a matcher is set.
func (g *Gateway) SetLeakMatcher(m *leak.Matcher) { g.leaks.Store(m) }

// LeakMatcher returns what the outbound check looks for now (nil before
// SetLeakMatcher), for the MCP gate's checks.
func (g *Gateway) LeakMatcher() *leak.Matcher { return g.leaks.Load() }

// checkLeaks is the step that keeps credentials from going upstream in a
// request body: a hit is refused (block), replaced by [REDACTED:rule]
// (redact), or let through (alert); every hit is recorded on the call for
// the audit trail and the detectors. The returned body is what may go on.
func (g *Gateway) checkLeaks(c *call, key *principal.Principal, body []byte) ([]byte, *Denial) {
	if g.opts.Leaks == nil {
		return body, nil
	}
	c.leakOverride = leak.Action(key.LeakAction)
	if len(body) == 0 {
		return body, nil
	}
	m := g.leaks.Load()
	if m == nil {
		return body, nil
	}
	hits := m.Check(body)
	if len(hits) == 0 {
		return body, nil
	}
	act := leak.Strictest(hits, g.leakPolicy(c))
	c.leakAction, c.leakRules, c.leakValues = string(act), leakRules(hits), leakValues(hits)
	c.riskRules = append(c.riskRules, RuleCredentialLeak)
	switch act {
	case leak.ActionBlock:
		return nil, denyf(http.StatusBadRequest, "credential_in_request",
			"the request body holds a credential (%s); keygate does not send credentials upstream. Remove it, or let keygate inject it: keep it in the vault and reference it",
			describeLeaks(hits))
	case leak.ActionRedact:
		return leak.Redacted(body, hits), nil
	}
	return body, nil
}

// checkAnswer checks a model's answer on its way to the client, streamed
// or not, holding back only the bytes a credential may still be part of
// (leak.Stream). A hit whose action is redact or block is replaced by
// [REDACTED:rule]: an answer's status and headers are on their way
// already, so it is never cut off, only cleaned. An alert hit passes.
// Every hit is recorded on the call for the audit trail and the detectors
// (an answer holding a vault value means the model was given it). The
// answer of known length is read and checked whole (its Content-Length
// is kept true); a stream is checked as it passes, without its length.
func (g *Gateway) checkAnswer(c *call, resp *http.Response) error {
	if g.opts.Leaks == nil || resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	m := g.leaks.Load()
	if m == nil {
		return nil
	}
	policy := g.leakPolicy(c)
	action := func(h leak.Hit) leak.Action {
		if policy != nil {
			return policy(h)
		}
		return leak.DefaultAction(h.Kind)
	}
	record := func(h leak.Hit) {
		if len(c.answerLeaks) == 0 {
			c.riskRules = append(c.riskRules, RuleCredentialLeak)
		}
		c.answerLeaks = append(c.answerLeaks, h)
	}
	recordText := func(h leak.Hit) {
		if len(c.answerLeaks) == 0 && len(c.answerTextLeaks) == 0 {
			c.riskRules = append(c.riskRules, RuleCredentialLeak)
		}
		c.answerTextLeaks = append(c.answerTextLeaks, h)
	}
	redact := func(h leak.Hit) bool { return action(h) != leak.ActionAlert }
	textRedact := redact
	if g.opts.Leaks.StreamTextFindOnly {
		textRedact = nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), eventStreamType) {
		// An AWS event stream (Bedrock): checked message by message, and
		// its generated text across messages.
		resp.Body = newEventStreamGuard(resp.Body, m, redact, record, textRedact, recordText)
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return nil
	}
	if n := resp.ContentLength; n >= 0 && n <= maxWholeAnswer {
		// A whole answer of known length: checked at once, and its
		// Content-Length stays true.
		bp := answerBufs.Get().(*[]byte)
		if int64(cap(*bp)) < n {
			*bp = make([]byte, n)
		}
		body := (*bp)[:n]
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			answerBufs.Put(bp)
			return err
		}
		var redact []leak.Hit
		for _, h := range m.Check(body) {
			record(h)
			if action(h) != leak.ActionAlert {
				redact = append(redact, h)
			}
		}
		if len(redact) > 0 {
			redacted := leak.Redacted(body, redact)
			answerBufs.Put(bp)
			ct := resp.Header.Get("Content-Type")
			setBody(resp, redacted, resp.Body)
			resp.Header.Set("Content-Type", ct)
			return nil
		}
		// Unchanged: the same bytes and length, from a pooled buffer
		// given back when the proxy closes the body.
		b := &answerBody{buf: bp, src: resp.Body}
		b.r.Reset(body)
		resp.Body = b
		return nil
	}
	// A stream: checked as it passes, and its length may change.
	b := &leakBody{src: resp.Body}
	b.s = m.NewStream(&b.out, false, func(h leak.Hit) error { record(h); return nil }).RedactWhen(redact)
	resp.Body = b
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// Each event is checked up to its end and passed on whole: a
		// credential does not run on across the blank line between
		// events (one split over events' text is the text guard's).
		b.events = true
		// Its generated text, checked whole across events: a credential
		// a model streams a few characters at a time.
		resp.Body = newTextGuard(m, b, c.dialect.Name(), recordText, textRedact)
	}
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return nil
}

// maxWholeAnswer is the largest answer of known length checked at once;
// a longer one is checked as a stream.
const maxWholeAnswer = 4 << 20

// answerLeakFields describes what checkAnswer found, for the audit
// trail: the strictest action taken, the rules, the vault records' names.
func (g *Gateway) answerLeakFields(c *call, f map[string]string) {
	if len(c.answerTextLeaks) > 0 {
		act := leak.ActionAlert
		if g.opts.Leaks != nil && !g.opts.Leaks.StreamTextFindOnly && leak.Strictest(c.answerTextLeaks, g.leakPolicy(c)) != leak.ActionAlert {
			act = leak.ActionRedact // in an answer, block redacts
		}
		f["answer_text_leak_action"], f["answer_text_leak_rules"] = string(act), leakRules(c.answerTextLeaks)
		if v := leakValues(c.answerTextLeaks); v != "" {
			f["answer_text_leak_values"] = v
		}
	}
	if len(c.answerLeaks) == 0 {
		return
	}
	act := leak.ActionAlert
	if g.opts.Leaks != nil && leak.Strictest(c.answerLeaks, g.leakPolicy(c)) != leak.ActionAlert {
		act = leak.ActionRedact // in an answer, block redacts
	}
	f["answer_leak_action"], f["answer_leak_rules"] = string(act), leakRules(c.answerLeaks)
	if v := leakValues(c.answerLeaks); v != "" {
		f["answer_leak_values"] = v
	}
}

// answerBufs lends whole answers their buffers while they are checked and
// passed on.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// answerBody passes on a checked answer from its pooled buffer.
type answerBody struct {
	r    bytes.Reader
	buf  *[]byte
	src  io.Closer
	once sync.Once
}

func (b *answerBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *answerBody) Close() error {
	err := b.src.Close()
	b.once.Do(func() {
		b.r.Reset(nil)
		if cap(*b.buf) <= 1<<20 {
			answerBufs.Put(b.buf)
		}
	})
	return err
}

// leakBody is an answer read through a leak.Stream: each read takes what
// the stream has passed on, reading the upstream's body as it needs.
type leakBody struct {
	src    io.ReadCloser
	s      *leak.Stream
	out    bytes.Buffer // passed on by the stream, not yet read
	buf    []byte
	eof    bool
	events bool // server-sent events: cut the check where each ends
	last   byte // the last byte read
}

func (b *leakBody) Read(p []byte) (int, error) {
	for b.out.Len() == 0 {
		if b.eof {
			return 0, io.EOF
		}
		if b.buf == nil {
			b.buf = make([]byte, 8<<10)
		}
		n, err := b.src.Read(b.buf)
		if n > 0 {
			if werr := b.write(b.buf[:n]); werr != nil {
				return 0, werr
			}
		}
		if err == io.EOF {
			b.eof = true
			if cerr := b.s.Close(); cerr != nil {
				return 0, cerr
			}
		} else if err != nil {
			return 0, err
		}
	}
	return b.out.Read(p)
}

// write checks p; in a stream of events, it cuts the check after the
// last event p ends.
func (b *leakBody) write(p []byte) error {
	cut := -1
	if b.events {
		cut = lastEventEnd(b.last, p)
	}
	b.last = p[len(p)-1]
	if cut < 0 {
		_, err := b.s.Write(p)
		return err
	}
	if _, err := b.s.Write(p[:cut]); err != nil {
		return err
	}
	if err := b.s.Cut(); err != nil {
		return err
	}
	if cut < len(p) {
		_, err := b.s.Write(p[cut:])
		return err
	}
	return nil
}

// lastEventEnd returns the offset in p just after the last blank line
// that ends a server-sent event (the line break before it may end the
// previous read, whose last byte was last), or -1.
func lastEventEnd(last byte, p []byte) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != '\n' {
			continue
		}
		prev := last
		if i > 0 {
			prev = p[i-1]
		}
		if prev == '\n' {
			return i + 1
		}
		if prev == '\r' && i >= 2 && p[i-2] == '\n' {
			return i + 1
		}
	}
	return -1
}

func (b *leakBody) Close() error { return b.src.Close() }

// leakPolicy is the action for each hit of the call: the key's own
// leak action when it has one, else the configured policy (nil: each
// kind's default).
func (g *Gateway) leakPolicy(c *call) func(leak.Hit) leak.Action {
	if c.leakOverride != "" {
		a := c.leakOverride
		return func(leak.Hit) leak.Action { return a }
	}
	return g.opts.Leaks.Action
}

// leakRules lists the rules of hits once each, in order.
func leakRules(hits []leak.Hit) string {
	var rules []string
	for _, h := range hits {
		if !slices.Contains(rules, h.Rule) {
			rules = append(rules, h.Rule)
		}
	}
	return strings.Join(rules, ",")
}

// leakValues lists the vault records whose values were found, once each:
// names, never values.
func leakValues(hits []leak.Hit) string {
	var names []string
	for _, h := range hits {
		if h.Name != "" && !slices.Contains(names, h.Name) {
			names = append(names, h.Name)
		}
	}
	return strings.Join(names, ",")
}

// describeLeaks says what was found, for the caller: the rules and kinds,
// never the value or which vault record it is.
func describeLeaks(hits []leak.Hit) string {
	var parts []string
	for _, h := range hits {
		var d string
		switch h.Kind {
		case leak.KindVault:
			d = "a value held in keygate's vault"
		case leak.KindKeygate:
			d = "a keygate credential (rule " + h.Rule + ")"
		default:
			d = "a credential of format " + h.Rule
		}
		if !slices.Contains(parts, d) {
			parts = append(parts, d)
		}
	}
	return strings.Join(parts, "; ")
}
