package apikey

import (
	"crypto/rand"
	"errors"
	"hash/crc32"
	"math/big"
	"strings"
	"testing"
)

func mustGenerate(t testing.TB, env string) string {
	t.Helper()
	s, err := Generate(env)
	if err != nil {
		t.Fatal(err)
	}
	return s.Reveal()
}

func TestGenerateParseRoundTrip(t *testing.T) {
	for _, env := range []string{"live", "test", "dev", "ab", "a1", "staging", "prod2", "abcdefghij"} {
		t.Run(env, func(t *testing.T) {
			for range 50 {
				raw := mustGenerate(t, env)
				if len(raw) != len("kg_")+len(env)+1+bodyLen+checkLen {
					t.Fatalf("key length %d", len(raw))
				}
				if !strings.HasPrefix(raw, "kg_"+env+"_") {
					t.Fatal("key does not start with kg_<env>_")
				}
				p, err := Parse(raw)
				if err != nil {
					t.Fatalf("Parse of a generated key: %v", err)
				}
				if p.Env != env {
					t.Fatalf("Env = %q, want %q", p.Env, env)
				}
				if want := "kg_" + env + "_" + raw[len(env)+4:len(env)+8]; p.Prefix != want || len(p.Prefix) != len(env)+8 {
					t.Fatalf("Prefix = %q, want %q", p.Prefix, want)
				}
			}
		})
	}
}

func TestGenerateAdmin(t *testing.T) {
	s, err := GenerateAdmin()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(s.Reveal())
	if err != nil || p.Env != AdminEnv {
		t.Fatalf("Parse(admin) = %+v, %v", p, err)
	}
	if _, err := Generate(AdminEnv); err == nil {
		t.Fatal("Generate issued an admin credential")
	}
}

func TestGenerateRejectsBadEnv(t *testing.T) {
	for _, env := range []string{"", "a", "Live", "1ive", "live_", "li-ve", "abcdefghijk", "tést", "live ", "admin"} {
		if _, err := Generate(env); err == nil {
			t.Errorf("Generate(%q) succeeded", env)
		}
	}
}

func TestGenerateIsUnique(t *testing.T) {
	const n = 20000
	seen := make(map[string]bool, n)
	bodies := make(map[string]bool, n)
	for range n {
		raw := mustGenerate(t, "test")
		if seen[raw] {
			t.Fatal("Generate repeated a key")
		}
		seen[raw] = true
		bodies[raw[len("kg_test_"):len("kg_test_")+8]] = true
	}
	if len(bodies) < n-1 {
		t.Fatalf("only %d distinct 8-character body prefixes among %d keys", len(bodies), n)
	}
}

func TestBodyEncoding(t *testing.T) {
	alpha := func(s string) *big.Int {
		v := new(big.Int)
		for i := range len(s) {
			v.Mul(v, big.NewInt(62))
			v.Add(v, big.NewInt(int64(strings.IndexByte(alphabet, s[i]))))
		}
		return v
	}
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	if alpha(maxBody).Cmp(max) != 0 {
		t.Fatal("maxBody is not 2^256-1")
	}
	var all [32]byte
	for i := range all {
		all[i] = 0xff
	}
	if got := string(appendBody(nil, all)); got != maxBody {
		t.Fatalf("body of 2^256-1 = %s, want %s", got, maxBody)
	}
	var zero [32]byte
	if got := string(appendBody(nil, zero)); got != strings.Repeat("0", bodyLen) {
		t.Fatalf("body of zero = %s", got)
	}
	n := [32]byte{31: 61}
	if got := string(appendBody(nil, n)); got != strings.Repeat("0", bodyLen-1)+"z" {
		t.Fatalf("body of 61 = %s", got)
	}
	for range 200 {
		raw := mustGenerate(t, "live")
		body := raw[len("kg_live_") : len(raw)-checkLen]
		if alpha(body).BitLen() > 256 {
			t.Fatal("body encodes more than 256 bits")
		}
	}
}

// withChecksum builds a key from its parts with a correct checksum.
func withChecksum(s string) string {
	c := checksum([]byte(s))
	return s + string(c[:])
}

func TestParseRejectsEverySingleCharacterChange(t *testing.T) {
	raw := mustGenerate(t, "live")
	var chars []byte
	for c := 0; c < 128; c++ {
		chars = append(chars, byte(c))
	}
	chars = append(chars, 0x80, 0xc3, 0xff)
	for i := range len(raw) {
		for _, c := range chars {
			if c == raw[i] {
				continue
			}
			m := raw[:i] + string(c) + raw[i+1:]
			if _, err := Parse(m); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse accepted the key with position %d changed to %q (err %v)", i, c, err)
			}
		}
		// Deletion and duplication of each character.
		if _, err := Parse(raw[:i] + raw[i+1:]); err == nil {
			t.Fatalf("Parse accepted the key with position %d deleted", i)
		}
		if _, err := Parse(raw[:i] + raw[i:i+1] + raw[i:]); err == nil {
			t.Fatalf("Parse accepted the key with position %d doubled", i)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	raw := mustGenerate(t, "live")
	body := raw[len("kg_live_") : len(raw)-checkLen]
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"empty", "", errLength},
		{"prefix only", "kg_", errLength},
		{"too short", raw[:len(raw)-1], errLength},
		{"too long", raw + "0", errLength},
		{"far too long", raw + strings.Repeat("0", 20), errLength},
		{"wrong prefix", "kx" + raw[2:], errPrefix},
		{"upper-case prefix", "KG" + raw[2:], errPrefix},
		{"other vendor prefix", "sk_live_" + raw[len("kg_live_"):], errPrefix},
		{"env upper-case", withChecksum("kg_LIVE_" + body), errEnv},
		{"env starts with digit", withChecksum("kg_1ive_" + body), errEnv},
		{"env one char", withChecksum("kg_l_" + body), errLength},
		{"env too long", withChecksum("kg_abcdefghijk_" + body), errLength},
		{"env with digit first", withChecksum("kg_9a_" + body), errEnv},
		{"env with dash", withChecksum("kg_li-e_" + body), errEnv},
		{"missing separator", withChecksum("kg_live" + body + "0"), errLength},
		{"non-base62 body", withChecksum("kg_live_" + body[:10] + "-" + body[11:]), errChars},
		{"underscore in body", withChecksum("kg_live_" + body[:10] + "_" + body[11:]), errChars},
		{"space in check", raw[:len(raw)-1] + " ", errChars},
		{"non-ASCII", withChecksum("kg_live_" + body[:10] + "é" + body[12:]), errChars},
		{"body out of range", withChecksum("kg_live_" + strings.Repeat("z", bodyLen)), errRange},
		{"bad checksum", raw[:len(raw)-checkLen] + "000000", errChecksum},
		{"surrounding space", " " + raw[:len(raw)-1], errPrefix},
		{"trailing newline", raw + "\n", errLength},
		{"newline in check", raw[:len(raw)-1] + "\n", errChars},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if err != tc.want {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(tc.in) > 12 && strings.Contains(err.Error(), tc.in[8:]) {
				t.Fatal("error echoes the key")
			}
		})
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	raw := mustGenerate(t, "live")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Parse(raw); err != nil {
			t.Fatal(err)
		}
		_, _ = Parse(raw[:len(raw)-1] + "0")
	})
	if allocs > 1 { // the second call's concatenation allocates; Parse must not
		t.Fatalf("Parse allocates: %.1f allocs per run", allocs)
	}
}

func FuzzParse(f *testing.F) {
	for _, env := range []string{"live", "test", "abcdefghij"} {
		f.Add(mustGenerate(f, env))
	}
	admin, err := GenerateAdmin()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(admin.Reveal())
	f.Add("")
	f.Add("kg_")
	f.Add("kg_live_" + strings.Repeat("z", bodyLen+checkLen))
	f.Add(withChecksum("kg_live_" + strings.Repeat("0", bodyLen)))
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if p != (Parsed{}) {
				t.Fatal("non-empty Parsed with an error")
			}
			return
		}
		// Re-validate independently.
		rest, ok := strings.CutPrefix(raw, "kg_"+p.Env+"_")
		if !ok || ValidateEnv(p.Env) != nil {
			t.Fatalf("accepted key has a bad env %q", p.Env)
		}
		if len(rest) != bodyLen+checkLen || strings.Trim(rest, alphabet) != "" {
			t.Fatal("accepted key has a bad body")
		}
		if rest[:bodyLen] > maxBody {
			t.Fatal("accepted body out of range")
		}
		if withChecksum(raw[:len(raw)-checkLen]) != raw {
			t.Fatal("accepted key has a bad checksum")
		}
		if !strings.HasPrefix(raw, p.Prefix) || len(p.Prefix) != len("kg__")+len(p.Env)+prefixBody {
			t.Fatalf("bad Prefix %q", p.Prefix)
		}
		if q, err := Parse(raw); err != nil || q != p {
			t.Fatal("Parse is not deterministic")
		}
	})
}

func BenchmarkParse(b *testing.B) {
	raw := mustGenerate(b, "live")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate("live"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCRC32MatchesStandardLibrary(t *testing.T) {
	for n := range 200 {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		if got, want := crc32IEEE(string(b)), crc32.ChecksumIEEE(b); got != want {
			t.Fatalf("length %d: crc32IEEE = %08x, crc32.ChecksumIEEE = %08x", n, got, want)
		}
	}
}

func TestContains(t *testing.T) {
	k, err := Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	key := k.Reveal()
	admin, _ := GenerateAdmin()
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{key, true},
		{"Bearer " + key, true},
		{"token=" + key + ";path=/", true},
		{"kg_" + key, true},                              // a stray prefix before the real one
		{admin.Reveal() + "x", true},                     // followed by other text
		{key[:len(key)-1], false},                        // truncated
		{key[:len(key)-1] + "0", key[len(key)-1] == '0'}, // checksum changed
		{"kg_live_not-a-key", false},
		{"", false},
		{"kg_kg_kg_", false},
	} {
		if got := Contains(tc.s); got != tc.want {
			t.Errorf("Contains(%.20q...) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
