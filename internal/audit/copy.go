package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// An external copy of the trail is what a file, syslog or webhook sink
// received, kept where whoever can write keygate's database cannot reach.
// It is JSON lines, each one either an event (the package documentation
// gives its schema) or a checkpoint wrapped in an object of its own:
//
//	{"checkpoint":{"v":2,"node":"node_5f0c...","seq":4000,"hash":"4b7d...","time":"2026-03-01T12:00:05.1Z","prev_seq":3000,"key_id":"1a2b3c4d5e6f7a8b","signature":"<base64>"}}
//
// The file sink writes exactly this. The webhook sink posts JSON arrays of
// such objects, so a receiver that writes each element on a line of its
// own, or each body as it came (one array per line), keeps a copy in the
// same form; both read back with ReadCopy.

// checkpointLine is a checkpoint as it travels to a sink.
type checkpointLine struct {
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// AppendCheckpointLine appends cp as an external copy holds it:
// {"checkpoint":{...}} without a newline.
func AppendCheckpointLine(b []byte, cp Checkpoint) []byte {
	j, err := json.Marshal(checkpointLine{&cp})
	if err != nil {
		panic(err) // a Checkpoint always encodes: its time comes from an event that did
	}
	return append(b, j...)
}

// maxCopyLine bounds one line of a copy: a webhook body of a full batch of
// large events fits many times over.
const maxCopyLine = 64 << 20

// Copy is an external copy of the audit trail as ReadCopy reads it: events
// and checkpoints, each once, in the order they were read.
type Copy struct {
	Events      []Event
	Checkpoints []Checkpoint

	where  []string // where each event was read, for errors
	seenEv map[eventKey]bool
	seenCP map[string]bool
}

// ReadCopy reads an external copy of the trail from r (name labels its
// errors): JSON lines of events
// and {"checkpoint":...} objects, or lines holding JSON arrays of them. A
// line that is none of these (a field the schema does not have, trailing
// bytes, a line cut short) is an error naming its number; blank lines are
// skipped. An event or checkpoint read twice (a sink may receive a batch
// again after a timeout) is kept once. ReadCopy checks the form only; the
// verification checks each event's hash and each checkpoint's signature.
func ReadCopy(r io.Reader, name string) (*Copy, error) {
	c := &Copy{}
	if err := c.read(r, name); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Copy) read(r io.Reader, name string) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if c.seenEv == nil {
		c.seenEv, c.seenCP = map[eventKey]bool{}, map[string]bool{}
	}
	var line []byte
	for n := 1; ; n++ {
		var err error
		line, err = readLine(br, line[:0])
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				if len(bytes.TrimSpace(line)) > 0 && errors.Is(err, io.EOF) {
					return fmt.Errorf("audit: %s line %d is cut short (no newline); the writer may have stopped mid-write: remove that line and verify again", name, n)
				}
			} else if perr := c.parseLine(line, fmt.Sprintf("%s line %d", name, n)); perr != nil {
				return perr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: reading %s line %d: %w", name, n, err)
		}
	}
}

// readLine appends the next line of br, newline included, to b; a line
// longer than maxCopyLine is an error.
func readLine(br *bufio.Reader, b []byte) ([]byte, error) {
	for {
		frag, err := br.ReadSlice('\n')
		if len(b)+len(frag) > maxCopyLine {
			return nil, fmt.Errorf("line is longer than %d MiB, which no keygate sink writes", maxCopyLine>>20)
		}
		b = append(b, frag...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return b, err
		}
	}
}

type eventKey struct {
	seq  uint64
	hash string
}

// parseLine reads one line: an object, or an array of objects.
func (c *Copy) parseLine(line []byte, where string) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	if line[0] != '[' {
		return c.parseObject(line, where)
	}
	var elems []json.RawMessage
	if err := strictDecode(line, &elems); err != nil {
		return fmt.Errorf("audit: %s is not a JSON array of audit events and checkpoints: %v", where, err)
	}
	for i, e := range elems {
		if err := c.parseObject(e, fmt.Sprintf("%s element %d", where, i+1)); err != nil {
			return err
		}
	}
	return nil
}

// parseObject reads one event or one {"checkpoint":...} object.
func (c *Copy) parseObject(b []byte, where string) error {
	var probe map[string]json.RawMessage
	if err := strictDecode(b, &probe); err != nil || probe == nil {
		return fmt.Errorf("audit: %s is not an audit event or checkpoint: a JSON object was expected", where)
	}
	if _, ok := probe["checkpoint"]; ok {
		var cl checkpointLine
		if err := strictDecode(b, &cl); err != nil || cl.Checkpoint == nil {
			return fmt.Errorf("audit: %s is not an audit checkpoint: %v", where, errOr(err, "it is null"))
		}
		cp := *cl.Checkpoint
		cp.Time = cp.Time.UTC()
		if k := string(AppendCheckpointLine(nil, cp)); !c.seenCP[k] {
			c.seenCP[k] = true
			c.Checkpoints = append(c.Checkpoints, cp)
		}
		return nil
	}
	var ev Event
	if err := strictDecode(b, &ev); err != nil {
		return fmt.Errorf("audit: %s is not an audit event: %v", where, err)
	}
	if k := (eventKey{ev.Seq, ev.Hash}); !c.seenEv[k] {
		c.seenEv[k] = true
		c.Events = append(c.Events, ev)
		c.where = append(c.where, where)
	}
	return nil
}

func errOr(err error, msg string) any {
	if err != nil {
		return err
	}
	return msg
}

// strictDecode decodes exactly one JSON value from b into v, refusing
// fields v does not have and anything after the value.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// check confirms that every event of the copy matches its own hash: a copy
// that does not cannot vouch for anything.
func (c *Copy) check() error {
	for i, ev := range c.Events {
		if h, err := ev.ComputeHash(); err != nil || h != ev.Hash {
			where := "an event"
			if i < len(c.where) {
				where = c.where[i]
			}
			return fmt.Errorf("audit: the copy's event at seq %d (%s) does not match its own hash: the copy was altered or damaged and cannot vouch for the trail; use another copy", ev.Seq, where)
		}
	}
	return nil
}
