// Package web holds keygate's shared HTTP plumbing: middleware that does one
// job each (request ids, panic recovery, access logs), the client address
// rule, JSON helpers and TLS listeners. Both the gateway and the admin API
// build their handler chains from these pieces.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

// Middleware wraps a handler with one concern.
type Middleware func(http.Handler) http.Handler

// Chain applies middleware so that the first listed runs first (outermost).
func Chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

type ctxKey int

const requestIDKey ctxKey = iota

// RequestIDs makes request ids: a random per-process prefix and a counter,
// unique without a system call per request. Incoming ids are never trusted.
type RequestIDs struct {
	prefix string
	n      atomic.Uint64
}

// NewRequestIDs starts a request id sequence with a fresh random prefix.
func NewRequestIDs() *RequestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &RequestIDs{prefix: "req_" + hex.EncodeToString(b[:]) + "_"}
}

// Next returns a new request id.
func (g *RequestIDs) Next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 36)
}

// Middleware stores a new id in the request context and the X-Request-Id response header.
func (g *RequestIDs) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := g.Next()
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// RequestID returns the id stored by RequestIDs.Middleware, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// Recover turns a panic into a 500 written by fail and a log line with the
// request id; the stack goes to the log only, never to the client.
// http.ErrAbortHandler (an aborted stream) is passed on untouched.
func Recover(log *slog.Logger, fail func(http.ResponseWriter, *http.Request)) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("panic while serving a request", "request_id", RequestID(r.Context()),
						"method", r.Method, "path", r.URL.Path, "panic_type", typeName(v))
					fail(w, r)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// typeName describes a panic value without printing it: the value could hold
// request data, and the log must stay free of secrets.
func typeName(v any) string {
	if err, ok := v.(runtime.Error); ok {
		return "runtime error: " + err.Error()
	}
	return fmt.Sprintf("%T", v)
}

// StatusWriter records the status code and bytes written, and keeps
// flushing and hijacking reachable through Unwrap (http.ResponseController).
type StatusWriter struct {
	http.ResponseWriter
	Status int
	Bytes  int64
}

// WriteHeader records the status.
func (s *StatusWriter) WriteHeader(code int) {
	if s.Status == 0 {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write records the byte count.
func (s *StatusWriter) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.Bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client at once (server-sent events).
func (s *StatusWriter) Flush() {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// AccessLog writes one line per request after it ends: method, route
// pattern, status, bytes, duration and request id. Never headers or bodies.
// fields, when not nil, adds request facts that the handler recorded.
func AccessLog(log *slog.Logger, msg string, fields func(*http.Request) []slog.Attr) Middleware {
	return AccessLogRedacting(log, msg, fields, nil)
}

// AccessLogRedacting is AccessLog with each logged path passed through
// redact first, for routes whose paths name things that must not reach a
// log in clear. A nil redact logs paths as they are.
func AccessLogRedacting(log *slog.Logger, msg string, fields func(*http.Request) []slog.Attr, redact func(path string) string) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &StatusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			attrs := []slog.Attr{
				slog.String("request_id", RequestID(r.Context())),
				slog.String("method", r.Method),
				slog.String("path", logPath(r.URL.Path, redact)),
				slog.Int("status", sw.Status),
				slog.Int64("bytes", sw.Bytes),
				slog.Duration("duration", time.Since(start)),
			}
			if fields != nil {
				attrs = append(attrs, fields(r)...)
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, msg, attrs...)
		})
	}
}

func logPath(p string, redact func(string) string) string {
	if redact == nil {
		return p
	}
	return redact(p)
}
