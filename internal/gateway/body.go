package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/keygate/keygate/internal/web"
)

// readBody reads the request body up to the configured limit. It answers 413
// before reading when the declared length is already too large.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := g.opts.MaxBodyBytes
	tooLarge := func() ([]byte, bool) {
		g.deny(w, r, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("request body is larger than keygate's limit of %d bytes (max_body_bytes)", limit))
		return nil, false
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	// The body's share of the memory budget, before a byte is read: its
	// declared length, or the most it may be, three times over where it may
	// be translated (memory.go).
	c := callFrom(r.Context())
	declared := r.ContentLength
	if declared < 0 {
		declared = limit
	}
	copies := int64(1)
	if translatedPath(r.URL.Path) != "" {
		copies = 3
	}
	if err := g.hold(r.Context(), c, copies*declared); err != nil {
		g.denyBusy(w, r)
		return nil, false
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
			w.Header().Set("Connection", "close")
			g.deny(w, r, http.StatusRequestTimeout, "request_timeout", "the request body did not arrive in time (client.read_body_timeout)")
			return nil, false
		}
		if err != nil {
			g.deny(w, r, http.StatusBadRequest, "invalid_body", "could not read the request body")
			return nil, false
		}
	}
	if r.ContentLength < 0 {
		g.giveBack(c, copies*(declared-int64(len(buf))))
	}
	if len(buf) == 0 && c.service == nil { // a passthrough call may have no body
		g.deny(w, r, http.StatusBadRequest, "empty_body", "request body is empty; send a JSON object")
		return nil, false
	}
	return buf, true
}
