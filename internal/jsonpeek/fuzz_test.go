package jsonpeek

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// expectFields is the reference reading of a valid JSON object with
// encoding/json: keys matched exactly, the last duplicate winning. It reports
// the field Scan must refuse, if any.
func expectFields(t *testing.T, body []byte) (want Fields, modelRaw []byte, refuse string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("json.Valid body does not decode as an object: %v", err)
	}
	names := []string{"model", "stream", "max_tokens", "max_completion_tokens", "max_output_tokens"}
	for k := range m {
		for _, n := range names {
			if k != n && strings.EqualFold(k, n) {
				refuse = n
			}
		}
	}
	if raw, ok := m["model"]; ok {
		if raw[0] != '"' {
			refuse = "model"
		} else if err := json.Unmarshal(raw, &want.Model); err != nil {
			t.Fatal(err)
		}
		want.HasModel, modelRaw = true, raw
	}
	want.Stream = string(m["stream"]) == "true"
	first := true
	for _, n := range names[2:] {
		raw, ok := m[n]
		if !ok || string(raw) == "null" {
			continue
		}
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || v < 1 || v > MaxTokensCeiling {
			refuse = n
			continue
		}
		if first || v > want.MaxTokens {
			want.MaxTokens, first = v, false
		}
	}
	return want, modelRaw, refuse
}

// FuzzScan checks Scan against encoding/json: it accepts exactly the valid
// JSON objects (less those with a field it must refuse) and reads the same
// values encoding/json decodes.
func FuzzScan(f *testing.F) {
	seeds := []string{
		`{}`, ` { } `, `[]`, `"s"`, `1`, `null`, ``, `{`, `}`, `{"model":"gpt-4o"}`,
		`{"model":"gpt-4o","stream":true,"max_tokens":100}`,
		`{"messages":[{"role":"user","content":"hi","model":"x"}],"model":"m"}`,
		`{"model":"a\"b\\c\/d\u00e9\ud83d\ude00"}`, `{"model":"\ud800"}`, "{\"model\":\"\xff\"}",
		`{"mod\u0065l":"m"}`, `{"MODEL":"m"}`, "{\"max_to\u212aens\":1}", `{"model":"a","model":"b"}`,
		`{"stream":"true"}`, `{"stream":true,"stream":null}`, `{"max_tokens":1.0}`, `{"max_tokens":-0}`,
		`{"max_tokens":9223372036854775807,"max_output_tokens":-9223372036854775808}`,
		`{"max_completion_tokens":null,"max_tokens":3}`, `{"model":null}`, `{"model":1}`,
		`{"a":[1,2,{"b":[true,false,null,-1.5e-3,0,"\u0000"]}],"model":"m"}`,
		`{"a":[1,]}`, `{"a":{"b":1]}`, `{"a":"\x"}`, `{"a":01}`, `{"a":1e}`, `{"a":tru}`,
		`{"model":"m"} x`, `{"model":"m"}{}`, "{\"a\":\"\x01\"}", "\xef\xbb\xbf{}",
		`{"a":"\\","model":"m"}`, `{"a":"x\\\"y","model":"z"}`, `{"":1,"model":""}`,
		`{"a":` + strings.Repeat(`[{"b":`, 30) + `1` + strings.Repeat(`}]`, 30) + `}`,
		string(chatBody()),
		`{"model":"m","messages":[{"content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` +
			base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0x22, 0x5c}, 40)) + `"}}]}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Scan(body)
		valid := json.Valid(body)
		isObject := valid && bytes.TrimLeft(body, " \t\r\n")[0] == '{'
		if !isObject {
			if err == nil {
				t.Fatalf("Scan accepted %q, which is not a valid JSON object", body)
			}
			return
		}
		want, modelRaw, refuse := expectFields(t, body)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Field == "" || refuse == "" {
				t.Fatalf("Scan refused valid object %q: %v (expected refusal: %q)", body, err, refuse)
			}
			return
		}
		if refuse != "" {
			t.Fatalf("Scan accepted %q; it must refuse field %q", body, refuse)
		}
		want.ModelSpan = got.ModelSpan
		if ts := got.TurnsTail; ts.Start >= 0 {
			if ts.End > len(body) || ts.Start > ts.End || ts.End-ts.Start > TurnsTailBytes || body[ts.End-1] != ']' {
				t.Fatalf("Scan(%q): turns tail %+v is not the end of an array in the body", body, ts)
			}
		}
		want.TurnsTail = got.TurnsTail
		if got != want {
			t.Fatalf("Scan(%q) = %+v, encoding/json reads %+v", body, got, want)
		}
		if got.HasModel {
			if !bytes.Equal(body[got.ModelSpan.Start:got.ModelSpan.End], modelRaw) {
				t.Fatalf("ModelSpan %v covers %q, want %q", got.ModelSpan, body[got.ModelSpan.Start:got.ModelSpan.End], modelRaw)
			}
			out := ReplaceString(body, got.ModelSpan, "replaced/"+got.Model)
			g2, err := Scan(out)
			if err != nil || g2.Model != "replaced/"+got.Model || g2.Stream != got.Stream || g2.MaxTokens != got.MaxTokens {
				t.Fatalf("after ReplaceString: %+v, %v", g2, err)
			}
		} else if got.ModelSpan != (Span{-1, -1}) {
			t.Fatalf("ModelSpan %v without a model", got.ModelSpan)
		}
	})
}
