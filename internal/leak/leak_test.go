package leak

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/scan/scantest"
	"github.com/keygate/keygate/internal/secret"
)

func mustNew(t testing.TB, o Options) *Matcher {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// value returns a random vault value made at run time.
func value(n int) string { return (rand.Text() + rand.Text() + rand.Text())[:n] }

func kinds(hs []Hit) string {
	var b []string
	for _, h := range hs {
		b = append(b, string(h.Kind)+":"+h.Rule+":"+h.Name+":"+h.Form)
	}
	return strings.Join(b, " ")
}

// TestVaultValuesInEveryForm finds a vault value written raw, in base64 at
// any alignment (inside an HTTP Basic credential), base64url,
// URL-encoded and JSON-escaped, at the right offsets, and nothing when the
// body holds only part of it.
func TestVaultValuesInEveryForm(t *testing.T) {
	v := value(20) + `"/+?&`
	other := value(24)
	m := mustNew(t, Options{Values: []Value{{Name: "secret:db/password", Value: secret.New(v)}, {Name: "provider:openai", Value: secret.New(other)}}})
	if m.Watched() != 2 {
		t.Fatalf("watched %d", m.Watched())
	}
	js, _ := json.Marshal(v)
	cases := map[string]struct {
		body string
		form string
	}{
		"raw":        {"prompt: " + v + " thanks", "raw"},
		"json":       {`{"messages":[{"content":` + string(js) + `}]}`, "json"},
		"basic auth": {"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+v)), "base64"},
		"base64":     {"x=" + base64.StdEncoding.EncodeToString([]byte(v)), "base64"},
		"base64url":  {"x=" + base64.URLEncoding.EncodeToString([]byte("ab"+v)), "base64url"},
		"query":      {"GET /?p=" + url.QueryEscape(v), "url"},
	}
	for name, c := range cases {
		hs := m.Check([]byte(c.body))
		if c.form == "base64url" && len(hs) == 1 && hs[0].Form == "base64" {
			hs[0].Form = c.form // the same characters in both alphabets
		}
		if len(hs) != 1 || hs[0].Kind != KindVault || hs[0].Name != "secret:db/password" || hs[0].Form != c.form {
			t.Errorf("%s: hits %s; want one vault hit of secret:db/password in form %s", name, kinds(hs), c.form)
			continue
		}
		red := string(Redacted([]byte(c.body), hs))
		if !strings.Contains(red, "[REDACTED:vault-value]") || strings.Contains(red, v[:12]) {
			t.Errorf("%s: redacted body %q", name, red)
		}
	}
	if hs := m.Check([]byte("raw " + v[:len(v)-1] + " and " + other[1:])); len(hs) != 0 {
		t.Fatalf("parts of values matched: %s", kinds(hs))
	}
	if hs := m.Check([]byte(other + v)); len(hs) != 2 || hs[0].Name != "provider:openai" || hs[1].Start != int64(len(other)) {
		t.Fatalf("two adjacent values: %+v", hs)
	}
	short := mustNew(t, Options{Values: []Value{{Name: "secret:pin", Value: secret.New("1234")}}})
	if short.Watched() != 0 {
		t.Fatal("a 4-byte value was watched")
	}
}

// TestKeygateCredentialsAndFormats finds keygate keys (checksum checked),
// keygate access tokens by issuer, and provider-key formats.
func TestKeygateCredentialsAndFormats(t *testing.T) {
	g := scantest.NewGen(21)
	kg := g.KeygateKey("live")
	bad := kg[:20] + string("ab"[bytes.IndexByte([]byte("ab"), kg[20])+1&1]) + kg[21:]
	if bad == kg {
		bad = kg[:20] + "Z" + kg[21:]
	}
	enc := base64.RawURLEncoding
	tok := enc.EncodeToString([]byte(`{"alg":"ES256","typ":"at+jwt"}`)) + "." + enc.EncodeToString([]byte(`{"iss":"https://keygate.internal","sub":"key_1"}`)) + "." + enc.EncodeToString([]byte(value(40)))
	foreign := g.JWT()
	oa := g.Positive("openai-project-key").Secret
	m := mustNew(t, Options{TokenIssuer: "https://keygate.internal"})
	body := []byte(`{"prompt":"use ` + kg + ` or ` + bad + ` then ` + tok + ` and ` + foreign + ` with ` + oa + `"}`)
	hs := m.Check(body)
	want := "keygate:keygate-api-key:: keygate:keygate-access-token:: provider:jwt:: provider:openai-project-key::"
	if kinds(hs) != want {
		t.Fatalf("hits %s\nwant %s", kinds(hs), want)
	}
	if string(body[hs[0].Start:hs[0].End]) != kg {
		t.Fatal("keygate key offsets wrong")
	}
}

// TestStreamMatchesCheck feeds bodies in random pieces: the hits are
// those of Check, the redacted output that of Redacted, and a blocking
// onHit stops the stream before any byte of the credential.
func TestStreamMatchesCheck(t *testing.T) {
	g := scantest.NewGen(22)
	v := value(30)
	m := mustNew(t, Options{Values: []Value{{Name: "secret:a", Value: secret.New(v)}}, TokenIssuer: "kg"})
	parts := []string{"data: {\"delta\":\"", v, "\"}\n\n", g.KeygateKey("test"), " ", g.Positive("anthropic-api-key").Secret,
		" ", base64.StdEncoding.EncodeToString([]byte("u:" + v)), " ", g.JWT(), strings.Repeat("lorem ipsum ", 40)}
	body := []byte(strings.Join(parts, ""))
	want := m.Check(body)
	if len(want) != 5 {
		t.Fatalf("Check: %s", kinds(want))
	}
	rnd := mrand.New(mrand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var out bytes.Buffer
		var got []Hit
		s := m.NewStream(&out, true, func(h Hit) error { got = append(got, h); return nil })
		for rest := body; len(rest) > 0; {
			n := 1 + rnd.IntN(min(len(rest), []int{1, 7, 64, 4096}[rnd.IntN(4)]))
			if _, err := s.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if kinds(got) != kinds(want) {
			t.Fatalf("round %d: stream hits %s\nwant %s", round, kinds(got), kinds(want))
		}
		if !bytes.Equal(out.Bytes(), Redacted(body, want)) {
			t.Fatalf("round %d: redacted stream differs:\n%q\n%q", round, out.Bytes(), Redacted(body, want))
		}
	}

	// Block: the hit's bytes are never passed on.
	var out bytes.Buffer
	stop := errors.New("blocked")
	s := m.NewStream(&out, false, func(Hit) error { return stop })
	var err error
	for i := 0; i < len(body) && err == nil; i += 3 {
		_, err = s.Write(body[i:min(len(body), i+3)])
	}
	if !errors.Is(err, stop) || out.String() != string(body[:want[0].Start]) {
		t.Fatalf("block: err %v, passed %q", err, out.String())
	}
	if _, err := s.Write([]byte("more")); !errors.Is(err, stop) {
		t.Fatal("writes after a block must fail")
	}
}

// TestMatcherKeepsNoValue walks everything a Matcher holds and looks for
// the vault values and their encodings.
func TestMatcherKeepsNoValue(t *testing.T) {
	var vals []Value
	var needles [][]byte
	for i := range 20 {
		v := value(16 + i)
		vals = append(vals, Value{Name: "secret:" + string(rune('a'+i)), Value: secret.New(v)})
		needles = append(needles, []byte(v[:8]), []byte(base64.StdEncoding.EncodeToString([]byte(v))[:8]))
	}
	m := mustNew(t, Options{Values: vals})
	var heap bytes.Buffer
	walk(reflect.ValueOf(m).Elem(), &heap, map[uintptr]bool{})
	if heap.Len() < 1000 {
		t.Fatalf("walked only %d bytes", heap.Len())
	}
	for _, n := range needles {
		if bytes.Contains(heap.Bytes(), n) {
			t.Fatalf("the matcher holds part of a value or its base64 form")
		}
	}
}

// walk appends every byte, string and integer reachable from v to out.
func walk(v reflect.Value, out *bytes.Buffer, seen map[uintptr]bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer {
			if seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
		}
		walk(v.Elem(), out, seen)
	case reflect.Struct:
		for i := range v.NumField() {
			walk(v.Field(i), out, seen)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(v.Index(i), out, seen)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walk(it.Key(), out, seen)
			walk(it.Value(), out, seen)
		}
	case reflect.String:
		out.WriteString(v.String())
	case reflect.Uint8:
		out.WriteByte(byte(v.Uint()))
	}
}

// TestDefaultActions: vault values and keygate credentials are blocked by
// default, other formats alerted on; a policy can change either.
func TestDefaultActions(t *testing.T) {
	prov := []Hit{{Kind: KindProvider, Rule: "openai-project-key"}}
	if Strictest(prov, nil) != ActionAlert || Strictest(append(prov, Hit{Kind: KindVault}), nil) != ActionBlock ||
		Strictest([]Hit{{Kind: KindKeygate}}, nil) != ActionBlock || Strictest(nil, nil) != ActionAlert {
		t.Fatal("default actions")
	}
	if Strictest(prov, func(Hit) Action { return ActionRedact }) != ActionRedact {
		t.Fatal("a policy's action is not used")
	}
}
