package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/usage"
)

// maxMeteredJSON bounds how much of a plain JSON answer is kept to read its
// usage; larger answers (big embedding batches) are settled on the
// estimate.
const maxMeteredJSON = 4 << 20

// jsonBufs lends metered bodies their buffers.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// meteredBody reads usage from a response as the proxy copies it to the
// client, and settles the request when the proxy closes it: after the last
// byte, or when the client went away mid-stream.
type meteredBody struct {
	io.ReadCloser
	g       *Gateway
	c       *call
	stream  *usage.StreamMeter
	bedrock *usage.BedrockStreamMeter // a Bedrock event stream's
	buf     *[]byte
	dialect string
	over    bool
	once    sync.Once
}

func newMeteredBody(g *Gateway, c *call, resp *http.Response) *meteredBody {
	m := &meteredBody{ReadCloser: resp.Body, g: g, c: c, dialect: c.wireDialect().Name()}
	if c.countOnly {
		return m // a count, or a response read again: no tokens used
	}
	switch ct := resp.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "text/event-stream"):
		m.stream = usage.NewStreamMeter(m.dialect)
	case m.dialect == usage.DialectBedrock && strings.HasPrefix(ct, "application/vnd.amazon.eventstream"):
		m.bedrock = usage.NewBedrockStreamMeter()
	default:
		m.buf = jsonBufs.Get().(*[]byte)
	}
	return m
}

// Read passes the body through, watching it.
func (m *meteredBody) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	if n > 0 {
		switch {
		case m.stream != nil:
			_, _ = m.stream.Write(p[:n])
		case m.bedrock != nil:
			_, _ = m.bedrock.Write(p[:n])
		case !m.over && m.buf != nil:
			if len(*m.buf)+n > maxMeteredJSON {
				m.over = true
			} else {
				*m.buf = append(*m.buf, p[:n]...)
			}
		}
	}
	return n, err
}

// Close closes the upstream body and settles the request once.
func (m *meteredBody) Close() error {
	err := m.ReadCloser.Close()
	m.once.Do(func() {
		var u usage.Usage
		switch {
		case m.stream != nil:
			u = m.stream.Usage()
		case m.bedrock != nil:
			u = m.bedrock.Usage()
		case m.buf != nil:
			switch {
			case m.over:
			case m.dialect == usage.DialectBedrock:
				u, _ = usage.FromBedrockJSON(*m.buf)
			default:
				u, _ = usage.FromJSON(m.dialect, *m.buf)
				if m.c.traced {
					m.c.respModel = responseModel(*m.buf, m.c.sentModel)
				}
			}
			if cap(*m.buf) <= 1<<20 {
				*m.buf = (*m.buf)[:0]
				jsonBufs.Put(m.buf)
			}
			m.buf = nil
		}
		m.c.used = u
	})
	return err
}

// settle is the response half's last step, once the answer has ended
// (completed, failed or cut off): the call's admission is charged what it
// used, the usage the answer reported, what streamed of one cut off, or
// nothing when no answer came; its usage is recorded and metered. It runs
// once per call that was forwarded.
func (g *Gateway) settle(c *call) {
	c.settled.Do(func() { g.settleOnce(c, c.used) })
}

func (g *Gateway) settleOnce(c *call, u usage.Usage) {
	in, out := tokenSum(u.InputTokens, u.CacheWriteTokens), tokenSum(u.OutputTokens)
	if !u.Complete {
		// A stream cut off before its usage: settle what was streamed.
		if in == 0 {
			in = c.est.in
		}
		if est := (u.StreamedBytes + 3) / 4; out < est {
			out = est
		}
	}
	var money int64
	if c.est.priced {
		money = c.est.price.Cost(in, out)
	}
	c.microUSD = money
	c.metered, c.meteredIn, c.meteredOut = true, in, out
	if a := c.adm; a != nil {
		a.once.Do(func() {
			// Every admission is settled, even one whose charge needs no
			// correction: the Redis limiter keeps a pending record of each
			// reservation until its settlement.
			var actual []int64
			if n := len(a.plan.Checks); n <= len(a.actual) {
				actual = a.actual[:n:n]
			} else {
				actual = make([]int64, n)
			}
			for i, k := range a.plan.Kinds {
				actual[i] = cost(k, in, out, money)
			}
			if a.lim == g.opts.Limits.Local && a.early == nil {
				g.charge(a, actual, c.keyID)
				return
			}
			// A shared limiter costs a round trip: the client need not wait
			// for it.
			go g.charge(a, actual, c.keyID)
		})
	}
	if g.opts.Metrics != nil && c.upstream != nil {
		g.opts.Metrics.Usage(c.upstream.Name, c.keyID, in, out, money)
	}
	if g.opts.Limits.Usage != nil && c.keyID != "" {
		g.opts.Limits.Usage.Record(usage.Entry{KeyID: c.keyID, Model: c.model, At: g.opts.Now(), InputTokens: in, OutputTokens: out, MicroUSD: money})
	}
}

// charge settles an admission at its actual costs, and releases the
// concurrency slots it took before its body was read.
func (g *Gateway) charge(a *admission, actual []int64, keyID string) {
	if a.early != nil {
		g.settleEarly(a.early)
	}
	if a.lim == nil {
		return // everything it held was early
	}
	ctx := context.Background()
	if a.lim != g.opts.Limits.Local {
		// Only a shared limiter waits on the network.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := a.lim.Settle(ctx, a.res, actual); err != nil && !errors.Is(err, context.Canceled) {
		g.opts.Log.Error("could not settle a request's limits; its reservation stands", "key_id", keyID, "err", err)
	}
}
