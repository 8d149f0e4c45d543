package tracing

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// wireExporter is the span exporter: spans encoded by encoder (wire.go)
// and sent by the SDK's own OTLP client, so the transport (OTLP/HTTP or
// OTLP/gRPC, TLS, OTEL_EXPORTER_OTLP_* headers and certificates,
// compression, retries, partial success) is the SDK's, unchanged.
//
// An otlptrace.Client takes the request's ResourceSpans as generated
// structs. Each is handed over empty, holding the bytes of its fields as
// protobuf unknown fields, which protobuf marshals back out verbatim:
// the client writes exactly the bytes encoded here, and builds no
// per-attribute objects and runs no reflection over them.
type wireExporter struct {
	client otlptrace.Client

	mu      sync.Mutex // one export at a time: they share the buffers below
	enc     encoder
	buf     []byte
	bodies  [][2]int
	structs []*tracepb.ResourceSpans
	stopped bool
}

// newWireExporter starts client and exports through it.
func newWireExporter(ctx context.Context, client otlptrace.Client) (sdktrace.SpanExporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, fmt.Errorf("tracing: start the OTLP client: %w; check tracing.endpoint and the OTEL_EXPORTER_OTLP_* variables", err)
	}
	return &wireExporter{client: client}, nil
}

// ExportSpans implements sdktrace.SpanExporter.
func (x *wireExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopped {
		return nil
	}
	x.buf, x.bodies = x.enc.export(x.buf[:0], spans, x.bodies[:0])
	for len(x.structs) < len(x.bodies) {
		x.structs = append(x.structs, &tracepb.ResourceSpans{})
	}
	rss := x.structs[:len(x.bodies)]
	for i, b := range x.bodies {
		rss[i].ProtoReflect().SetUnknown(protoreflect.RawFields(x.buf[b[0]:b[1]]))
	}
	err := x.client.UploadTraces(ctx, rss)
	for _, rs := range rss {
		rs.ProtoReflect().SetUnknown(nil) // let go of the buffer
	}
	if cap(x.buf) > 16<<20 {
		x.buf = nil // an outsized batch: do not keep its buffer
	}
	if err != nil {
		return fmt.Errorf("tracing: export %d spans to the collector: %w; they are dropped, requests are not affected; check that the collector at tracing.endpoint is up", len(spans), err)
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (x *wireExporter) Shutdown(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopped {
		return nil
	}
	x.stopped = true
	return x.client.Stop(ctx)
}
