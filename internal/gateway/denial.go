package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/usage"
)

// Denial is an answer keygate gives itself instead of the upstream's: a
// refused request (before anything goes upstream) or an upstream that
// could not be used. Steps return one instead of writing a response; the
// edge renders it once, in the caller's dialect (refuse). Code is stable,
// for programs and the audit trail; Message tells the caller what to do
// and never carries a secret or an internal address.
type Denial struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when positive, is sent as Retry-After in whole seconds,
	// rounded up.
	RetryAfter time.Duration
	// Header holds further headers to send with it, such as the figures
	// of the limit that refused the request.
	Header http.Header
}

// Error returns the message, so a Denial can travel as an error.
func (d *Denial) Error() string { return d.Message }

// deny builds a Denial.
func deny(status int, code, msg string) *Denial {
	return &Denial{Status: status, Code: code, Message: msg}
}

// denyf builds a Denial whose message is formatted.
func denyf(status int, code, format string, args ...any) *Denial {
	return &Denial{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// refuse writes d as the call's answer, in the caller's dialect, and
// records that keygate refused the call.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, d *Denial) {
	c := callFrom(r.Context())
	c.denied = d.Code
	if t := wsTurnFrom(r.Context()); t != nil {
		t.denial = d // the connection closes after the error event
	}
	if c.keyID != "" && g.opts.Limits.Usage != nil {
		g.opts.Limits.Usage.Record(usage.Entry{KeyID: c.keyID, Model: c.model, At: g.opts.Now(), Denied: true})
	}
	h := w.Header()
	for name, vals := range d.Header {
		h[name] = vals
	}
	if d.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.RetryAfter.Seconds())), 10))
	}
	dl := c.dialect
	if dl == nil {
		dl = g.dialectFor(r)
	}
	dl.WriteError(w, d.Status, d.Code, d.Message)
}

// dialectFor guesses the caller's dialect where the path does not fix it.
func (g *Gateway) dialectFor(r *http.Request) provider.Dialect {
	switch r.URL.Path {
	case "/v1/messages", "/v1/messages/count_tokens":
		return g.anthropic
	}
	if provider.IsGeminiPath(r.URL.Path) {
		return g.gemini
	}
	return g.listDialect(r)
}
