package jsonpeek

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		model  string
		has    bool
		stream bool
		max    int64
	}{
		{"minimal", `{"model":"gpt-4o"}`, "gpt-4o", true, false, 0},
		{"empty object", `{}`, "", false, false, 0},
		{"empty object spaced", " \t\r\n{ \n } \n", "", false, false, 0},
		{"no model", `{"messages":[]}`, "", false, false, 0},
		{"empty model", `{"model":""}`, "", true, false, 0},
		{"typical chat", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":256}`,
			"gpt-4o-mini", true, true, 256},
		{"whitespace everywhere", "\n {\n\t\"model\" \r\n:\t \"claude-sonnet-4-5\" ,\n \"stream\"  :  true , \"max_tokens\" :\n1024\n}\n\t",
			"claude-sonnet-4-5", true, true, 1024},
		{"nested model keys ignored", `{"messages":[{"model":"evil","stream":true,"max_tokens":9}],"model":"good","metadata":{"model":"evil2"}}`,
			"good", true, false, 0},
		{"nested model after top-level", `{"model":"good","tools":[{"function":{"name":"model","parameters":{"model":{"type":"string"}}}}]}`,
			"good", true, false, 0},
		{"model key inside string", `{"content":"\"model\":\"evil\"","model":"good"}`, "good", true, false, 0},
		{"escaped quotes in strings", `{"messages":[{"content":"say \"hi\" \\ and \\\"more\\\""}],"model":"m"}`, "m", true, false, 0},
		{"backslash before closing quote", `{"a":"\\","model":"m"}`, "m", true, false, 0},
		{"unicode escape in model", `{"model":"gpt-\u0034o"}`, "gpt-4o", true, false, 0},
		{"escaped slash in model", `{"model":"openai\/gpt-4o"}`, "openai/gpt-4o", true, false, 0},
		{"surrogate pair in model", `{"model":"m\ud83d\ude00"}`, "m\U0001F600", true, false, 0},
		{"lone surrogate in model", `{"model":"m\ud800x"}`, "m\uFFFDx", true, false, 0},
		{"raw utf8 in model", `{"model":"modèle-日本"}`, "modèle-日本", true, false, 0},
		{"invalid utf8 in model", "{\"model\":\"m\xffx\"}", "m\uFFFDx", true, false, 0},
		{"escaped key", `{"mod\u0065l":"m","str\u0065am":true}`, "m", true, true, 0},
		{"duplicate model last wins", `{"model":"first","model":"second"}`, "second", true, false, 0},
		{"duplicate stream last wins", `{"stream":true,"stream":false}`, "", false, false, 0},
		{"stream false", `{"stream":false}`, "", false, false, 0},
		{"stream string", `{"stream":"true"}`, "", false, false, 0},
		{"stream one", `{"stream":1}`, "", false, false, 0},
		{"stream null", `{"stream":null}`, "", false, false, 0},
		{"stream object", `{"stream":{"a":true}}`, "", false, false, 0},
		{"max_completion_tokens", `{"max_completion_tokens":4096}`, "", false, false, 4096},
		{"max_output_tokens", `{"max_output_tokens":77}`, "", false, false, 77},
		{"largest max wins", `{"max_tokens":10,"max_completion_tokens":300,"max_output_tokens":20}`, "", false, false, 300},
		{"max null is absent", `{"max_tokens":null}`, "", false, false, 0},
		{"max null after value", `{"max_tokens":5,"max_tokens":null,"max_output_tokens":3}`, "", false, false, 3},
		{"largest accepted max", `{"max_tokens":10000000}`, "", false, false, MaxTokensCeiling},
		{"numbers", `{"a":0,"b":-0.5,"c":1e10,"d":1E-2,"e":-12.5e+3,"model":"m"}`, "m", true, false, 0},
		{"literals", `{"a":true,"b":false,"c":null,"d":[true,false,null],"model":"m"}`, "m", true, false, 0},
		{"arrays of objects", `{"messages":[{"role":"system","content":"x"},{"role":"user","content":[{"type":"text","text":"y"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"model":"m"}`,
			"m", true, false, 0},
		{"empty containers", `{"a":{},"b":[],"c":[{}],"d":[[]],"model":"m"}`, "m", true, false, 0},
		{"deep nesting", `{"a":` + strings.Repeat(`[{"b":`, 500) + `1` + strings.Repeat(`}]`, 500) + `,"model":"m"}`, "m", true, false, 0},
		{"long key", `{"` + strings.Repeat("k", 100) + `":1,"model":"m"}`, "m", true, false, 0},
		{"long escaped key", `{"` + strings.Repeat(`\u006b`, 40) + `":1,"model":"m"}`, "m", true, false, 0},
		{"control escapes", `{"a":"\b\f\n\r\t\u0000","model":"m"}`, "m", true, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Scan([]byte(tt.body))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if f.Model != tt.model || f.HasModel != tt.has || f.Stream != tt.stream || f.MaxTokens != tt.max {
				t.Fatalf("got model=%q has=%v stream=%v max=%d; want %q %v %v %d",
					f.Model, f.HasModel, f.Stream, f.MaxTokens, tt.model, tt.has, tt.stream, tt.max)
			}
			if !json.Valid([]byte(tt.body)) {
				t.Fatalf("test body is not valid JSON")
			}
			if !f.HasModel {
				if f.ModelSpan != (Span{-1, -1}) {
					t.Fatalf("ModelSpan = %v without a model", f.ModelSpan)
				}
				return
			}
			var got string
			if err := json.Unmarshal([]byte(tt.body[f.ModelSpan.Start:f.ModelSpan.End]), &got); err != nil || got != tt.model {
				t.Fatalf("span %v holds %q (%v)", f.ModelSpan, tt.body[f.ModelSpan.Start:f.ModelSpan.End], err)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		offset int
		msg    string
		field  string
	}{
		{"empty", ``, 0, "empty body", ""},
		{"only spaces", "   ", 3, "empty body", ""},
		{"array top level", `[{"model":"m"}]`, 0, "not a JSON object", ""},
		{"string top level", `"model"`, 0, "not a JSON object", ""},
		{"number top level", `42`, 0, "not a JSON object", ""},
		{"null top level", `null`, 0, "not a JSON object", ""},
		{"bom", "\xef\xbb\xbf{}", 0, "not a JSON object", ""},
		{"unterminated object", `{"model":"m"`, 12, "expected ',' or '}'", ""},
		{"unterminated string", `{"model":"m}`, 9, "unterminated string", ""},
		{"unterminated key", `{"mod`, 1, "unterminated string", ""},
		{"unterminated nested string", `{"a":["x`, 6, "unterminated string", ""},
		{"escaped closing quote", `{"a":"x\"}`, 5, "unterminated string", ""},
		{"missing colon", `{"model" "m"}`, 9, "expected ':'", ""},
		{"missing comma", `{"a":1 "model":"m"}`, 7, "expected ',' or '}'", ""},
		{"missing nested comma", `{"a":[1 2]}`, 8, "expected ',' or ']'", ""},
		{"missing nested object comma", `{"a":{"b":1 "c":2}}`, 12, "expected ',' or '}'", ""},
		{"trailing comma", `{"a":1,}`, 7, "expected a string object key", ""},
		{"trailing comma nested", `{"a":[1,]}`, 8, "expected a value", ""},
		{"unbalanced close", `{"a":[1}}`, 7, "expected ',' or ']'", ""},
		{"unbalanced open", `{"a":[[1]}`, 9, "expected ',' or ']'", ""},
		{"mismatched", `{"a":{"b":1]}`, 11, "expected ',' or '}'", ""},
		{"unterminated nested", `{"a":[{"b":1}`, 13, "unexpected end of body", ""},
		{"trailing garbage", `{"model":"m"} x`, 14, "unexpected data after", ""},
		{"two objects", `{}{}`, 2, "unexpected data after", ""},
		{"non-string key", `{1:2}`, 1, "expected a string object key", ""},
		{"nested non-string key", `{"a":{b:1}}`, 6, "expected a string object key", ""},
		{"control char in string", "{\"a\":\"x\ny\"}", 7, "control character", ""},
		{"bad escape", `{"a":"\x"}`, 6, "invalid escape", ""},
		{"bad unicode escape", `{"a":"\u12g4"}`, 6, "invalid \\u escape", ""},
		{"bad literal", `{"a":tru}`, 5, "invalid literal", ""},
		{"capital literal", `{"a":True}`, 5, "invalid character", ""},
		{"NaN", `{"a":NaN}`, 5, "invalid character", ""},
		{"leading zero", `{"a":01}`, 6, "expected ',' or '}'", ""},
		{"bare minus", `{"a":-}`, 5, "malformed number", ""},
		{"bare dot", `{"a":1.}`, 5, "malformed number", ""},
		{"bare exponent", `{"a":1e}`, 5, "malformed number", ""},
		{"plus sign", `{"a":+1}`, 5, "invalid character", ""},
		{"missing value", `{"a":}`, 5, "expected a value", ""},
		{"single quotes", `{'model':'m'}`, 1, "expected a string object key", ""},
		{"model number", `{"model":42}`, 9, "model must be a string", "model"},
		{"model null", `{"model":null}`, 9, "model must be a string", "model"},
		{"model object", `{"model":{"id":"m"}}`, 9, "model must be a string", "model"},
		{"model array", `{"model":["m"]}`, 9, "model must be a string", "model"},
		{"max float", `{"max_tokens":1.5}`, 14, "max_tokens must be a whole number from 1 to 10000000", "max_tokens"},
		{"max exponent", `{"max_completion_tokens":1e3}`, 25, "max_completion_tokens must be a whole number", "max_completion_tokens"},
		{"max string", `{"max_output_tokens":"100"}`, 21, "max_output_tokens must be a whole number", "max_output_tokens"},
		{"max overflow", `{"max_tokens":9223372036854775808}`, 14, "max_tokens must be a whole number", "max_tokens"},
		{"max int64", `{"max_tokens":9223372036854775807}`, 14, "max_tokens must be a whole number", "max_tokens"},
		{"max above the ceiling", `{"max_tokens":10000001}`, 14, "max_tokens must be a whole number", "max_tokens"},
		{"max that wraps a price", `{"max_completion_tokens":1844674407370955}`, 25, "max_completion_tokens must be a whole number", "max_completion_tokens"},
		{"negative max", `{"max_tokens":-1}`, 14, "max_tokens must be a whole number", "max_tokens"},
		{"min int64", `{"max_tokens":-9223372036854775808}`, 14, "max_tokens must be a whole number", "max_tokens"},
		{"zero max", `{"max_output_tokens":0}`, 21, "max_output_tokens must be a whole number", "max_output_tokens"},
		{"negative max hidden behind a larger one", `{"max_tokens":-5,"max_completion_tokens":100}`, 14, "max_tokens must be a whole number", "max_tokens"},
		{"upper-case model key", `{"model":"cheap","MODEL":"expensive"}`, 17, `differs from "model" only in letter case`, "model"},
		{"mixed-case stream key", `{"Stream":true}`, 1, `differs from "stream"`, "stream"},
		{"escaped upper-case key", `{"mod\u0045l":"x"}`, 1, `differs from "model"`, "model"},
		{"kelvin sign key", "{\"max_to\u212aens\":1}", 1, `differs from "max_tokens"`, "max_tokens"},
		{"long s key", "{\"\u017ftream\":true}", 1, `differs from "stream"`, "stream"},
		{"too deep", `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, 5 + MaxDepth - 1, "nesting deeper", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Scan([]byte(tt.body))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Scan error = %v, want a *SyntaxError", err)
			}
			if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) || se.Field != tt.field {
				t.Fatalf("got %q (offset %d, field %q); want %q at %d, field %q", se.Error(), se.Offset, se.Field, tt.msg, tt.offset, tt.field)
			}
			if f != (Fields{ModelSpan: Span{-1, -1}, TurnsTail: Span{-1, -1}}) {
				t.Fatalf("fields not zero on error: %+v", f)
			}
		})
	}
}

func TestScanDepthLimitMatchesEncodingJSON(t *testing.T) {
	for _, depth := range []int{MaxDepth, MaxDepth + 1} {
		inner := depth - 1 // the top-level object is one level
		body := []byte(`{"a":` + strings.Repeat("[", inner) + strings.Repeat("]", inner) + `,"model":"m"}`)
		_, err := Scan(body)
		if (err == nil) != json.Valid(body) {
			t.Fatalf("depth %d: Scan error %v, json.Valid %v", depth, err, json.Valid(body))
		}
	}
}

func TestScanErrorHidesBody(t *testing.T) {
	const secretText = "test-secret-prompt-text"
	for _, body := range []string{
		`{"a":"` + secretText + `" ` + secretText + `}`,
		`{"model":` + secretText + `}`,
		`{"max_tokens":"` + secretText + `"}`,
		`{"` + secretText + `":tru}`,
	} {
		_, err := Scan([]byte(body))
		if err == nil || strings.Contains(err.Error(), secretText) || strings.Contains(err.Error(), "test-secret") {
			t.Fatalf("error %v for %q", err, body)
		}
	}
}

func TestReplaceString(t *testing.T) {
	tests := []struct {
		body, value, want string
	}{
		{`{"model":"openai/gpt-4o","stream":true}`, "gpt-4o", `{"model":"gpt-4o","stream":true}`},
		{`{ "model" : "p/m" }`, "m", `{ "model" : "m" }`},
		{`{"model":"x"}`, `a"b\c`, `{"model":"a\"b\\c"}`},
		{`{"model":"x"}`, "tab\there\nline", `{"model":"tab\there\nline"}`},
		{`{"model":"x"}`, "<&>", `{"model":"\u003c\u0026\u003e"}`},
		{`{"model":"x"}`, "bad\xffutf8", `{"model":"bad\ufffdutf8"}`},
		{`{"model":"x"}`, "sep\u2028\u2029", `{"model":"sep\u2028\u2029"}`},
		{`{"model":"x"}`, "日本語", `{"model":"日本語"}`},
		{`{"model":"x"}`, "", `{"model":""}`},
		{`{"model":"o\u0070enai/m","model":"keep"}`, "new", `{"model":"o\u0070enai/m","model":"new"}`},
	}
	for _, tt := range tests {
		f, err := Scan([]byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		orig := []byte(tt.body)
		got := ReplaceString(orig, f.ModelSpan, tt.value)
		if string(got) != tt.want {
			t.Errorf("ReplaceString(%q, %q) = %s, want %s", tt.body, tt.value, got, tt.want)
		}
		if string(orig) != tt.body {
			t.Errorf("ReplaceString modified its input")
		}
		g, err := Scan(got)
		if err != nil || g.Model != strings.ToValidUTF8(tt.value, "\uFFFD") {
			t.Errorf("rescan of %s: model %q, err %v", got, g.Model, err)
		}
	}
}

func TestReplaceStringBadSpanPanics(t *testing.T) {
	for _, sp := range []Span{{-1, -1}, {3, 2}, {0, 100}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("span %v: no panic", sp)
				}
			}()
			ReplaceString([]byte(`{"model":"x"}`), sp, "y")
		}()
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "gpt-4o", `a"b\c`, "\x00\x1f\x7f", "<>&", "\u2028\u2029", "\xff\xfe", "日本", "\U0001F600", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAllocs(t *testing.T) {
	chat := chatBody()
	noModel := bytes.Replace(chat, []byte(`"model"`), []byte(`"modex"`), 1)
	big := bigBody(1 << 20)
	for _, tc := range []struct {
		name string
		body []byte
		max  float64
	}{
		{"chat", chat, 1}, // the model string
		{"no model", noModel, 0},
		{"1 MB", big, 1},
		{"escaped model", []byte(`{"model":"gpt-\u0034o","MaxTokenz":1}`), 1},
	} {
		if n := testing.AllocsPerRun(20, func() { _, _ = Scan(tc.body) }); n > tc.max {
			t.Errorf("%s: %v allocs per Scan, want at most %v", tc.name, n, tc.max)
		}
	}
}

// TestScanTurnsTail: the end of a conversation is the last TurnsTailBytes
// of its turns, whatever the API calls them; a conversation that repeats
// its last steps ends in the same bytes however long its history.
func TestScanTurnsTail(t *testing.T) {
	step := `{"role":"assistant","content":"run the tests"},{"role":"tool","content":"FAIL: TestRetry (0.00s) expected 3 attempts, got 1; the same failure as before, nothing changed"},`
	history := func(n int) string {
		return `{"role":"user","content":"fix the flaky retry test"},` + strings.Repeat(step, n)
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"messages", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, `[{"role":"user","content":"hi"}]`},
		{"input", `{"model":"m","input":[{"role":"user","content":"hi"}],"stream":true}`, `[{"role":"user","content":"hi"}]`},
		{"contents", `{"contents":[{"parts":[{"text":"hi"}]}]}`, `[{"parts":[{"text":"hi"}]}]`},
		{"input as a string", `{"model":"m","input":"hi"}`, ""},
		{"none", `{"model":"m","prompt":"hi"}`, ""},
	} {
		f, err := Scan([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := ""
		if f.TurnsTail.Start >= 0 {
			got = tc.body[f.TurnsTail.Start:f.TurnsTail.End]
		}
		if got != tc.want {
			t.Fatalf("%s: tail %q, want %q", tc.name, got, tc.want)
		}
	}
	tail := func(n int) string {
		body := `{"model":"m","messages":[` + strings.TrimSuffix(history(n), ",") + `]}`
		f, err := Scan([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if f.TurnsTail.End-f.TurnsTail.Start != TurnsTailBytes {
			t.Fatalf("a long conversation's tail is %d bytes", f.TurnsTail.End-f.TurnsTail.Start)
		}
		return body[f.TurnsTail.Start:f.TurnsTail.End]
	}
	if tail(8) != tail(20) {
		t.Fatal("a conversation repeating its last steps ends differently as it grows")
	}
	other := `{"model":"m","messages":[` + history(8) + `{"role":"tool","content":"ok: all tests pass"}]}`
	f, _ := Scan([]byte(other))
	if other[f.TurnsTail.Start:f.TurnsTail.End] == tail(8) {
		t.Fatal("a conversation that moved on ends like one that repeats")
	}
}
