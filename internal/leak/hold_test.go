package leak

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// holdValues are vault values of every shape keygate holds: binary keys
// (its own peppers and signing keys), an ASCII API key and a password with
// non-ASCII letters.
func holdValues(t *testing.T) ([]Value, [][]byte) {
	var vs []Value
	var raw [][]byte
	for i := range 4 {
		b := make([]byte, 32)
		rand.Read(b)
		vs = append(vs, Value{Name: "system/key-" + string(rune('a'+i)), Value: secret.New(string(b))})
		raw = append(raw, b)
	}
	for _, v := range []string{"fake-upstream-" + value(24), "pässwörd-" + value(12)} {
		vs = append(vs, Value{Name: "secret/" + v[:4], Value: secret.New(v)})
		raw = append(raw, []byte(v))
	}
	return vs, raw
}

// TestStreamRedactsEveryShapeWhateverTheSplit: binary, ASCII and
// non-ASCII values, raw and base64, among prose and bytes that are not
// text, are cut out of a stream however it is split, exactly as Check
// finds them in the whole body.
func TestStreamRedactsEveryShapeWhateverTheSplit(t *testing.T) {
	vs, raw := holdValues(t)
	m := mustNew(t, Options{Values: vs})
	rnd := mrand.New(mrand.NewPCG(5, 6))
	for round := range 300 {
		var body []byte
		for range 6 {
			switch rnd.IntN(4) {
			case 0:
				body = append(body, raw[rnd.IntN(len(raw))]...)
			case 1:
				body = append(body, base64.StdEncoding.EncodeToString(raw[rnd.IntN(len(raw))])...)
			case 2:
				body = append(body, "Hello from the keygate fake upstream, é à "...)
			default:
				b := make([]byte, rnd.IntN(20))
				for i := range b {
					b[i] = byte(rnd.IntN(256))
				}
				body = append(body, b...)
			}
		}
		want := m.Check(body)
		var out bytes.Buffer
		s := m.NewStream(&out, true, nil)
		for rest := body; len(rest) > 0; {
			n := 1 + rnd.IntN(min(len(rest), []int{1, 5, 40}[rnd.IntN(3)]))
			if _, err := s.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), Redacted(body, want)) {
			t.Fatalf("round %d: the stream's output differs from the whole body's redaction", round)
		}
	}
}

// TestStreamHoldsBackOnlyTheLastWord: with keygate's kinds of vault
// values watched, prose streamed a few characters at a time is passed on
// up to the word still arriving, not a whole window late (but for the
// few plain bytes a binary key may start with, which m.head counts).
func TestStreamHoldsBackOnlyTheLastWord(t *testing.T) {
	vs, _ := holdValues(t)
	m := mustNew(t, Options{Values: vs, TokenIssuer: "https://keygate.internal"})
	text := "Hello from the keygate fake upstream. Everything looks fine, and the answer goes on for a while. "
	var out bytes.Buffer
	s := m.NewStream(&out, true, nil)
	for i := 0; i < len(text); i += 9 {
		if _, err := s.Write([]byte(text[i:min(len(text), i+9)])); err != nil {
			t.Fatal(err)
		}
		sent := text[:min(len(text), i+9)]
		word := sent[strings.LastIndexAny(sent, " .,")+1:]
		if m.head > 12 {
			t.Fatalf("binary keys are taken to start with %d plain bytes", m.head)
		}
		if held := len(sent) - out.Len(); held > len(word)+m.head {
			t.Fatalf("after %q, %d bytes are held back; the last word is %q", sent, held, word)
		}
	}
}
