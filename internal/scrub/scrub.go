// Package scrub removes the upstream credential keygate injected from
// everything the upstream sends back: header values, header names and
// every response body, streamed or not, success or error, whatever its
// length.
//
// # What is looked for
//
// A Set is built from the credentials that went on the wire (New, or
// ForRequest from the outgoing request). It holds every form an upstream
// may echo: the raw key; the whole header value as sent ("Bearer <key>",
// "Basic <b64>"); for Basic, "user:key"; the base64 of the key and of
// "user:key" in the standard and URL alphabets, padded and unpadded, and
// the alignment-free core of the key's base64 so it is found inside any
// longer base64 text; and each of these as url.QueryEscape, url.PathEscape
// and JSON-string escaping write it. Needles shorter than MinNeedle (8)
// bytes are dropped: they would destroy unrelated text.
//
// # How it is replaced
//
// Matching is one left-to-right pass: at the leftmost position where a
// needle starts the longest needle starting there is replaced, and the
// search goes on after it. Outside contrived sets (one needle's end being
// another's start) this equals applying bytes.ReplaceAll for each needle,
// longest first and equal lengths in byte order, which the tests use as
// their reference. In bodies a needle becomes a mask of the same length,
// "[REDACTED]" padded with '*' ("[REDACT]" for 8 or 9 bytes): a body keeps
// its length, so Content-Length stays true and ReverseProxy keeps its
// framing and flushing, and a scrubbed byte stream needs no buffering. In
// header values a needle becomes "[REDACTED]" ("REDACTED" in URL-bearing
// headers).
//
// Reader streams: it holds back only a suffix that could be the start of a
// needle (at most Set.MaxHold bytes) and releases everything before it in
// the same Read, so an SSE event ending in "\n\n" leaves at once. It
// decides bytes in the caller's buffer without copying them and does not
// allocate in steady state. In text it scans for a few rare anchor bytes
// with bytes.IndexByte (one memory-speed pass) and compares needles only
// where an anchor and the byte after it fit; in bodies dense with anchor
// bytes (base64 images, audio, embeddings) it switches to sampling one
// 4-byte gram per (shortest needle - 3) bytes against a Bloom filter of
// the needles' grams, and back when the text turns sparse.
//
// Not looked for: percent-encoding with lower-case hex digits, JSON \u
// escapes of plain letters, a credential in another letter case or cut
// short, and encodings of encodings beyond the ones listed (headers are
// also percent-decoded up to four times). These are not what an upstream
// echoing its credential by mistake writes.
//
// # Content encodings
//
// A body must be plain to be searched. keygate strips the client's
// Accept-Encoding, so Go's transport asks upstreams for gzip and decodes
// it itself; any other coding in a response was not requested. Decode and
// DecodeResponse undo gzip, x-gzip, deflate (zlib or raw) and identity,
// stacked up to three deep, with the standard library. br, zstd and every
// other coding are refused with an *EncodingError rather than decoded:
// only an upstream that ignores Accept-Encoding sends them, two new
// libraries on the data path are not worth supporting that, and refusing
// is safe where passing would not be. The gateway answers 502 with the
// error's message.
//
// # Wiring it into the gateway
//
// Keep one Cache beside the proxy (scrubs := scrub.NewCache(256)). In
// ReverseProxy.ModifyResponse, for provider calls and passthrough alike,
// first, before anything reads, meters or replaces resp.Body:
//
//	set := scrubs.ForRequest(resp.Request, key) // key: the secret.String injected
//	if err := set.Response(resp); err != nil {
//		return err // an *scrub.EncodingError
//	}
//
// resp.Request is the outgoing request, so the Set holds exactly the header
// values that went out. Response decodes the body (fixing Content-Encoding
// and Content-Length), scrubs the headers and wraps the body in a Reader
// whose Close closes the original body; it replaces reading a bounded
// prefix of error bodies. ReverseProxy hands a ModifyResponse error to the
// ErrorHandler, which should answer an *EncodingError (errors.As) with 502
// and err.Error() as the message, in the caller's dialect.
//
// Parts that parse the body and write a new one (translation, error
// normalisation) read scrubbed bytes; wrap what they produce once more
// with set.Body, as decoding and re-encoding JSON can turn an escaped form
// into a plain one. A scrubbed body keeps its length, so an error body
// echoing the key now reads "[REDACTED]****..." to its old length.
//
// Building a Set costs tens of microseconds and about 20 KiB; the Cache
// finds it again in about a microsecond (BenchmarkForRequest). ForRequest
// builds one without a cache. passthrough.ScrubLocation still removes a
// query credential's parameter by name from redirect targets; run it
// before Response, whose "REDACTED" would otherwise stand in the
// parameter's place.
package scrub

import (
	"errors"
	"net/http"
)

// Response makes resp safe to hand to a client: it decodes the body
// (DecodeResponse), removes the needles from the headers (Header) and
// wraps the body so its needles are removed as it is read (Body). It
// returns an *EncodingError, scrubbed and safe to show, and leaves resp
// untouched, when the body uses a coding keygate cannot decode. With an
// empty Set it does nothing.
func (s *Set) Response(resp *http.Response) error {
	if s.Empty() {
		return nil
	}
	if err := DecodeResponse(resp); err != nil {
		var ee *EncodingError
		if errors.As(err, &ee) { // the upstream's text may echo the key
			ee.Encoding, ee.Coding = s.String(ee.Encoding), s.String(ee.Coding)
		}
		return err
	}
	s.Header(resp.Header)
	resp.Body = s.Body(resp.Body)
	return nil
}
