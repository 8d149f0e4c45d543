package scrub

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// testKey is an obviously fake credential holding the bytes that URL,
// base64 and JSON encodings change ('/', '+', '=').
const testKey = "FAKE-test/upstream+key=0123456789abcdef"

// testUser is the Basic user name of the tests.
const testUser = "acct_test"

// basicSet is the Set of testKey sent as HTTP Basic with testUser and
// as a Bearer token, and the Basic header value.
func basicSet(t testing.TB) (*Set, string) {
	t.Helper()
	h := "Basic " + b64std(testUser+":"+testKey)
	return New(
		Credential{Key: secret.New(testKey), Header: secret.New(h)},
		Credential{Key: secret.New(testKey), Header: secret.New("Bearer " + testKey)},
	), h
}

// readAllWith streams in through s, the source yielding the chunks given
// and the reader reading into buffers of readSize bytes.
func readAllWith(t testing.TB, s *Set, chunks [][]byte, readSize int) []byte {
	t.Helper()
	r := s.Reader(&chunkSource{chunks: chunks})
	var out bytes.Buffer
	p := make([]byte, readSize)
	for {
		n, err := r.Read(p)
		out.Write(p[:n])
		if errors.Is(err, io.EOF) {
			return out.Bytes()
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

// chunkSource yields its chunks one per Read, then io.EOF. reads counts
// the Reads it answered.
type chunkSource struct {
	chunks [][]byte
	reads  int
	err    error // returned after the chunks instead of io.EOF, when set
}

func (c *chunkSource) Read(p []byte) (int, error) {
	c.reads++
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

// splitEvery cuts b into pieces of size bytes.
func splitEvery(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

// reference is what scrubbing in must give: bytes.ReplaceAll for each
// needle of s in s's order (longest first, then bytewise), each by the
// mask of its length. It equals the single pass when no needle's end is
// another's start and no needle holds mask bytes (see overlapFree).
func reference(s *Set, in []byte) []byte {
	out := bytes.Clone(in)
	for _, n := range s.needles {
		out = bytes.ReplaceAll(out, n, s.mask(len(n)))
	}
	return out
}

// leftmostLongest is an independent reference for any needle set: the
// standard library's strings.Replacer, which replaces leftmost first and,
// at one position, the first pair given; the pairs are given longest
// first.
func leftmostLongest(s *Set, in []byte) []byte {
	var pairs []string
	for _, n := range s.needles {
		pairs = append(pairs, string(n), string(s.mask(len(n))))
	}
	if len(pairs) == 0 {
		return bytes.Clone(in)
	}
	return []byte(strings.NewReplacer(pairs...).Replace(string(in)))
}

// overlapFree reports whether reference applies to s: no proper suffix of
// a needle is a proper prefix of a needle, and no needle can be formed
// with mask bytes.
func overlapFree(s *Set) bool {
	if !maskFree(s) {
		return false
	}
	for _, a := range s.needles {
		for _, b := range s.needles {
			for k := 1; k < min(len(a), len(b)); k++ {
				if bytes.Equal(a[len(a)-k:], b[:k]) {
					return false
				}
			}
		}
	}
	return true
}

// maskFree reports whether no needle can be formed with mask bytes, so
// that none can appear in scrubbed output.
func maskFree(s *Set) bool {
	for _, n := range s.needles {
		if bytes.ContainsAny(n, "[]*") || string(n) == "REDACTED" {
			return false
		}
	}
	return true
}
