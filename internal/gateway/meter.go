package gateway

import (
	"io"
	"net/http"
	"strings"
	"sync"

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
	buf     *[]byte
	dialect string
	over    bool
	once    sync.Once
}

func newMeteredBody(g *Gateway, c *call, resp *http.Response) *meteredBody {
	m := &meteredBody{ReadCloser: resp.Body, g: g, c: c, dialect: c.wireDialect().Name()}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		m.stream = usage.NewStreamMeter(m.dialect)
	} else {
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
		case m.buf != nil:
			if !m.over {
				u, _ = usage.FromJSON(m.dialect, *m.buf)
			}
			if cap(*m.buf) <= 1<<20 {
				*m.buf = (*m.buf)[:0]
				jsonBufs.Put(m.buf)
			}
			m.buf = nil
		}
		m.g.finishCall(m.c, u)
	})
	return err
}
