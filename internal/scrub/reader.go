package scrub

import (
	"io"
	"net/http"
)

// Reader removes a Set's needles from a stream as it is read. It holds back
// only a suffix that is the start of a needle (at most MaxHold bytes) and
// releases everything before it in the same Read, so a stream of
// server-sent events is not delayed unless an event ends inside what could
// be a credential. Each needle is replaced by a mask of the same length,
// so the stream keeps its length and a Content-Length stays true. Build it
// with Set.Reader or Set.Body.
type Reader struct {
	src  io.Reader
	set  *Set
	held []byte // a needle's start, waiting for more bytes; cap maxLen
	pend []byte // decided bytes not yet returned (short reads only)
	buf  []byte // where short reads are decided, allocated on the first one
	sc   scratch
	err  error // the source's error, returned once held and pend are out

	// Room for held and the first matches inside the Reader itself, so a
	// Reader for a typical credential is one allocation.
	heldArr  [inlineHeld]byte
	matchArr [8]match
}

// inlineHeld is the longest needle whose held bytes fit inside a Reader;
// longer ones get a buffer of their own.
const inlineHeld = 384

// directMin is the smallest buffer, in multiples of the longest needle,
// that Read decides bytes in directly; smaller buffers go through an
// internal one.
const directMin = 2

// shortBuf is the size of the internal buffer for short reads.
const shortBuf = 4096

// maxEmptyReads bounds how many reads of a source returning nothing Read
// tries before giving up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// Reader returns a Reader that removes s's needles from what r yields.
func (s *Set) Reader(r io.Reader) *Reader {
	rd := &Reader{src: r, set: s}
	if n := max(s.maxLen, 1); n <= inlineHeld {
		rd.held = rd.heldArr[:0:n]
	} else {
		rd.held = make([]byte, 0, n)
	}
	rd.sc.ms = rd.matchArr[:0]
	return rd
}

// Body wraps an HTTP body so its needles are removed as it is read; Close
// closes body. For an empty Set it returns body itself.
func (s *Set) Body(body io.ReadCloser) io.ReadCloser {
	if s.Empty() || body == nil || body == http.NoBody {
		return body
	}
	return s.Reader(body)
}

// Read reads decided bytes into p. A needle that ends in p is already
// replaced; a needle's start at the end of what the source has sent so far
// waits for the next bytes. A short final fragment that could have begun a
// needle is released at io.EOF, as no needle can complete. After any other
// error from the source, a held fragment is dropped, never released.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.pend) > 0 {
		n := copy(p, r.pend)
		r.pend = r.pend[n:]
		if len(r.pend) == 0 && r.err != nil {
			return n, r.err
		}
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.set.Empty() {
		n, err := r.src.Read(p)
		if err != nil {
			r.err = err
		}
		return n, err
	}
	if len(p) >= directMin*r.set.maxLen {
		return r.fill(p)
	}
	if r.buf == nil {
		r.buf = make([]byte, max(shortBuf, directMin*r.set.maxLen))
	}
	n, err := r.fill(r.buf)
	r.pend = r.buf[:n]
	if err != nil && n > 0 {
		r.err, err = err, nil // return the error once pend is out
	}
	k := copy(p, r.pend)
	r.pend = r.pend[k:]
	if len(r.pend) == 0 && r.err != nil {
		err = r.err
	}
	return k, err
}

// fill puts held bytes at the start of buf, reads the source after them
// and replaces the needles found; it returns how many bytes at the start of
// buf are decided and keeps the rest held. It reads until some byte is
// decided or the source fails.
func (r *Reader) fill(buf []byte) (int, error) {
	for empty := 0; ; {
		h := copy(buf, r.held)
		m, err := r.src.Read(buf[h:])
		n := h + m
		final := err == io.EOF
		ms, hold := r.set.scan(buf[:n], final, &r.sc)
		for _, x := range ms {
			copy(buf[x.start:x.end], r.set.mask(x.end-x.start))
		}
		if err != nil {
			r.held = r.held[:0] // at EOF nothing is held; after a failure the fragment is dropped
			r.err = err
			return hold, err
		}
		r.held = append(r.held[:0], buf[hold:n]...)
		if hold > 0 {
			return hold, nil
		}
		if m == 0 {
			if empty++; empty >= maxEmptyReads {
				r.err = io.ErrNoProgress
				return 0, r.err
			}
		}
	}
}

// Close closes the source when it is an io.Closer.
func (r *Reader) Close() error {
	if c, ok := r.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
