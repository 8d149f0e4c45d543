package gateway

import (
	"errors"
	"io"
	"net/http"

	"github.com/keygate/keygate/internal/web"
)

// readBody reads the request body up to the configured limit, within the
// call's share of the memory budget. It refuses with 413 before reading
// when the declared length is already too large.
func (g *Gateway) readBody(r *http.Request, c *call) ([]byte, *Denial) {
	limit := g.opts.MaxBodyBytes
	tooLarge := func() ([]byte, *Denial) {
		return nil, denyf(http.StatusRequestEntityTooLarge, "request_too_large",
			"request body is larger than keygate's limit of %d bytes (max_body_bytes)", limit)
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	// The body's share of the memory budget, before a byte is read: its
	// declared length, or the most it may be, three times over where it may
	// be translated (memory.go).
	declared := r.ContentLength
	if declared < 0 {
		declared = limit
	}
	copies := int64(1)
	if translatedPath(r.URL.Path) != "" {
		copies = 3
	}
	if err := g.hold(r.Context(), c, copies*declared); err != nil {
		return nil, busyDenial()
	}
	c.translated = copies == 3
	size := r.ContentLength
	if size < 0 {
		size = 4096
	}
	buf := make([]byte, 0, size+1)
	lr := io.LimitReader(r.Body, limit+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return tooLarge()
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && web.IsBodyTimeout(err) {
			den := deny(http.StatusRequestTimeout, "request_timeout", "the request body did not arrive in time (client.read_body_timeout)")
			den.Header = http.Header{"Connection": {"close"}}
			return nil, den
		}
		if err != nil {
			return nil, deny(http.StatusBadRequest, "invalid_body", "could not read the request body")
		}
	}
	if r.ContentLength < 0 {
		g.giveBack(c, copies*(declared-int64(len(buf))))
	}
	if len(buf) == 0 && c.service == nil { // a passthrough call may have no body
		return nil, deny(http.StatusBadRequest, "empty_body", "request body is empty; send a JSON object")
	}
	return buf, nil
}
