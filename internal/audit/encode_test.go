package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The canonical encoding, and so every stored hash, is defined as
// encoding/json's output: AppendJSON must match it byte for byte.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	tricky := []string{"", "plain", "quote\" backslash\\", "new\nline\r\ttab", "\x00\x01\x1f\x7f", "<script>&amp;</script>",
		"\u2028\u2029", "héllo wörld ☃", "emoji 😀", "{\"type\":\"forged\"}", "\b\f"}
	at := time.Date(2026, 12, 1, 16, 0, 0, 123456789, time.UTC)
	var events []Event
	for i, s := range tricky {
		events = append(events, Event{Seq: uint64(i), Time: at.Add(time.Duration(i) * time.Second), Type: s, Actor: s, KeyID: s,
			Client: s, Resource: s, Decision: s, Reasons: []string{s, "x"}, Fields: map[string]string{s: s, "z": s, "a": "b"}, Prev: s, Hash: s})
	}
	events = append(events, Event{}, Event{Seq: 1 << 63, Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		Event{Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), Reasons: []string{}, Fields: map[string]string{}})
	for _, ev := range events {
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("auth.failure", "127.0.0.1", "k", "v", int64(0))
	f.Add("\u2028<>&\"\\\x00", "\xff\xfe", "é", "😀", int64(1e18))
	f.Fuzz(func(t *testing.T, typ, client, k, v string, nanos int64) {
		ev := Event{Seq: 7, Time: time.Unix(0, nanos), Type: typ, Client: client, Reasons: []string{v}, Fields: map[string]string{k: v}}
		normalize(&ev)
		want, err := json.Marshal(ev)
		if err != nil {
			t.Skip()
		}
		if got := ev.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkCanonical(b *testing.B) {
	ev := Event{Seq: 12345, Time: time.Now().UTC(), Type: "request", KeyID: "key_abcdef", Client: "203.0.113.9",
		Resource: "POST /v1/chat/completions", Decision: "allow",
		Fields: map[string]string{"status": "200", "request_id": "req_0123456789ab_1", "model": "gpt-4o-mini", "provider": "openai"},
		Prev:   "9c1e0000000000000000000000000000000000000000000000000000000000ff"}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = ev.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(ev)
		}
	})
}
