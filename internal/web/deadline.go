package web

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// BodyDeadline bounds how long a client may take to send a request's body:
// from when the handler starts, the whole body must arrive within d, or
// reads of it fail with ErrBodyTimeout and the connection is closed once
// the handler answers. net/http's ReadHeaderTimeout covers the headers;
// its ReadTimeout would also cover the body but keeps running while a long
// response streams, so it would cut off model streams. This sets the
// connection's read deadline for the body alone and lifts it once the body
// has been read to its end. A body the handler leaves unread keeps the
// deadline, so the server's own draining of it after the handler cannot
// hang on a stalled client either.
//
// It must wrap the handler outermost, on the server's own ResponseWriter
// (or one that unwraps to it), before anything reads the body.
func BodyDeadline(d time.Duration) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
				next.ServeHTTP(w, r)
				return
			}
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
				// Not supported by this connection: fall back to a timer
				// that fails reads past the deadline.
				b := &timedBody{ReadCloser: r.Body, deadline: time.Now().Add(d)}
				r.Body = b
				next.ServeHTTP(w, r)
				return
			}
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			next.ServeHTTP(w, r)
		})
	}
}

// ErrBodyTimeout is what reading a request body past its deadline returns.
var ErrBodyTimeout = errors.New("the client did not send the whole request body in time")

// IsBodyTimeout reports whether err is a request body read that ran past
// its deadline.
func IsBodyTimeout(err error) bool {
	if errors.Is(err, ErrBodyTimeout) || errors.Is(err, http.ErrHandlerTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// deadlineBody lifts the connection's read deadline once the body has been
// read to its end, so the deadline never touches what follows (the server
// watches the connection for the client going away while it streams).
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.lift()
	case err != nil && IsBodyTimeout(err):
		err = ErrBodyTimeout
	}
	return n, err
}

// lift clears the read deadline, once.
func (b *deadlineBody) lift() {
	b.once.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
}

// timedBody fails reads that start after its deadline. It cannot interrupt
// a read already blocked, so it is only the fallback.
type timedBody struct {
	io.ReadCloser
	deadline time.Time
}

func (b *timedBody) Read(p []byte) (int, error) {
	if time.Now().After(b.deadline) {
		return 0, ErrBodyTimeout
	}
	return b.ReadCloser.Read(p)
}
