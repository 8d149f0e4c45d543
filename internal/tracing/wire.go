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

// The append functions below write protobuf to the end of b and return
// it, like protowire's: b stays a local (in registers) through a span's
// hundred-odd appends, where a field of a heap object would be written,
// under a GC write barrier, at each one. A nested message is written in
// place after one byte reserved for its length (begin), moved along
// when the length needs more (end: only messages of 128 bytes or more,
// spans rather than their attributes).

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendVarint(b []byte, field int, v uint64) []byte {
	return binary.AppendUvarint(appendTag(b, field, wireVarint), v)
}

// appendVarintNonZero writes v unless it is 0, as proto3 leaves
// defaults out.
func appendVarintNonZero(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendVarint(b, field, v)
}

func appendFixed64(b []byte, field int, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(appendTag(b, field, wireFixed64), v)
}

func appendFixed64NonZero(b []byte, field int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendFixed64(b, field, v)
}

func appendFixed32(b []byte, field int, v uint32) []byte {
	return binary.LittleEndian.AppendUint32(appendTag(b, field, wireFixed32), v)
}

// appendString writes a string field, even an empty one (a oneof
// member's presence is its value).
func appendString(b []byte, field int, s string) []byte {
	b = binary.AppendUvarint(appendTag(b, field, wireBytes), uint64(len(s)))
	return append(b, s...)
}

// appendStringNonEmpty writes a string field unless it is empty.
func appendStringNonEmpty(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, field, s)
}

// appendBytesNonEmpty writes a bytes field unless it is empty.
func appendBytesNonEmpty(b []byte, field int, p []byte) []byte {
	if len(p) == 0 {
		return b
	}
	b = binary.AppendUvarint(appendTag(b, field, wireBytes), uint64(len(p)))
	return append(b, p...)
}

// begin opens a nested message in field, returning b and where the
// message's contents start; end closes it.
func begin(b []byte, field int) ([]byte, int) {
	b = append(appendTag(b, field, wireBytes), 0)
	return b, len(b)
}

// end writes the length of the message begun at start, returning b and
// where its contents now start.
func end(b []byte, start int) ([]byte, int) {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b, start
	}
	var lenBuf [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(lenBuf[:], uint64(n))
	b = append(b, lenBuf[:k-1]...) // room for the longer length
	copy(b[start-1+k:], b[start:start+n])
	copy(b[start-1:], lenBuf[:k])
	return b, start - 1 + k
}

// endMsg is end for a message whose position is not needed after.
func endMsg(b []byte, start int) []byte {
	b, _ = end(b, start)
	return b
}

func appendKeyValue(b []byte, field int, kv attribute.KeyValue) []byte {
	b, m := begin(b, field)
	b = appendStringNonEmpty(b, fKVKey, string(kv.Key))
	b, v := begin(b, fKVValue)
	b = appendAnyValue(b, kv.Value)
	b = endMsg(b, v)
	return endMsg(b, m)
}

func appendKeyValues(b []byte, field int, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKeyValue(b, field, kv)
	}
	return b
}

func appendSet(b []byte, field int, set *attribute.Set) []byte {
	for it := set.Iter(); it.Next(); {
		b = appendKeyValue(b, field, it.Attribute())
	}
	return b
}

// appendAnyValue writes the fields of an AnyValue (inside it, not the
// message itself), as the SDK's exporter maps attribute values.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		x := uint64(0)
		if v.AsBool() {
			x = 1
		}
		return appendVarint(b, fAnyBool, x)
	case attribute.INT64:
		return appendVarint(b, fAnyInt, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return appendFixed64(b, fAnyDouble, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		return appendString(b, fAnyString, v.AsString())
	case attribute.BYTESLICE:
		p := v.AsByteSlice()
		b = binary.AppendUvarint(appendTag(b, fAnyBytes, wireBytes), uint64(len(p)))
		return append(b, p...)
	case attribute.BOOLSLICE:
		b, a := begin(b, fAnyArray)
		for _, x := range v.AsBoolSlice() {
			var m int
			b, m = begin(b, fArrayValues)
			b = appendAnyValue(b, attribute.BoolValue(x))
			b = endMsg(b, m)
		}
		return endMsg(b, a)
	case attribute.INT64SLICE:
		b, a := begin(b, fAnyArray)
		for _, x := range v.AsInt64Slice() {
			var m int
			b, m = begin(b, fArrayValues)
			b = appendVarint(b, fAnyInt, uint64(x))
			b = endMsg(b, m)
		}
		return endMsg(b, a)
	case attribute.FLOAT64SLICE:
		b, a := begin(b, fAnyArray)
		for _, x := range v.AsFloat64Slice() {
			var m int
			b, m = begin(b, fArrayValues)
			b = appendFixed64(b, fAnyDouble, math.Float64bits(x))
			b = endMsg(b, m)
		}
		return endMsg(b, a)
	case attribute.STRINGSLICE:
		b, a := begin(b, fAnyArray)
		for _, x := range v.AsStringSlice() {
			var m int
			b, m = begin(b, fArrayValues)
			b = appendString(b, fAnyString, x)
			b = endMsg(b, m)
		}
		return endMsg(b, a)
	case attribute.SLICE:
		b, a := begin(b, fAnyArray)
		for _, x := range v.AsSlice() {
			var m int
			b, m = begin(b, fArrayValues)
			b = appendAnyValue(b, x)
			b = endMsg(b, m)
		}
		return endMsg(b, a)
	case attribute.MAP:
		b, a := begin(b, fAnyKVList)
		b = appendKeyValues(b, fKVListValues, v.AsMap())
		return endMsg(b, a)
	case attribute.EMPTY:
		return b
	}
	return appendString(b, fAnyString, "INVALID")
}

// encoder writes ExportTraceServiceRequests, keeping what one export
// works out about its spans for the next.
type encoder struct {
	groups []group // the resource and scope of each group of spans
	of     []int   // each span's group, an index of groups
}

// group is one resource and instrumentation scope spans share.
type group struct {
	res   *resource.Resource
	scope instrumentation.Scope
}

// export appends to b an ExportTraceServiceRequest holding spans,
// grouped by resource and instrumentation scope in the order they first
// appear, and appends to bodies where the contents of each of its
// ResourceSpans lie in b.
func (e *encoder) export(b []byte, spans []sdktrace.ReadOnlySpan, bodies [][2]int) ([]byte, [][2]int) {
	e.groups, e.of = e.groups[:0], e.of[:0]
	for _, s := range spans {
		gi := -1
		if s != nil {
			g := group{s.Resource(), s.InstrumentationScope()}
			for i := range e.groups {
				if sameResource(e.groups[i].res, g.res) && e.groups[i].scope == g.scope {
					gi = i
					break
				}
			}
			if gi < 0 {
				gi = len(e.groups)
				e.groups = append(e.groups, g)
			}
		}
		e.of = append(e.of, gi)
	}
	for i, g := range e.groups {
		first := true // the first group of its resource writes the resource
		for _, h := range e.groups[:i] {
			if sameResource(h.res, g.res) {
				first = false
				break
			}
		}
		if !first {
			continue
		}
		var rs int
		b, rs = begin(b, fExportResourceSpans)
		if g.res != nil {
			var r int
			b, r = begin(b, fRSResource)
			b = appendSet(b, fResourceAttrs, g.res.Set())
			b = endMsg(b, r)
		}
		for j := i; j < len(e.groups); j++ {
			if sameResource(e.groups[j].res, g.res) {
				b = e.appendScopeSpans(b, spans, j)
			}
		}
		if g.res != nil {
			b = appendStringNonEmpty(b, fRSSchemaURL, g.res.SchemaURL())
		}
		n := len(b) - rs
		b, rs = end(b, rs)
		bodies = append(bodies, [2]int{rs, rs + n})
	}
	clear(e.groups) // let go of the resources
	return b, bodies
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

// appendScopeSpans writes the ScopeSpans of the spans of group gi.
func (e *encoder) appendScopeSpans(b []byte, spans []sdktrace.ReadOnlySpan, gi int) []byte {
	scope := &e.groups[gi].scope
	b, ss := begin(b, fRSScopeSpans)
	b, sc := begin(b, fSSScope)
	b = appendStringNonEmpty(b, fScopeName, scope.Name)
	b = appendStringNonEmpty(b, fScopeVersion, scope.Version)
	b = appendSet(b, fScopeAttrs, &scope.Attributes)
	b = endMsg(b, sc)
	for i, s := range spans {
		if e.of[i] == gi {
			b = appendSpan(b, s)
		}
	}
	b = appendStringNonEmpty(b, fSSSchemaURL, scope.SchemaURL)
	return endMsg(b, ss)
}

// appendSpan writes one Span.
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	b, m := begin(b, fSSSpans)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytesNonEmpty(b, fSpanTraceID, tid[:])
	b = appendBytesNonEmpty(b, fSpanSpanID, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = appendStringNonEmpty(b, fSpanTraceState, ts.String())
	}
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = appendBytesNonEmpty(b, fSpanParentSpanID, psid[:])
	}
	b = appendStringNonEmpty(b, fSpanName, s.Name())
	b = appendVarintNonZero(b, fSpanKind, uint64(spanKind(s.SpanKind())))
	b = appendFixed64NonZero(b, fSpanStart, unixNano(s.StartTime()))
	b = appendFixed64NonZero(b, fSpanEnd, unixNano(s.EndTime()))
	b = appendKeyValues(b, fSpanAttrs, s.Attributes())
	b = appendVarintNonZero(b, fSpanDroppedAttrs, clampUint32(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		var em int
		b, em = begin(b, fSpanEvents)
		b = appendFixed64NonZero(b, fEventTime, unixNano(ev.Time))
		b = appendStringNonEmpty(b, fEventName, ev.Name)
		b = appendKeyValues(b, fEventAttrs, ev.Attributes)
		b = appendVarintNonZero(b, fEventDroppedAttrs, clampUint32(ev.DroppedAttributeCount))
		b = endMsg(b, em)
	}
	b = appendVarintNonZero(b, fSpanDroppedEvent, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		var lm int
		b, lm = begin(b, fSpanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendBytesNonEmpty(b, fLinkTraceID, ltid[:])
		b = appendBytesNonEmpty(b, fLinkSpanID, lsid[:])
		if ts := l.SpanContext.TraceState(); ts.Len() > 0 {
			b = appendStringNonEmpty(b, fLinkTraceState, ts.String())
		}
		b = appendKeyValues(b, fLinkAttrs, l.Attributes)
		b = appendVarintNonZero(b, fLinkDroppedAttrs, clampUint32(l.DroppedAttributeCount))
		b = appendFixed32(b, fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		b = endMsg(b, lm)
	}
	b = appendVarintNonZero(b, fSpanDroppedLinks, clampUint32(s.DroppedLinks()))
	b, st := begin(b, fSpanStatus) // always present, as the SDK's exporter writes it
	status := s.Status()
	b = appendStringNonEmpty(b, fStatusMessage, status.Description)
	b = appendVarintNonZero(b, fStatusCode, uint64(statusCode(status.Code)))
	b = endMsg(b, st)
	b = appendFixed32(b, fSpanFlags, spanFlags(sc.TraceFlags(), parent))
	return endMsg(b, m)
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
