package scrub

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/keygate/keygate/internal/secret"
)

// TestStraddlingEveryBoundary: a form split across two chunks at any
// offset, or arriving one byte at a time, or read one byte at a time, is
// replaced exactly as in the whole body.
func TestStraddlingEveryBoundary(t *testing.T) {
	s, h := basicSet(t)
	for _, tc := range echoForms(h) {
		in := []byte(`data: {"echo":"` + tc.form + `"}` + "\n\n" + tc.form[:len(tc.form)/2] + " " + tc.form)
		want := reference(s, in)
		if bytes.Contains(want, []byte(tc.form)) {
			t.Fatalf("%s: reference left the form in", tc.name)
		}
		for cut := 0; cut <= len(in); cut++ {
			got := readAllWith(t, s, [][]byte{bytes.Clone(in[:cut]), bytes.Clone(in[cut:])}, 32<<10)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, cut at %d:\n got %q\nwant %q", tc.name, cut, got, want)
			}
		}
		for _, size := range []int{1, 2, 7, s.maxLen, 2 * s.maxLen} {
			got := readAllWith(t, s, splitEvery(bytes.Clone(in), 1), size)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, one byte at a time, reads of %d:\n got %q\nwant %q", tc.name, size, got, want)
			}
			got, err := io.ReadAll(iotest.OneByteReader(s.Reader(iotest.HalfReader(bytes.NewReader(in)))))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s, one-byte reads: %v\n got %q\nwant %q", tc.name, err, got, want)
			}
		}
	}
}

// TestKeyAfterTheFirstMiB: a key deep in a long body, and at its very end,
// is scrubbed; the body keeps its length and nothing else changes.
func TestKeyAfterTheFirstMiB(t *testing.T) {
	s, _ := basicSet(t)
	pad := strings.Repeat(`{"object":"chunk","text":"lorem ipsum"}`, (3<<20)/38)
	in := []byte(pad[:1<<20+17] + testKey + pad[1<<20+17:] + "Bearer " + testKey)
	var out bytes.Buffer
	if _, err := io.Copy(&out, s.Reader(bytes.NewReader(in))); err != nil {
		t.Fatal(err)
	}
	if out.Len() != len(in) {
		t.Fatalf("%d bytes out of %d", out.Len(), len(in))
	}
	if bytes.Contains(out.Bytes(), []byte(testKey)) {
		t.Fatal("the key passed")
	}
	if want := reference(s, in); !bytes.Equal(out.Bytes(), want) {
		t.Fatal("the output differs from the reference")
	}
	if !bytes.HasSuffix(out.Bytes(), s.mask(len("Bearer "+testKey))) {
		t.Fatalf("tail %q", out.Bytes()[out.Len()-60:])
	}
}

// TestNearMissesPassUnchanged: a body made only of near misses (every
// prefix of the needles, the key with one byte changed) comes out
// unchanged, in any chunking.
func TestNearMissesPassUnchanged(t *testing.T) {
	s, _ := basicSet(t)
	var b bytes.Buffer
	for _, n := range s.needles {
		for i := 1; i < len(n); i++ {
			if !s.Contains(n[:i]) { // a long needle's start may hold a shorter one
				b.Write(n[:i])
			}
		}
		for i := range n {
			m := bytes.Clone(n)
			m[i] ^= 0x01
			if !s.Contains(m) { // a change in "Bearer " leaves the key whole
				b.Write(m)
			}
		}
	}
	in := b.Bytes()
	if s.Contains(in) {
		ms, _ := s.find(in, nil, false)
		t.Fatalf("the near-miss body holds a needle; fix the test: %q", in[ms[0].start-20:ms[0].end+20])
	}
	for _, size := range []int{1, 3, 64, 1000, len(in)} {
		got := readAllWith(t, s, splitEvery(bytes.Clone(in), size), 32<<10)
		if !bytes.Equal(got, in) {
			t.Fatalf("chunks of %d: the near-miss body changed", size)
		}
	}
}

// TestOverlappingAndPrefixNeedles: where needles overlap, or one is a
// prefix of another, the leftmost match wins and at one position the
// longest, however the input is split.
func TestOverlappingAndPrefixNeedles(t *testing.T) {
	for _, tc := range []struct {
		needles []string
		in      string
		want    string
	}{
		{[]string{"abcdefgh", "abcdefghij"}, "xabcdefghijx", "x[REDACTED]x"},                                            // longer wins at one start
		{[]string{"abcdefgh", "abcdefghij"}, "xabcdefghiZx", "x[REDACT]iZx"},                                            // the longer one fails, the shorter stands
		{[]string{"12345678", "56789abc"}, "123456789abc", "[REDACT]9abc"},                                              // leftmost wins, the rest stays
		{[]string{"56789abc", "12345678"}, "0056789abc12345678", "00[REDACT][REDACT]"},                                  // order of the Set does not matter
		{[]string{"aaaaaaaa"}, "aaaaaaaaaaaaaaaaa", "[REDACT][REDACT]a"},                                                // self-overlap: left to right
		{[]string{"xyzxyzxy", "zxyzxyQQ"}, "xyzxyzxyzxyQQ", "[REDACT]zxyQQ"},                                            // a straddle that loses
		{[]string{"abcdefgh", "cdefghijkl"}, "abcdefghijkl", "[REDACT]ijkl"},                                            // overlap, leftmost shorter
		{[]string{"bcdefghi", "abcdefghijklmnop"}, "abcdefghijklmnoX", "a[REDACT]jklmnoX"},                              // longer pending one fails
		{[]string{"bcdefghi", "abcdefghijklmnop"}, "abcdefghijklmnop", "[REDACTED]******"},                              // longer pending one completes
		{[]string{"abcdefgh", "bcdefghijk", "cdefghijklmn"}, "abcdefghijklmn", "[REDACT]ijklmn"},                        // chain
		{[]string{"abcdefgh", "bcdefghijk", "cdefghijklmn"}, "zbcdefghijklmn", "z[REDACTED]lmn"},                        // chain, second link
		{[]string{"abcdefgh", "bcdefghijk", "cdefghijklmn"}, "zzcdefghijklmn", "zz[REDACTED]**"},                        // chain, last link
		{[]string{"abcdefghij", "abcdefgh", "abcdefghi"}, "abcdefghabcdefghiabcdefghij", "[REDACT][REDACT]*[REDACTED]"}, // nested prefixes
	} {
		s := compile(slices.Clone(tc.needles))
		if got := leftmostLongest(s, []byte(tc.in)); string(got) != tc.want {
			t.Fatalf("the test's expectation disagrees with strings.Replacer for %q: %q", tc.in, got)
		}
		in := []byte(tc.in)
		for cut := 0; cut <= len(in); cut++ {
			got := readAllWith(t, s, [][]byte{bytes.Clone(in[:cut]), bytes.Clone(in[cut:])}, 64)
			if string(got) != tc.want {
				t.Fatalf("needles %q, input %q cut at %d: got %q, want %q", tc.needles, tc.in, cut, got, tc.want)
			}
		}
		got := readAllWith(t, s, splitEvery(bytes.Clone(in), 1), 1)
		if string(got) != tc.want {
			t.Fatalf("needles %q, input %q byte by byte: got %q, want %q", tc.needles, tc.in, got, tc.want)
		}
	}
}

// TestSSEEventsAreNotDelayed: an event that ends in "\n\n" is released by
// the Read that received it; a fragment that could begin the key waits
// for exactly the next chunk, which settles it.
func TestSSEEventsAreNotDelayed(t *testing.T) {
	s, _ := basicSet(t)
	ev1 := []byte("data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n")
	ev2a := []byte("data: {\"echo\":\"" + testKey[:12])
	ev2b := []byte(testKey[12:] + "\"}\n\n")
	ev3a := []byte("data: {\"text\":\"FAKE-te")
	ev3b := []byte("lling\"}\n\n")
	src := &chunkSource{chunks: [][]byte{ev1, ev2a, ev2b, ev3a, ev3b}}
	r := s.Reader(src)
	p := make([]byte, 32<<10)
	read := func(wantReads int, want string) {
		t.Helper()
		n, err := r.Read(p)
		if err != nil || string(p[:n]) != want || src.reads != wantReads {
			t.Fatalf("Read = %q, %v after %d source reads; want %q after %d", p[:n], err, src.reads, want, wantReads)
		}
	}
	read(1, string(ev1))
	read(2, `data: {"echo":"`) // the key's start waits
	read(3, string(s.mask(len(testKey)))+"\"}\n\n")
	read(4, `data: {"text":"`)
	read(5, "FAKE-telling\"}\n\n")
	if n, err := r.Read(p); n != 0 || err != io.EOF {
		t.Fatalf("after the stream: %d, %v", n, err)
	}
}

// TestSourceErrorDropsTheHeldFragment: when the source fails, what could
// have been the start of the key is never released; at io.EOF it is, as
// no key can complete.
func TestSourceErrorDropsTheHeldFragment(t *testing.T) {
	s, _ := basicSet(t)
	boom := errors.New("connection reset")
	for _, size := range []int{1, 32 << 10} {
		src := &chunkSource{chunks: [][]byte{[]byte("text " + testKey[:30])}, err: boom}
		got, err := io.ReadAll(&sizedReader{r: s.Reader(src), size: size})
		if !errors.Is(err, boom) || string(got) != "text " {
			t.Fatalf("reads of %d: got %q, %v; want %q and the source's error", size, got, err, "text ")
		}
		got = readAllWith(t, s, [][]byte{[]byte("text " + testKey[:30])}, size)
		if string(got) != "text "+testKey[:30] {
			t.Fatalf("reads of %d at EOF: got %q", size, got)
		}
	}
}

// sizedReader reads r into buffers of at most size bytes.
type sizedReader struct {
	r    io.Reader
	size int
}

func (s *sizedReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.size)]) }

// TestReadDoesNotAllocate: in steady state a Read allocates nothing, with
// or without matches, scanning text or sampling base64.
func TestReadDoesNotAllocate(t *testing.T) {
	s, _ := basicSet(t)
	for _, body := range []string{sampleJSON(4 << 10), sampleJSON(4<<10) + testKey + "Bearer " + testKey, sampleBase64(40 << 10)} {
		src := &repeatSource{data: []byte(body)}
		r := s.Reader(src)
		p := make([]byte, 32<<10)
		for range 10 {
			_, _ = r.Read(p) // warm up the scratch slices
		}
		if a := testing.AllocsPerRun(100, func() { _, _ = r.Read(p) }); a != 0 {
			t.Fatalf("%v allocations per Read", a)
		}
	}
}

// TestEmptySetPassesThrough: with nothing to look for, Body returns the
// body itself and a Reader copies.
func TestEmptySetPassesThrough(t *testing.T) {
	s := New(Credential{Key: secret.New("")})
	body := io.NopCloser(strings.NewReader("x"))
	if s.Body(body) != body {
		t.Fatal("Body wrapped a body for an empty Set")
	}
	if got, _ := io.ReadAll(s.Reader(strings.NewReader("plain " + testKey))); string(got) != "plain "+testKey {
		t.Fatalf("got %q", got)
	}
}

// TestCloseClosesTheSource: Body's Close reaches the original body.
func TestCloseClosesTheSource(t *testing.T) {
	s, _ := basicSet(t)
	c := &closeCounter{Reader: strings.NewReader("x")}
	if err := s.Body(c).Close(); err != nil || c.closed != 1 {
		t.Fatalf("Close: %v, source closed %d times", err, c.closed)
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// repeatSource yields data forever, one copy per Read at most.
type repeatSource struct {
	data []byte
	off  int
}

func (r *repeatSource) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// TestDenseBodies: in base64 text, where anchor bytes are frequent and the
// matcher samples instead of scanning, every form at every offset is still
// found, across chunk boundaries, and the matcher returns to the sparse
// scan when the text turns sparse.
func TestDenseBodies(t *testing.T) {
	s, h := basicSet(t)
	var raw [3 << 12]byte
	for i := range raw {
		raw[i] = byte(i*7919 + i>>3)
	}
	dense := []byte(b64std(string(raw[:])))
	var sc scratch
	s.scan(dense, false, &sc)
	if !sc.dense {
		t.Fatal("base64 text did not switch the matcher to sampling; the test does not cover it")
	}
	sparse := []byte(sampleJSON(len(dense)))
	s.scan(sparse, false, &sc)
	if s.scan(sparse, false, &sc); sc.dense {
		t.Fatal("the matcher kept sampling text without anchors")
	}
	for _, tc := range echoForms(h) {
		// Put the form at every offset modulo the sampling step.
		in := bytes.Clone(dense)
		step := s.minLen - gramLen + 1
		gap := step * (s.maxLen/step + 2)
		for k := range step {
			copy(in[100+k*gap+k:], tc.form)
		}
		want := reference(s, in)
		if bytes.Contains(want, []byte(tc.form)) {
			t.Fatalf("%s: the reference left the form in", tc.name)
		}
		for _, size := range []int{len(in), 32 << 10, 4093, 701} {
			got := readAllWith(t, s, splitEvery(bytes.Clone(in), size), 32<<10)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, chunks of %d: the output differs from the reference", tc.name, size)
			}
		}
	}
}

// TestSetSharedAcrossGoroutines: one Set serves many streams at once (run
// with -race).
func TestSetSharedAcrossGoroutines(t *testing.T) {
	s, _ := basicSet(t)
	in := []byte(sampleJSON(100<<10) + testKey + sampleJSON(1000))
	want := reference(s, in)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			got, err := io.ReadAll(s.Reader(bytes.NewReader(in)))
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New("output differs from the reference")
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
