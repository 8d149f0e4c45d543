package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// bodies is an OTLP/HTTP endpoint that keeps the requests it is sent.
type bodies struct {
	mu  sync.Mutex
	got []*coltracepb.ExportTraceServiceRequest
	err error
}

func (b *bodies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.err = err
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.got = append(b.got, &req)
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// sampleSpans are spans with every kind of field the encoder writes:
// each attribute type, events, links, a remote parent with trace state,
// an error status, dropped counts, two scopes and strings long enough to
// need multi-byte lengths.
func sampleSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("keygate"), semconv.ServiceVersion("test"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeCountLimit: 40, EventCountLimit: 3, LinkCountLimit: 2, AttributePerEventCountLimit: 4, AttributePerLinkCountLimit: 4, AttributeValueLengthLimit: -1}))
	defer tp.Shutdown(context.Background())

	ts, _ := trace.ParseTraceState("vendor=abc,other=1")
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	long := strings.Repeat("x", 20000)
	tr := tp.Tracer("github.com/keygate/keygate/internal/gateway", trace.WithInstrumentationVersion("1.2.3"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "v")), trace.WithSchemaURL("https://opentelemetry.io/schemas/1.40.0"))
	ctx, server := tr.Start(ctx, "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindServer), trace.WithLinks(
		trace.Link{SpanContext: remote, Attributes: []attribute.KeyValue{attribute.Int("link.n", 1)}},
		trace.Link{SpanContext: remote}, trace.Link{SpanContext: remote},
	))
	server.SetAttributes(
		attribute.String("s", "value"), attribute.String("empty", ""), attribute.String("long", long),
		attribute.Bool("t", true), attribute.Bool("f", false),
		attribute.Int64("i", -42), attribute.Int64("zero", 0), attribute.Float64("d", 0.000123), attribute.Float64("dz", 0),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, -2, 300}),
		attribute.Float64Slice("ds", []float64{1.5, -0.25}), attribute.StringSlice("ss", []string{"a", "", long[:200]}),
	)
	for i := range 5 {
		server.AddEvent("keygate.step", trace.WithAttributes(attribute.Int("n", i), attribute.String("keygate.denial.reason", "rate_limited")))
	}
	server.AddEvent("bare")
	_, client := tr.Start(ctx, "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindClient))
	client.SetStatus(codes.Error, "502")
	client.End()
	other := tp.Tracer("other")
	_, internal := other.Start(context.Background(), "internal", trace.WithSpanKind(trace.SpanKindInternal))
	internal.SetStatus(codes.Ok, "")
	internal.End()
	for _, k := range []trace.SpanKind{trace.SpanKindProducer, trace.SpanKindConsumer} {
		_, sp := tr.Start(ctx, "queue", trace.WithSpanKind(k))
		sp.End()
	}
	server.End()
	return rec.Ended()
}

// TestWireMatchesSDK: the request the exporter sends decodes to the very
// message the SDK's own OTLP exporter sends for the same spans.
func TestWireMatchesSDK(t *testing.T) {
	spans := sampleSpans(t)
	ctx := context.Background()
	var want, got *coltracepb.ExportTraceServiceRequest
	{
		var b bodies
		srv := httptest.NewServer(&b)
		sdk, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL))
		if err != nil {
			t.Fatal(err)
		}
		if err := sdk.ExportSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
		_ = sdk.Shutdown(ctx)
		srv.Close()
		if b.err != nil || len(b.got) != 1 {
			t.Fatalf("the SDK's exporter: %d requests (error %v), want 1", len(b.got), b.err)
		}
		want = b.got[0]
	}
	{
		var b bodies
		srv := httptest.NewServer(&b)
		exp, err := newExporter(ctx, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second export reuses the buffers of the first
			if err := exp.ExportSpans(ctx, spans); err != nil {
				t.Fatal(err)
			}
		}
		_ = exp.Shutdown(ctx)
		srv.Close()
		if b.err != nil || len(b.got) != 2 {
			t.Fatalf("the wire exporter: %d requests (error %v), want 2", len(b.got), b.err)
		}
		if !proto.Equal(b.got[0], b.got[1]) {
			t.Fatal("two exports of the same spans differ")
		}
		got = b.got[0]
	}
	if n := len(want.ResourceSpans[0].ScopeSpans); n != 2 {
		t.Fatalf("the sample has %d scopes, want 2", n)
	}
	// The one difference on purpose: a link's trace_state, which OTLP
	// carries and the SDK's exporter leaves out.
	for _, rs := range got.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				for _, l := range sp.Links {
					if l.TraceState != "vendor=abc,other=1" {
						t.Errorf("link trace_state = %q, want the linked context's", l.TraceState)
					}
					l.TraceState = ""
				}
			}
		}
	}
	// The SDK groups scopes through a map: order them alike.
	for _, r := range []*coltracepb.ExportTraceServiceRequest{want, got} {
		for _, rs := range r.ResourceSpans {
			ss := rs.ScopeSpans
			if len(ss) == 2 && ss[0].Scope.Name > ss[1].Scope.Name {
				ss[0], ss[1] = ss[1], ss[0]
			}
		}
	}
	if !proto.Equal(want, got) {
		t.Fatalf("the encoded request differs from the SDK's:\n got %v\nwant %v", trim(got), trim(want))
	}
}

// trim shortens a request's text for a failure message.
func trim(m proto.Message) string {
	s := strings.ReplaceAll(prototext.Format(m), strings.Repeat("x", 200), "x…")
	if len(s) > 6000 {
		s = s[:6000] + "…"
	}
	return s
}

// BenchmarkExport sends one batch of 2,048 spans shaped like a traced
// request's two (a server span with 25 attributes, a client span with
// 9) to a collector in this process, encoded by the SDK's exporter and
// by the wire exporter, without and with gzip, and in the SDK's default
// batches of 512, and the encoding alone: the export's cost per span is
// ns/op / 2048.
func BenchmarkExport(b *testing.B) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("keygate"))))
	tr := tp.Tracer("github.com/keygate/keygate/internal/gateway")
	for range 1024 {
		ctx, server := tr.Start(context.Background(), "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindServer))
		_, client := tr.Start(ctx, "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindClient))
		client.SetAttributes(attribute.String("server.address", "api.openai.com"), attribute.String("http.request.method", "POST"),
			attribute.String("keygate.provider", "openai"), attribute.String("gen_ai.operation.name", "chat"),
			attribute.String("gen_ai.provider.name", "openai"), attribute.String("gen_ai.system", "openai"),
			attribute.String("gen_ai.request.model", "gpt-4o-mini"), attribute.Int("http.response.status_code", 200))
		client.End()
		server.SetAttributes(attribute.String("http.request.method", "POST"), attribute.Int("http.response.status_code", 200),
			attribute.String("keygate.request.id", "req_5648220aa5d4_3"), attribute.String("http.route", "/v1/chat/completions"),
			attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.request.model", "gpt-4o-mini"),
			attribute.String("gen_ai.response.model", "gpt-4o-mini-2024-07-18"), attribute.String("keygate.key.id", "key_7f3a9c"),
			attribute.String("keygate.provider", "openai"), attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.system", "openai"), attribute.String("keygate.decision", "allow"),
			attribute.Int64("gen_ai.usage.input_tokens", 24), attribute.Int64("gen_ai.usage.output_tokens", 18),
			attribute.Float64("keygate.cost.usd", 0.0000144), attribute.Float64("keygate.overhead_seconds", 0.000231),
			attribute.Float64("keygate.route.duration_seconds", 0.0000023), attribute.Float64("keygate.admission.duration_seconds", 0.0000013),
			attribute.Float64("keygate.audit.duration_seconds", 0.0000074))
		server.End()
	}
	spans := rec.Ended()
	b.Run("encode-only", func(b *testing.B) {
		var e encoder
		var buf []byte
		var bodies [][2]int
		b.ReportAllocs()
		for b.Loop() {
			buf, bodies = e.export(buf[:0], spans, bodies[:0])
		}
		b.SetBytes(int64(len(buf)))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		exp  func() (sdktrace.SpanExporter, error)
	}{
		{"sdk", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL))
		}},
		{"sdk+gzip", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
		{"wire", func() (sdktrace.SpanExporter, error) {
			return newExporter(ctx, srv.URL)
		}},
		{"wire+gzip", func() (sdktrace.SpanExporter, error) {
			return newWireExporter(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL), otlptracehttp.WithCompression(otlptracehttp.GzipCompression)))
		}},
		{"wire-batches-of-512", func() (sdktrace.SpanExporter, error) {
			return newExporter(ctx, srv.URL)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			exp, err := tc.exp()
			if err != nil {
				b.Fatal(err)
			}
			defer exp.Shutdown(ctx)
			batch := len(spans)
			if strings.HasSuffix(tc.name, "-512") {
				batch = 512 // the SDK's default batch: four exports for the same spans
			}
			b.ReportAllocs()
			for b.Loop() {
				for i := 0; i < len(spans); i += batch {
					if err := exp.ExportSpans(ctx, spans[i:i+batch]); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// grpcCollector is an OTLP/gRPC trace service that keeps the requests
// it is sent.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu  sync.Mutex
	got []*coltracepb.ExportTraceServiceRequest
}

func (c *grpcCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestWireOverGRPC: over OTLP/gRPC too, the collector receives the
// spans the SDK's exporter would send.
func TestWireOverGRPC(t *testing.T) {
	spans := sampleSpans(t)
	ctx := context.Background()
	receive := func(newExp func(addr string) (sdktrace.SpanExporter, error)) *coltracepb.ExportTraceServiceRequest {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		col := &grpcCollector{}
		srv := grpc.NewServer()
		coltracepb.RegisterTraceServiceServer(srv, col)
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
		exp, err := newExp(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := exp.ExportSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
		_ = exp.Shutdown(ctx)
		col.mu.Lock()
		defer col.mu.Unlock()
		if len(col.got) != 1 {
			t.Fatalf("the collector got %d requests, want 1", len(col.got))
		}
		return col.got[0]
	}
	want := receive(func(addr string) (sdktrace.SpanExporter, error) {
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure())
	})
	got := receive(func(addr string) (sdktrace.SpanExporter, error) { return newExporter(ctx, "grpc://"+addr) })
	for _, r := range []*coltracepb.ExportTraceServiceRequest{want, got} {
		for _, rs := range r.ResourceSpans {
			if ss := rs.ScopeSpans; len(ss) == 2 && ss[0].Scope.Name > ss[1].Scope.Name {
				ss[0], ss[1] = ss[1], ss[0]
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					for _, l := range sp.Links {
						l.TraceState = "" // carried by the wire encoder only
					}
				}
			}
		}
	}
	if !proto.Equal(want, got) {
		t.Fatalf("over gRPC the request differs from the SDK's:\n got %v\nwant %v", trim(got), trim(want))
	}
}

// TestWireKeepsSDKTransport: the SDK's client still sends the request,
// so the headers a hosted collector wants come from
// OTEL_EXPORTER_OTLP_HEADERS, and it goes as protobuf even when the
// environment asks for JSON.
func TestWireKeepsSDKTransport(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20collector-token")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	var mu sync.Mutex
	var auth, ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, ctype = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	ctx := context.Background()
	exp, err := newExporter(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	if err := exp.ExportSpans(ctx, sampleSpans(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if auth != "Bearer collector-token" || ctype != "application/x-protobuf" {
		t.Fatalf("the collector saw Authorization %q and Content-Type %q", auth, ctype)
	}
}
