package jsonpeek

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// valid reports whether b is exactly one JSON value, read with Skip and End.
func valid(b []byte) bool {
	s := NewScanner(b)
	return s.Skip() != nil && s.End()
}

func TestScannerValidates(t *testing.T) {
	good := []string{`{}`, `[]`, `{"a":[1,-2.5e3,true,false,null,"\u00e9\n"]}`, ` 0 `, `"x"`, `-0`, `1E+2`, "\t[ ]\r\n",
		`{"a":{"b":{"c":[[],[{}]]}}}`, `[` + strings.Repeat(`[{"k":`, 200) + `1` + strings.Repeat(`}]`, 200) + `]`}
	bad := []string{``, ` `, `{`, `{"a" 1}`, `{"a":1 "b":2}`, `[1 2]`, `[1,]`, `{"a":1,}`, `"\x"`, `"\u12"`, "\"a\x01\"",
		`01`, `1.`, `-`, `tru`, `{} {}`, `{"a":1}}`, `[1}`, `{"a":1]`, `[{]`, `{"a"}`, `{:1}`, `[,1]`, `nul`, `+1`,
		`[` + strings.Repeat(`[{"k":`, 200) + `1` + strings.Repeat(`}]`, 199) + `]`}
	for _, s := range good {
		if !valid([]byte(s)) || !json.Valid([]byte(s)) {
			t.Errorf("%q: Scanner %v, json.Valid %v", s, valid([]byte(s)), json.Valid([]byte(s)))
		}
	}
	for _, s := range bad {
		if valid([]byte(s)) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestScannerDepth(t *testing.T) {
	for _, depth := range []int{63, 64, 65, 128, 129, MaxDepth, MaxDepth + 1} {
		for _, open := range []string{"[", `{"k":`} {
			close := "]"
			if open != "[" {
				close = "}"
			}
			b := []byte(strings.Repeat(open, depth) + "0" + strings.Repeat(close, depth))
			if valid(b) != json.Valid(b) || valid(b) != (depth <= MaxDepth) {
				t.Errorf("%d levels of %s: Scanner %v, json.Valid %v", depth, open, valid(b), json.Valid(b))
			}
			if depth < MaxDepth { // a bracket closing the wrong level is caught past 64 levels too
				b[len(b)-depth/2] = '}' + ']' - b[len(b)-depth/2]
				if valid(b) {
					t.Errorf("%d levels of %s with a mismatched bracket accepted", depth, open)
				}
			}
		}
	}
}

// walk reads the value s is at by walking every container in place, into
// what encoding/json decodes with UseNumber.
func walk(t *testing.T, s *Scanner) any {
	switch s.Peek() {
	case '{':
		m := map[string]any{}
		for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
			k := string(key)
			// A key with escapes comes back unescaped in the scanner's
			// buffer, or, when long, as written; only the second needs
			// unescaping here (an unescaped key may hold a backslash).
			inBuf := len(key) > 0 && &key[0] == &s.key[0]
			if !inBuf && bytes.IndexByte(key, '\\') >= 0 {
				if err := json.Unmarshal([]byte(`"`+k+`"`), &k); err != nil {
					t.Fatal(err)
				}
			}
			m[k] = walk(t, s)
		}
		return m
	case '[':
		a := []any{}
		for ok := s.FirstElement(); ok; ok = s.NextElement() {
			a = append(a, walk(t, s))
		}
		return a
	}
	raw := s.Skip()
	if raw == nil {
		return nil
	}
	if c := raw[0]; c == '-' || c >= '0' && c <= '9' {
		return json.Number(raw)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("Skip returned %q: %v", raw, err)
	}
	if str, isString := v.(string); isString {
		if got, ok := AppendUnquoted(nil, raw); !ok || string(got) != str {
			t.Fatalf("AppendUnquoted(%q) = %q, %v; encoding/json reads %q", raw, got, ok, str)
		}
	}
	return v
}

func TestAppendUnquoted(t *testing.T) {
	for raw, want := range map[string]string{`""`: "", `"a\"b\\c\/\n\u00e9\ud83d\ude00"`: "a\"b\\c/\né\U0001F600", "\"m\xff\"": "m\uFFFD", `"\ud800x"`: "\uFFFDx"} {
		if got, ok := AppendUnquoted([]byte("pre:"), []byte(raw)); !ok || string(got) != "pre:"+want {
			t.Errorf("AppendUnquoted(%s) = %q, %v", raw, got, ok)
		}
	}
	for _, raw := range []string{``, `"`, `"a`, `"\"`, `"\x"`, `1`, `"a" "b"`, `"a"x`, "\"\x01\""} {
		if got, ok := AppendUnquoted(nil, []byte(raw)); ok || got != nil {
			t.Errorf("AppendUnquoted(%q) = %q, %v", raw, got, ok)
		}
	}
}

// FuzzScanner holds the Scanner to encoding/json: it accepts exactly the
// valid documents, and walking one in place reads what encoding/json
// decodes (keys unescaped, the last duplicate winning).
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,-2.5e3,true,false,null,"\u00e9\n"]}`, `"x"`, `{"a":1,"a":2}`,
		`{"\u0061":1,"a\"b":[{}],"` + strings.Repeat(`\u0062`, 70) + `":0}`, `[1,]`, `{"a":1,}`, `[{"a":[1}]]`,
		strings.Repeat("[", 70) + strings.Repeat("]", 70), `{"k":` + strings.Repeat(`{"k":`, 70) + `1` + strings.Repeat("}", 71),
		string(chatBody()), "{\"\xff\":1}", `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok := valid(b)
		if ok != json.Valid(b) {
			t.Fatalf("Scanner reads %q as valid %v; json.Valid says %v", b, ok, !ok)
		}
		s := NewScanner(b)
		got := walk(t, &s)
		end := s.End()
		if end != ok {
			t.Fatalf("walking %q in place: End %v, Skip %v (%v)", b, end, ok, s.Err())
		}
		var se *SyntaxError
		if err := s.Err(); (err == nil) != ok || (err != nil && (!errors.As(err, &se) || se.Offset < 0 || se.Offset > len(b))) {
			t.Fatalf("Err() = %v for %q", err, b)
		}
		if !ok || !bytes.Equal(b, bytes.ToValidUTF8(b, []byte("\uFFFD"))) {
			return // encoding/json rewrites invalid UTF-8 in keys
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var want any
		if err := d.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("walking %q reads %#v; encoding/json reads %#v", b, got, want)
		}
	})
}

func TestScannerMembers(t *testing.T) {
	s := NewScanner([]byte(` {"a" : 1, "b\u0063":{"d":[true]}, "long` + strings.Repeat(`\u0078`, 70) + `":"x", "e":[] } `))
	var keys []string
	var vals []string
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		keys = append(keys, string(key))
		vals = append(vals, string(s.Skip()))
	}
	if !s.End() || s.Err() != nil {
		t.Fatalf("End: %v", s.Err())
	}
	wantKeys := []string{"a", "bc", "long" + strings.Repeat(`\u0078`, 70), "e"}
	wantVals := []string{"1", `{"d":[true]}`, `"x"`, "[]"}
	if !reflect.DeepEqual(keys, wantKeys) || !reflect.DeepEqual(vals, wantVals) {
		t.Fatalf("keys %q values %q", keys, vals)
	}
	// Member resumes in the middle of an object.
	body := []byte(`{"x":1,"usage":{"n":2},"y":3}`)
	s = NewScanner(body[7:])
	if key, ok := s.Member(); !ok || string(key) != "usage" || string(s.Skip()) != `{"n":2}` {
		t.Fatalf("Member: %q %v", key, ok)
	}
	if key, ok := s.NextMember(); !ok || string(key) != "y" || string(s.Skip()) != "3" {
		t.Fatalf("NextMember after Member: %q %v", key, ok)
	}
	if _, ok := s.NextMember(); ok || !s.End() {
		t.Fatalf("end of the resumed object: %v", s.Err())
	}
}

func TestScannerErrorsStick(t *testing.T) {
	s := NewScanner([]byte(`{"a":[1,}, "b":2}`))
	key, ok := s.FirstMember()
	if !ok || string(key) != "a" || s.Skip() != nil || !s.Failed() {
		t.Fatal("the bad array was not refused")
	}
	first := s.Err().Error()
	if _, ok := s.NextMember(); ok || s.Skip() != nil || s.End() || s.Peek() != 0 || s.FirstElement() || s.Err().Error() != first {
		t.Fatalf("calls after an error went on or changed it: %v, first %s", s.Err(), first)
	}
	if first != "unexpected '}': expected a value at byte 8" {
		t.Fatalf("error %q", first)
	}
	s.Reset([]byte(`[]`))
	if s.FirstElement() || !s.End() {
		t.Fatalf("after Reset: %v", s.Err())
	}
}

func TestParseInt(t *testing.T) {
	for raw, want := range map[string]int64{"0": 0, "-0": 0, "42": 42, "-9223372036854775808": -1 << 63, "9223372036854775807": 1<<63 - 1} {
		if n, ok := ParseInt([]byte(raw)); !ok || n != want {
			t.Errorf("ParseInt(%s) = %d, %v", raw, n, ok)
		}
	}
	for _, raw := range []string{"", "-", "1.0", "1e3", `"1"`, "true", "null", "9223372036854775808", "-9223372036854775809", "99999999999999999999999"} {
		if n, ok := ParseInt([]byte(raw)); ok {
			t.Errorf("ParseInt(%s) = %d", raw, n)
		}
	}
}

func TestScannerAllocs(t *testing.T) {
	chat := chatBody()
	bad := []byte(`{"a":[1,2,{"b":` + strings.Repeat("[", 100) + `}`)
	escaped := []byte(`{"mod\u0065l":"m","` + strings.Repeat(`\u0078`, 70) + `":1}`)
	if n := testing.AllocsPerRun(20, func() {
		for _, b := range [][]byte{chat, bad, escaped} {
			s := NewScanner(b)
			for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
				_ = key
				if s.Peek() == '[' {
					for ok := s.FirstElement(); ok; ok = s.NextElement() {
						s.Skip()
					}
					continue
				}
				s.Skip()
			}
			s.End()
		}
	}); n != 0 {
		t.Errorf("%v allocations walking documents", n)
	}
}
