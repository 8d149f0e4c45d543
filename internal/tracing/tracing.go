// Package tracing exports keygate's OpenTelemetry traces over OTLP to a
// collector. Tracing is off unless an endpoint is configured; off, the
// gateway holds no tracer and its request path does no tracing work at
// all. The spans themselves are made by the gateway (internal/gateway);
// this package builds the provider: a parent-based ratio sampler (a
// caller's sampled trace is always kept), a batch span processor sized
// for large exports, and an exporter that encodes spans to OTLP protobuf
// itself (wire.go) and sends them through the SDK's OTLP client
// (exporter.go).
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Options configures the exporter.
type Options struct {
	// Endpoint is the collector's OTLP URL: http(s)://host:4318 for
	// OTLP/HTTP (the path /v1/traces is added unless one is given), or
	// grpc://host:4317 (plain) and grpcs://host:4317 (TLS) for OTLP/gRPC.
	// Empty turns tracing off.
	Endpoint string
	// SampleRatio is the fraction of new traces kept (0 < r <= 1); a
	// trace the caller sampled is always kept. 0 means 1.
	SampleRatio float64
	// ServiceName names keygate in the collector ("keygate" when empty).
	ServiceName string
	// Version is keygate's version, reported as service.version.
	Version string
}

// Provider is a running trace pipeline: the tracer the gateway uses and
// the propagator that reads and writes W3C trace context.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// New builds the exporter for o.Endpoint and a provider that batches
// spans to it. Nothing is sent until a span ends; a collector that is
// down only costs dropped spans, never a refused request.
func New(ctx context.Context, o Options) (*Provider, error) {
	exp, err := newExporter(ctx, o.Endpoint)
	if err != nil {
		return nil, err
	}
	name := o.ServiceName
	if name == "" {
		name = "keygate"
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name), semconv.ServiceVersion(o.Version))
	ratio := o.SampleRatio
	if ratio <= 0 || ratio > 1 {
		ratio = 1
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp,
			// Large batches: one export (one request to the collector, one
			// encoding pass) per 2,048 spans or 2 seconds, whichever comes
			// first, with room to queue 16,384 spans (a few seconds of a
			// busy gateway) while one is in flight before any is dropped.
			sdktrace.WithBatchTimeout(2*time.Second),
			sdktrace.WithMaxExportBatchSize(2048),
			sdktrace.WithMaxQueueSize(16384),
			sdktrace.WithExportTimeout(10*time.Second),
		),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return &Provider{tp: tp}, nil
}

// NewWithExporter builds a provider over a given exporter, sending each
// span as it ends; for tests and tools that collect spans themselves.
func NewWithExporter(exp sdktrace.SpanExporter) *Provider {
	return &Provider{tp: sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))}
}

// Tracer is the tracer the gateway makes its spans with.
func (p *Provider) Tracer() trace.Tracer {
	return p.tp.Tracer("github.com/keygate/keygate/internal/gateway")
}

// Propagator reads a caller's W3C traceparent and tracestate and writes
// them on upstream requests.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// ForceFlush sends every span that has ended.
func (p *Provider) ForceFlush(ctx context.Context) error { return p.tp.ForceFlush(ctx) }

// Shutdown sends what is pending and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error { return p.tp.Shutdown(ctx) }

// newExporter picks the SDK's OTLP/HTTP or OTLP/gRPC client by the
// endpoint's scheme and encodes spans for it (exporter.go). Headers (a
// vendor's API key) come from OTEL_EXPORTER_OTLP_HEADERS, which both
// clients read, so no secret sits in keygate's config file.
func newExporter(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tracing: endpoint %q is not a URL; use http://collector:4318 (OTLP/HTTP) or grpc://collector:4317 (OTLP/gRPC)", endpoint)
	}
	switch u.Scheme {
	case "http", "https":
		// Protobuf always (OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not
		// followed): the spans arrive encoded.
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithEncoding(otlptracehttp.EncodingProtobuf)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if p := strings.TrimSuffix(u.Path, "/"); p != "" {
			opts = append(opts, otlptracehttp.WithURLPath(p))
		}
		return newWireExporter(ctx, otlptracehttp.NewClient(opts...))
	case "grpc", "grpcs":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host)}
		if u.Scheme == "grpc" {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return newWireExporter(ctx, otlptracegrpc.NewClient(opts...))
	}
	return nil, fmt.Errorf("tracing: endpoint scheme %q is not supported; use http, https (OTLP/HTTP), grpc or grpcs (OTLP/gRPC)", u.Scheme)
}
