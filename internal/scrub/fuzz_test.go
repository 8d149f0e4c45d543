package scrub

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// FuzzReplacer streams a body through a Reader with the chunking and read
// sizes the fuzzer picks, and holds the output to the references: always
// to the single-pass leftmost-longest reference (strings.Replacer), and to
// bytes.ReplaceAll needle by needle (longest first, then bytewise) when
// the needle set is overlap-free, as real credential sets are. The output
// keeps the input's length and holds no needle (unless a needle holds
// mask bytes).
//
// key chooses the needles: with mode's low bit clear, the Set of a
// credential with that key sent as Bearer and as Basic; with it set,
// key's pieces between commas, over the alphabet "ab" and "c" so needles
// overlap and nest. body is the text, in which a byte below 0x20 stands
// for a needle (odd) or a needle's start (even), the needle chosen by its
// value. cuts gives the source's chunk sizes and the read sizes in turn.
//
// Run it with: go test -run '^$' -fuzz FuzzReplacer -fuzztime 20s ./internal/scrub
func FuzzReplacer(f *testing.F) {
	f.Add(uint8(0), testKey, []byte("hello \x01 world \x02\x03 end"), []byte{3, 1, 7, 200})
	f.Add(uint8(1), "aaaaaaaa,aaaaaaaab,abababab,babababa", []byte("ab\x01\x03ba\x02\x05aab"), []byte{1, 1, 2, 3})
	f.Add(uint8(1), "abcabcab,cabcabca,bcabcabc", []byte("abc\x01\x03\x05\x07\x00\x02cab"), []byte{5, 2})
	f.Add(uint8(0), "sk-fake-0123456789", []byte(`data: {"k":"`+"\x01"+`"}`+"\n\n\x04\x06\x08"), []byte{0, 9, 1})
	f.Fuzz(func(t *testing.T, mode uint8, key string, body, cuts []byte) {
		if len(key) > 200 || len(body) > 4096 {
			return
		}
		var s *Set
		if mode&1 == 0 {
			basic := "Basic " + b64std("u:"+key)
			s = New(
				Credential{Key: secret.New(key), Header: secret.New("Bearer " + key)},
				Credential{Key: secret.New(key), Header: secret.New(basic)},
			)
		} else {
			s = compile(strings.Split(strings.Map(func(r rune) rune {
				if r == ',' {
					return r
				}
				return rune("abc"[int(r)%3])
			}, key), ","))
		}
		if s.Empty() {
			return
		}
		var in []byte
		for _, c := range body {
			if c >= 0x20 {
				in = append(in, c)
				continue
			}
			n := s.needles[int(c>>1)%len(s.needles)]
			if c&1 == 0 {
				n = n[:len(n)/2+1]
			}
			in = append(in, n...)
		}

		want := leftmostLongest(s, in)
		if overlapFree(s) {
			if ref := reference(s, in); !bytes.Equal(ref, want) {
				t.Fatalf("the references disagree on an overlap-free set %q:\n%q\n%q", s.needles, ref, want)
			}
		}
		if len(want) != len(in) {
			t.Fatalf("the reference changed the length")
		}
		var chunks [][]byte
		rest, i := bytes.Clone(in), 0
		for len(rest) > 0 {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])+1)
				i++
			}
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		readSize := 32 << 10
		if len(cuts) > 0 {
			readSize = int(cuts[len(cuts)-1])%(3*s.maxLen) + 1
		}
		got := readAllWith(t, s, chunks, readSize)
		if !bytes.Equal(got, want) {
			t.Fatalf("needles %q, input %q, reads of %d:\n got %q\nwant %q", s.needles, in, readSize, got, want)
		}
		if maskFree(s) && s.Contains(got) {
			t.Fatalf("a needle survived in %q", got)
		}
	})
}
