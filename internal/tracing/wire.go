package tracing

import (
	"encoding/binary"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The OTLP protobuf encoding of an ExportTraceServiceRequest
// (opentelemetry/proto/collector/trace/v1), written straight from the
// SDK's spans into one buffer that is reused from export to export.
//
// The OTLP exporter of the SDK first builds the request as generated
// protobuf structs (three objects per attribute, one per span, event
// and status) and then marshals them by reflection: on a gateway that
// traces every request that was half of what tracing cost in CPU and
// most of its allocations. The bytes written here are the same message
// (TestWireMatchesSDK decodes both and compares them), but for a link's
// trace_state, which OTLP carries and the SDK's exporter leaves out.

// Field numbers of the messages written (opentelemetry-proto v1).
const (
	fExportResourceSpans = 1 // ExportTraceServiceRequest.resource_spans

	fRSResource   = 1 // ResourceSpans.resource
	fRSScopeSpans = 2 // ResourceSpans.scope_spans
	fRSSchemaURL  = 3 // ResourceSpans.schema_url

	fResourceAttrs = 1 // Resource.attributes

	fSSScope     = 1 // ScopeSpans.scope
	fSSSpans     = 2 // ScopeSpans.spans
	fSSSchemaURL = 3 // ScopeSpans.schema_url

	fScopeName    = 1 // InstrumentationScope.name
	fScopeVersion = 2 // InstrumentationScope.version
	fScopeAttrs   = 3 // InstrumentationScope.attributes

	fSpanTraceID      = 1
	fSpanSpanID       = 2
	fSpanTraceState   = 3
	fSpanParentSpanID = 4
	fSpanName         = 5
	fSpanKind         = 6
	fSpanStart        = 7
	fSpanEnd          = 8
	fSpanAttrs        = 9
	fSpanDroppedAttrs = 10
	fSpanEvents       = 11
	fSpanDroppedEvent = 12
	fSpanLinks        = 13
	fSpanDroppedLinks = 14
	fSpanStatus       = 15
	fSpanFlags        = 16

	fEventTime         = 1
	fEventName         = 2
	fEventAttrs        = 3
	fEventDroppedAttrs = 4

	fLinkTraceID      = 1
	fLinkSpanID       = 2
	fLinkTraceState   = 3
	fLinkAttrs        = 4
	fLinkDroppedAttrs = 5
	fLinkFlags        = 6

	fStatusMessage = 2
	fStatusCode    = 3

	fKVKey   = 1 // KeyValue.key
	fKVValue = 2 // KeyValue.value

	fAnyString = 1 // AnyValue.string_value
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4
	fAnyArray  = 5
	fAnyKVList = 6
	fAnyBytes  = 7

	fArrayValues  = 1 // ArrayValue.values and KeyValueList.values
	fKVListValues = 1
)

// Wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// Span flags: the low byte is the W3C trace flags; these say whether
// the parent is known to be remote, and whether it is.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// encoder appends protobuf to b. A nested message is written in place
// after one byte reserved for its length, moved along when the length
// needs more (only messages of 128 bytes or more: spans, not their
// attributes).
type encoder struct {
	b []byte
}

func (e *encoder) tag(field, wire int) {
	e.b = binary.AppendUvarint(e.b, uint64(field)<<3|uint64(wire))
}

func (e *encoder) varint(field int, v uint64) {
	e.tag(field, wireVarint)
	e.b = binary.AppendUvarint(e.b, v)
}

// varintNonZero writes v unless it is 0, as proto3 leaves defaults out.
func (e *encoder) varintNonZero(field int, v uint64) {
	if v != 0 {
		e.varint(field, v)
	}
}

func (e *encoder) fixed64(field int, v uint64) {
	e.tag(field, wireFixed64)
	e.b = binary.LittleEndian.AppendUint64(e.b, v)
}

func (e *encoder) fixed32(field int, v uint32) {
	e.tag(field, wireFixed32)
	e.b = binary.LittleEndian.AppendUint32(e.b, v)
}

// str writes a string field, left out when empty.
func (e *encoder) str(field int, s string) {
	if s == "" {
		return
	}
	e.tag(field, wireBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

// bytes writes a bytes field, left out when empty.
func (e *encoder) bytes(field int, p []byte) {
	if len(p) == 0 {
		return
	}
	e.tag(field, wireBytes)
	e.b = binary.AppendUvarint(e.b, uint64(len(p)))
	e.b = append(e.b, p...)
}

// begin opens a nested message in field; end closes it.
func (e *encoder) begin(field int) int {
	e.tag(field, wireBytes)
	e.b = append(e.b, 0)
	return len(e.b)
}

// end writes the length of the message begun at start and returns
// where its contents now start.
func (e *encoder) end(start int) int {
	n := len(e.b) - start
	if n < 0x80 {
		e.b[start-1] = byte(n)
		return start
	}
	var lenBuf [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(lenBuf[:], uint64(n))
	e.b = append(e.b, lenBuf[:k-1]...) // room for the longer length
	copy(e.b[start-1+k:], e.b[start:start+n])
	copy(e.b[start-1:], lenBuf[:k])
	return start - 1 + k
}

func (e *encoder) keyValues(field int, kvs []attribute.KeyValue) {
	for _, kv := range kvs {
		m := e.begin(field)
		e.str(fKVKey, string(kv.Key))
		v := e.begin(fKVValue)
		e.anyValue(kv.Value)
		e.end(v)
		e.end(m)
	}
}

func (e *encoder) iterKeyValues(field int, it attribute.Iterator) {
	for it.Next() {
		kv := it.Attribute()
		m := e.begin(field)
		e.str(fKVKey, string(kv.Key))
		v := e.begin(fKVValue)
		e.anyValue(kv.Value)
		e.end(v)
		e.end(m)
	}
}

// anyValue writes the fields of an AnyValue (inside it, not the message
// itself), as the SDK's exporter maps attribute values.
func (e *encoder) anyValue(v attribute.Value) {
	switch v.Type() {
	case attribute.BOOL:
		b := uint64(0)
		if v.AsBool() {
			b = 1
		}
		e.varint(fAnyBool, b)
	case attribute.INT64:
		e.varint(fAnyInt, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		e.fixed64(fAnyDouble, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		// A oneof member is written even when empty.
		s := v.AsString()
		e.tag(fAnyString, wireBytes)
		e.b = binary.AppendUvarint(e.b, uint64(len(s)))
		e.b = append(e.b, s...)
	case attribute.BYTESLICE:
		p := v.AsByteSlice()
		e.tag(fAnyBytes, wireBytes)
		e.b = binary.AppendUvarint(e.b, uint64(len(p)))
		e.b = append(e.b, p...)
	case attribute.BOOLSLICE:
		a := e.begin(fAnyArray)
		for _, x := range v.AsBoolSlice() {
			m := e.begin(fArrayValues)
			e.anyValue(attribute.BoolValue(x))
			e.end(m)
		}
		e.end(a)
	case attribute.INT64SLICE:
		a := e.begin(fAnyArray)
		for _, x := range v.AsInt64Slice() {
			m := e.begin(fArrayValues)
			e.varint(fAnyInt, uint64(x))
			e.end(m)
		}
		e.end(a)
	case attribute.FLOAT64SLICE:
		a := e.begin(fAnyArray)
		for _, x := range v.AsFloat64Slice() {
			m := e.begin(fArrayValues)
			e.fixed64(fAnyDouble, math.Float64bits(x))
			e.end(m)
		}
		e.end(a)
	case attribute.STRINGSLICE:
		a := e.begin(fAnyArray)
		for _, x := range v.AsStringSlice() {
			m := e.begin(fArrayValues)
			e.anyValue(attribute.StringValue(x))
			e.end(m)
		}
		e.end(a)
	case attribute.SLICE:
		a := e.begin(fAnyArray)
		for _, x := range v.AsSlice() {
			m := e.begin(fArrayValues)
			e.anyValue(x)
			e.end(m)
		}
		e.end(a)
	case attribute.MAP:
		a := e.begin(fAnyKVList)
		e.keyValues(fKVListValues, v.AsMap())
		e.end(a)
	case attribute.EMPTY:
	default:
		e.anyValue(attribute.StringValue("INVALID"))
	}
}

// export writes an ExportTraceServiceRequest holding spans, grouped by
// resource and instrumentation scope in the order they first appear,
// and returns where the contents of each of its ResourceSpans lie in b.
func (e *encoder) export(spans []sdktrace.ReadOnlySpan, bodies [][2]int) [][2]int {
	type group struct {
		res   *resource.Resource
		scope instrumentation.Scope
	}
	var small [4]group // a provider has one resource, keygate one tracer
	groups := small[:0]
	for _, s := range spans {
		if s == nil {
			continue
		}
		g := group{s.Resource(), s.InstrumentationScope()}
		seen := false
		for _, h := range groups {
			if sameResource(h.res, g.res) && h.scope == g.scope {
				seen = true
				break
			}
		}
		if !seen {
			groups = append(groups, g)
		}
	}
	for i, g := range groups {
		if i > 0 && sameResource(groups[i-1].res, g.res) {
			continue // written with the first group of its resource
		}
		rs := e.begin(fExportResourceSpans)
		if g.res != nil {
			r := e.begin(fRSResource)
			e.iterKeyValues(fResourceAttrs, g.res.Iter())
			e.end(r)
		}
		for _, h := range groups[i:] {
			if !sameResource(h.res, g.res) {
				continue
			}
			e.scopeSpans(spans, h.res, h.scope)
		}
		if g.res != nil {
			e.str(fRSSchemaURL, g.res.SchemaURL())
		}
		end := len(e.b)
		start := e.end(rs)
		bodies = append(bodies, [2]int{start, start + end - rs})
	}
	return bodies
}

// sameResource reports whether two spans' resources are one.
func sameResource(a, b *resource.Resource) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Equivalent() == b.Equivalent()
}

// scopeSpans writes the ScopeSpans of the spans of one resource and scope.
func (e *encoder) scopeSpans(spans []sdktrace.ReadOnlySpan, res *resource.Resource, scope instrumentation.Scope) {
	ss := e.begin(fRSScopeSpans)
	sc := e.begin(fSSScope)
	e.str(fScopeName, scope.Name)
	e.str(fScopeVersion, scope.Version)
	e.iterKeyValues(fScopeAttrs, scope.Attributes.Iter())
	e.end(sc)
	for _, s := range spans {
		if s != nil && sameResource(s.Resource(), res) && s.InstrumentationScope() == scope {
			e.span(s)
		}
	}
	e.str(fSSSchemaURL, scope.SchemaURL)
	e.end(ss)
}

// span writes one Span.
func (e *encoder) span(s sdktrace.ReadOnlySpan) {
	m := e.begin(fSSSpans)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	e.bytes(fSpanTraceID, tid[:])
	e.bytes(fSpanSpanID, sid[:])
	e.str(fSpanTraceState, sc.TraceState().String())
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		e.bytes(fSpanParentSpanID, psid[:])
	}
	e.str(fSpanName, s.Name())
	e.varintNonZero(fSpanKind, uint64(spanKind(s.SpanKind())))
	e.fixed64NonZero(fSpanStart, unixNano(s.StartTime()))
	e.fixed64NonZero(fSpanEnd, unixNano(s.EndTime()))
	e.keyValues(fSpanAttrs, s.Attributes())
	e.varintNonZero(fSpanDroppedAttrs, clampUint32(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		em := e.begin(fSpanEvents)
		e.fixed64NonZero(fEventTime, unixNano(ev.Time))
		e.str(fEventName, ev.Name)
		e.keyValues(fEventAttrs, ev.Attributes)
		e.varintNonZero(fEventDroppedAttrs, clampUint32(ev.DroppedAttributeCount))
		e.end(em)
	}
	e.varintNonZero(fSpanDroppedEvent, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		lm := e.begin(fSpanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		e.bytes(fLinkTraceID, ltid[:])
		e.bytes(fLinkSpanID, lsid[:])
		e.str(fLinkTraceState, l.SpanContext.TraceState().String())
		e.keyValues(fLinkAttrs, l.Attributes)
		e.varintNonZero(fLinkDroppedAttrs, clampUint32(l.DroppedAttributeCount))
		e.fixed32(fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		e.end(lm)
	}
	e.varintNonZero(fSpanDroppedLinks, clampUint32(s.DroppedLinks()))
	st := e.begin(fSpanStatus) // always present, as the SDK's exporter writes it
	status := s.Status()
	e.str(fStatusMessage, status.Description)
	e.varintNonZero(fStatusCode, uint64(statusCode(status.Code)))
	e.end(st)
	e.fixed32(fSpanFlags, spanFlags(sc.TraceFlags(), parent))
	e.end(m)
}

func (e *encoder) fixed64NonZero(field int, v uint64) {
	if v != 0 {
		e.fixed64(field, v)
	}
}

// spanFlags are the W3C flags and whether the parent is remote.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagHasIsRemote
	if parent.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

// spanKind is OTLP's Span.SpanKind of a trace.SpanKind.
func spanKind(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer:
		return int(k) // the same numbers, 1 to 5
	}
	return 0
}

// statusCode is OTLP's Status.StatusCode of a codes.Code.
func statusCode(c codes.Code) int {
	switch c {
	case codes.Ok:
		return 1
	case codes.Error:
		return 2
	}
	return 0
}

func unixNano(t time.Time) uint64 { return uint64(max(0, t.UnixNano())) }

func clampUint32(v int) uint64 { return uint64(min(max(v, 0), math.MaxUint32)) }
