package gateway_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/metrics"
	"github.com/keygate/keygate/internal/pricing"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/tracing"
)

// otlpReceiver is an OTLP/HTTP trace endpoint, as a collector serves
// it: POST /v1/traces with a protobuf ExportTraceServiceRequest.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []*commonpb.KeyValue
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces in protobuf", http.StatusBadRequest)
		return
	}
	b, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		o.res = rs.GetResource().GetAttributes()
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (o *otlpReceiver) take() []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.spans
	o.spans = nil
	return s
}

// attrs flattens a span's attributes to strings.
func attrs(kv []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, a := range kv {
		v := a.GetValue()
		switch v.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[a.Key] = v.GetStringValue()
		case *commonpb.AnyValue_IntValue:
			m[a.Key] = strconv.FormatInt(v.GetIntValue(), 10)
		case *commonpb.AnyValue_DoubleValue:
			m[a.Key] = strconv.FormatFloat(v.GetDoubleValue(), 'f', -1, 64)
		default:
			m[a.Key] = v.String()
		}
	}
	return m
}

type okSink struct{}

func (okSink) Write(context.Context, []audit.Event) error { return nil }
func (okSink) Close() error                               { return nil }

// TestTracesExportedOverOTLP: with tracing on, a model call yields one
// trace, continued from the caller's traceparent and carried upstream,
// exported over OTLP/HTTP to a collector: a server span named and
// attributed after the GenAI conventions with keygate's key, decision
// and cost and the durations of the routing, admission and audit
// steps, and a client span for the upstream attempt. No secret is in any span. A refused call is traced
// with its reason. The overhead is in the header and the histogram.
func TestTracesExportedOverOTLP(t *testing.T) {
	rcv := &otlpReceiver{}
	collector := httptest.NewServer(rcv)
	t.Cleanup(collector.Close)
	tp, err := tracing.New(context.Background(), tracing.Options{Endpoint: collector.URL, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	upKey := upstreamKey(t, "openai")
	fp := fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: upKey})
	t.Cleanup(fp.Close)
	var seenMu sync.Mutex
	var seenParent string
	upSrv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenMu.Lock()
		seenParent = r.Header.Get("Traceparent")
		seenMu.Unlock()
		fp.ServeHTTP(w, r)
	}))
	aw, err := audit.NewWriter(audit.NewChain(audit.Event{}), []audit.Sink{okSink{}}, audit.WriterOptions{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aw.Close(context.Background()) })
	met := metrics.New(metrics.Options{})
	prices, err := pricing.NewTable(nil)
	if err != nil {
		t.Fatal(err)
	}

	k := newKeys(t)
	key := k.issue("traced", nil)
	g := newGatewayWith(t, k.verifier(), nil, func(o *gateway.Options) {
		o.Tracer, o.Audit, o.Metrics, o.OverheadHeader = tp.Tracer(), aw, met, true
		o.Limits.Prices = prices
	}, upstreamAt("openai", "openai", upSrv.URL+"/v1", upKey, "gpt-*"))

	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key,
		"Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	if a.status != http.StatusOK {
		t.Fatalf("traced call: %d %s", a.status, a.body)
	}
	oh := a.header.Get("X-Keygate-Overhead")
	if ms, err := strconv.ParseFloat(strings.TrimSuffix(oh, "ms"), 64); err != nil || !strings.HasSuffix(oh, "ms") || ms <= 0 {
		t.Fatalf("X-Keygate-Overhead = %q, want a positive number of milliseconds", oh)
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.take()
	byName := map[string]*tracepb.Span{}
	for _, s := range spans {
		if got := hex.EncodeToString(s.TraceId); got != callerTrace {
			t.Errorf("span %q is in trace %s, not the caller's %s", s.Name, got, callerTrace)
		}
		for _, v := range attrs(s.Attributes) {
			if strings.Contains(v, key) || strings.Contains(v, upKey) || strings.Contains(v, key[:20]) {
				t.Fatalf("span %q holds a credential: %q", s.Name, v)
			}
		}
		byName[s.Name] = s
	}
	root := byName["chat gpt-4o-mini"]
	if root == nil || root.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Fatalf("no server span named %q among %d spans: %v", "chat gpt-4o-mini", len(spans), names(spans))
	}
	if got := hex.EncodeToString(root.ParentSpanId); got != callerSpan {
		t.Errorf("the request span's parent is %s, want the caller's span %s", got, callerSpan)
	}
	ra := attrs(root.Attributes)
	for k, want := range map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
		"gen_ai.request.model": "gpt-4o-mini", "keygate.key.id": "key_traced", "keygate.decision": "allow",
		"http.response.status_code": "200", "http.route": "/v1/chat/completions", "keygate.provider": "openai",
	} {
		if ra[k] != want {
			t.Errorf("request span %s = %q, want %q", k, ra[k], want)
		}
	}
	for _, k := range []string{"gen_ai.response.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "keygate.cost.usd", "keygate.overhead_seconds"} {
		if ra[k] == "" || ra[k] == "0" {
			t.Errorf("request span has no %s: %v", k, ra)
		}
	}
	// Two spans: the request and its one upstream attempt. The steps
	// are the request span's attributes, each its duration.
	if len(spans) != 2 {
		t.Errorf("want 2 spans (the request and its attempt), got %v", names(spans))
	}
	for _, step := range []string{"route", "admission", "audit"} {
		k := "keygate." + step + ".duration_seconds"
		if d, err := strconv.ParseFloat(ra[k], 64); err != nil || d <= 0 || d > 10 {
			t.Errorf("request span %s = %q, want the step's duration", k, ra[k])
		}
	}
	var attempt *tracepb.Span
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_CLIENT {
			attempt = s
		}
	}
	if attempt == nil || attempt.Name != "chat gpt-4o-mini" || string(attempt.ParentSpanId) != string(root.SpanId) {
		t.Fatalf("want one upstream attempt span under the request span, got %v", names(spans))
	}
	if aa := attrs(attempt.Attributes); aa["gen_ai.request.model"] != "gpt-4o-mini" || aa["http.response.status_code"] != "200" || aa["server.address"] != "127.0.0.1" {
		t.Errorf("attempt span attributes: %v", aa)
	}
	seenMu.Lock()
	want := "00-" + callerTrace + "-" + hex.EncodeToString(attempt.SpanId) + "-01"
	if seenParent != want {
		t.Errorf("upstream received traceparent %q, want %q (the attempt's span)", seenParent, want)
	}
	seenMu.Unlock()
	if res := attrs(rcv.res); res["service.name"] != "keygate" || res["service.version"] != "test" {
		t.Errorf("resource: %v", res)
	}

	// A refused call: traced with its reason, never sent upstream.
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer kg_live_notarealkeyatall"); a.status != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", a.status)
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var denied map[string]string
	for _, s := range rcv.take() {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			denied = attrs(s.Attributes)
		}
		if s.Kind == tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("a refused call has an upstream attempt span")
		}
	}
	if denied["keygate.decision"] != "deny" || denied["keygate.denial.reason"] != "invalid_api_key" || denied["http.response.status_code"] != "401" {
		t.Errorf("refused call's span: %v", denied)
	}

	// The overhead histogram counted the forwarded call only.
	rec := httptest.NewRecorder()
	met.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "keygate_overhead_seconds_count 1\n") {
		t.Errorf("keygate_overhead_seconds does not count the one forwarded call:\n%s", grepLines(rec.Body.String(), "keygate_overhead"))
	}

	// A call refused at routing: the span says why, and timed the route
	// step but no admission.
	scoped := k.issue("scoped", func(k *store.Key) { k.AllowModels = []string{"gpt-4o"} })
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+scoped); a.status != http.StatusForbidden {
		t.Fatalf("a model the key may not use: %d %s", a.status, a.body)
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var refused map[string]string
	for _, s := range rcv.take() {
		if s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			refused = attrs(s.Attributes)
		}
	}
	if refused["keygate.denial.reason"] == "" || refused["keygate.route.duration_seconds"] == "" || refused["keygate.admission.duration_seconds"] != "" {
		t.Errorf("a call refused at routing: %v", refused)
	}
}

func names(spans []*tracepb.Span) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.Name+"("+s.Kind.String()+")")
	}
	return n
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
