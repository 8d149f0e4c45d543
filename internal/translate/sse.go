package translate

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// sseDecoder splits a server-sent event stream into events. The slices it
// returns stay valid until the next call.
type sseDecoder struct {
	br      *bufio.Reader
	line    []byte // a line longer than the read buffer, being assembled
	name    []byte
	data    []byte
	hasData bool
}

// next returns the next event's name and data. At the end of the stream it
// returns io.EOF; an event the stream did not finish with a blank line is
// still returned when its last line was complete, since some servers omit
// the final blank line.
func (d *sseDecoder) next() (name, data []byte, err error) {
	d.name = d.name[:0]
	d.data = d.data[:0]
	d.hasData = false
	for {
		line, err := d.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && d.hasData {
				return d.name, d.data, nil
			}
			return nil, nil, err
		}
		if len(line) == 0 {
			if d.hasData {
				return d.name, d.data, nil
			}
			// An event without data is not dispatched.
			d.name = d.name[:0]
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if c := bytes.IndexByte(line, ':'); c >= 0 {
			field, value = line[:c], line[c+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			d.name = append(d.name[:0], value...)
		case "data":
			if d.hasData {
				d.data = append(d.data, '\n')
			}
			d.data = append(d.data, value...)
			d.hasData = true
		}
	}
}

// readLine returns one line without its terminator. A final line without a
// terminator is dropped: the stream was cut in the middle of it.
func (d *sseDecoder) readLine() ([]byte, error) {
	d.line = d.line[:0]
	for {
		chunk, err := d.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			d.line = append(d.line, chunk...)
			continue
		}
		if err != nil {
			return nil, err
		}
		line := chunk
		if len(d.line) > 0 {
			d.line = append(d.line, chunk...)
			line = d.line
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, nil
	}
}

// eventTranslator turns one upstream event into zero or more client events
// appended to out. done reports that the client stream is complete and no
// further upstream event is to be read.
type eventTranslator interface {
	event(out, name, data []byte) (res []byte, done bool)
}

// streamReader reads upstream events on demand and hands out their
// translation.
type streamReader struct {
	upstream io.ReadCloser
	dec      sseDecoder
	t        eventTranslator
	out      []byte
	off      int
	err      error // returned once out is drained
}

func newStreamReader(upstream io.ReadCloser, t eventTranslator) *streamReader {
	return &streamReader{
		upstream: upstream,
		dec:      sseDecoder{br: bufio.NewReaderSize(upstream, 16<<10)},
		t:        t,
		out:      make([]byte, 0, 4<<10),
	}
}

// Read implements io.Reader. It reads from upstream only when every
// translated byte has been handed out, and returns as soon as one upstream
// event has produced output.
func (r *streamReader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.out, r.off = r.out[:0], 0
		name, data, err := r.dec.next()
		if err != nil {
			r.err = err
			continue
		}
		var done bool
		r.out, done = r.t.event(r.out, name, data)
		if done {
			r.err = io.EOF
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// Close closes the upstream body.
func (r *streamReader) Close() error { return r.upstream.Close() }
