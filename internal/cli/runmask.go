package cli

import (
	"bytes"
	"io"
	"slices"
	"sync"
	"time"
)

// maskText replaces a secret in a command's output.
const maskText = "<concealed by keygate>"

// minMaskLen is the shortest value masked: masking a two-letter value
// would mangle ordinary output and hide nothing worth hiding.
const minMaskLen = 4

// maskIdle is how long the end of a write that could be the start of a
// secret is held back waiting for the rest, before it is written as is.
// Long enough for a write split by a pipe, short enough that a prompt
// never appears to hang.
const maskIdle = 50 * time.Millisecond

// masker is an io.Writer that replaces every secret it knows in what
// passes through it, as it streams: a secret split across two writes is
// still caught, because a tail that could begin one is held back until
// the next write, or maskIdle, decides.
type masker struct {
	set   *maskSet
	mu    sync.Mutex
	out   io.Writer
	held  []byte
	timer *time.Timer
	err   error
}

// maskSet is the secrets a run masks, shared by its output streams; a
// credential made during the run is added as it is made.
type maskSet struct {
	mu      sync.Mutex
	secrets [][]byte // longest first, so a secret inside another is not half-masked
}

// add masks s from now on; values shorter than minMaskLen are not masked.
func (ms *maskSet) add(s string) {
	if len(s) < minMaskLen {
		return
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if slices.ContainsFunc(ms.secrets, func(b []byte) bool { return string(b) == s }) {
		return
	}
	// A new slice each time: writers hold the old one without the lock.
	next := append(slices.Clip(ms.secrets), []byte(s))
	slices.SortStableFunc(next, func(a, b []byte) int { return len(b) - len(a) })
	ms.secrets = next
}

// list returns the secrets, longest first.
func (ms *maskSet) list() [][]byte {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.secrets
}

// empty reports whether there is nothing to mask.
func (ms *maskSet) empty() bool { return len(ms.list()) == 0 }

// newMasker writes to out with the secrets of set masked.
func newMasker(out io.Writer, set *maskSet) *masker {
	return &masker{out: out, set: set}
}

// Write masks p (with what was held back) and writes what is decided.
// It reports len(p) written unless the underlying writer failed.
func (m *masker) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return 0, m.err
	}
	if m.timer != nil {
		m.timer.Stop()
	}
	secrets := m.set.list()
	buf := append(m.held, p...)
	m.held = nil
	var out bytes.Buffer
	out.Grow(len(buf))
	i := 0
scan:
	for i < len(buf) {
		rest := buf[i:]
		for _, s := range secrets {
			if bytes.HasPrefix(rest, s) {
				out.WriteString(maskText)
				i += len(s)
				continue scan
			}
		}
		for _, s := range secrets {
			if len(rest) < len(s) && bytes.HasPrefix(s, rest) {
				m.held = append([]byte(nil), rest...)
				break scan
			}
		}
		out.WriteByte(buf[i])
		i++
	}
	if out.Len() > 0 {
		if _, err := m.out.Write(out.Bytes()); err != nil {
			m.err = err
			return 0, err
		}
	}
	if len(m.held) > 0 {
		m.timer = time.AfterFunc(maskIdle, m.flush)
	}
	return len(p), nil
}

// flush writes what is held back as it is: nothing more came to make it
// a secret.
func (m *masker) flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.held) > 0 && m.err == nil {
		_, m.err = m.out.Write(m.held)
	}
	m.held = nil
}

// Close writes what is held back; the stream has ended.
func (m *masker) Close() error {
	m.mu.Lock()
	if m.timer != nil {
		m.timer.Stop()
	}
	m.mu.Unlock()
	m.flush()
	return nil
}
