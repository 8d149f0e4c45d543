package scrub

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxCodings bounds how many stacked content codings Decode undoes.
const maxCodings = 3

// EncodingError reports a response body keygate cannot decode, and so
// cannot search for its credential. The gateway must not pass such a body
// on: answer 502 with Error() as the message. Encoding and Coding are the
// upstream's text: Set.Response scrubs them before returning the error;
// scrub them (Set.String) when DecodeResponse is called directly.
type EncodingError struct {
	Encoding string // the Content-Encoding values, as the upstream sent them
	Coding   string // the coding refused, or "" when the stack is refused as a whole
	Reason   string // why it cannot be decoded
}

// maxShown bounds how much of the upstream's text an EncodingError repeats.
const maxShown = 64

// Error says what the upstream sent and why keygate refuses it.
func (e *EncodingError) Error() string {
	what := e.Reason
	if e.Coding != "" {
		what = fmt.Sprintf("keygate does not decode %q", shorten(e.Coding))
	}
	return fmt.Sprintf("the upstream answered with Content-Encoding %q, which keygate cannot check for its credential: %s; keygate asks upstreams for gzip or no encoding, so the upstream should honour Accept-Encoding",
		shorten(e.Encoding), what)
}

// shorten cuts s to maxShown bytes.
func shorten(s string) string {
	if len(s) > maxShown {
		return s[:maxShown] + "..."
	}
	return s
}

// Decode returns body with the content codings of h (Content-Encoding)
// undone, and whether there were any: gzip and x-gzip, deflate (zlib-wrapped
// or raw, as browsers accept) and identity, stacked up to three deep
// ("gzip, gzip"). Any other coding (br, zstd, compress) yields an
// *EncodingError and body is left alone. Decoding starts at the first Read,
// so Decode never blocks; a corrupt body fails that Read. The returned body
// closes body.
func Decode(h http.Header, body io.ReadCloser) (io.ReadCloser, bool, error) {
	codings, err := contentCodings(h)
	if err != nil || len(codings) == 0 {
		return body, false, err
	}
	var r io.Reader = body
	for i := len(codings) - 1; i >= 0; i-- { // the last coding listed was applied last
		r = &decoder{coding: codings[i], src: r}
	}
	return readCloser{Reader: r, Closer: body}, true, nil
}

// DecodeResponse decodes resp.Body with Decode and fixes the headers that
// described the encoded bytes: Content-Encoding and Content-Length are
// removed (the decoded length is not known ahead), ContentLength becomes
// -1, Uncompressed true, and digests of the encoded bytes are dropped. A
// partial (206) response cannot be decoded and yields an *EncodingError.
// On error resp is unchanged.
func DecodeResponse(resp *http.Response) error {
	codings, err := contentCodings(resp.Header)
	if err != nil || len(codings) == 0 {
		return err
	}
	if resp.StatusCode == http.StatusPartialContent {
		return &EncodingError{Encoding: strings.Join(resp.Header.Values("Content-Encoding"), ", "), Reason: "a part of an encoded body (206 Partial Content) cannot be decoded"}
	}
	body, _, err := Decode(resp.Header, resp.Body)
	if err != nil {
		return err
	}
	resp.Body = body
	for _, name := range []string{"Content-Encoding", "Content-Length", "Content-Md5", "Content-Digest", "Digest"} {
		resp.Header.Del(name)
	}
	resp.ContentLength = -1
	resp.Uncompressed = true
	return nil
}

// contentCodings lists the codings of h's Content-Encoding in the order
// they were applied, without identity. It refuses codings it cannot undo.
func contentCodings(h http.Header) ([]string, error) {
	vals := h.Values("Content-Encoding")
	if len(vals) == 0 {
		return nil, nil
	}
	var codings []string
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			switch c := strings.ToLower(strings.TrimSpace(tok)); c {
			case "", "identity":
			case "gzip", "x-gzip", "deflate":
				codings = append(codings, c)
			default:
				return nil, &EncodingError{Encoding: strings.Join(vals, ", "), Coding: strings.TrimSpace(tok)}
			}
		}
	}
	if len(codings) > maxCodings {
		return nil, &EncodingError{Encoding: strings.Join(vals, ", "), Reason: fmt.Sprintf("more than %d stacked codings", maxCodings)}
	}
	return codings, nil
}

// decoder undoes one content coding of src, starting at its first Read.
type decoder struct {
	coding string
	src    io.Reader
	r      io.Reader
	err    error
}

// Read decodes into p.
func (d *decoder) Read(p []byte) (int, error) {
	if d.r == nil {
		if d.err != nil {
			return 0, d.err
		}
		d.r, d.err = d.open()
		if d.r == nil {
			return 0, d.err
		}
	}
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("decode the upstream's %s body: %w", d.coding, err)
	}
	return n, err
}

// open reads the coding's header. An empty body decodes to an empty body.
func (d *decoder) open() (io.Reader, error) {
	br := bufio.NewReader(d.src)
	head, err := br.Peek(2)
	if len(head) == 0 && errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	switch d.coding {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("decode the upstream's gzip body: %w", err)
		}
		return zr, nil
	default: // deflate
		if len(head) == 2 && isZlibHeader(head[0], head[1]) {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, fmt.Errorf("decode the upstream's deflate body: %w", err)
			}
			return zr, nil
		}
		return flate.NewReader(br), nil
	}
}

// isZlibHeader reports whether cmf, flg start a zlib stream (RFC 1950):
// method 8 (deflate), a window of at most 32 KiB, and a valid check.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

// readCloser joins a reader and the closer of the body under it.
type readCloser struct {
	io.Reader
	io.Closer
}
