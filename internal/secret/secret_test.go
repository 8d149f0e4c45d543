package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const canary = "canary-value-not-a-real-key-7f3a"

func TestStringNeverPrintsItsValue(t *testing.T) {
	s := New(canary)
	type wrapper struct {
		Key  String
		Ptr  *String
		Name string
	}
	w := wrapper{Key: s, Ptr: &s, Name: "x"}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, w), fmt.Sprintf(verb, &s))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(s), s.String(), s.GoString())
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(js))
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("msg", "key", s, "w", w, "ptr", &s)
	}
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, canary) || strings.Contains(o, fmt.Sprintf("%x", canary)) {
			t.Fatalf("secret leaked in %q", o)
		}
	}
	if !strings.Contains(string(js), Redacted) {
		t.Fatalf("JSON should show the redacted marker, got %s", js)
	}
}

func TestRevealAndEqual(t *testing.T) {
	s := New(canary)
	if s.Reveal() != canary {
		t.Fatal("Reveal must return the value")
	}
	if !s.Equal(New(canary)) || s.Equal(New(canary+"x")) || s.Equal(String{}) {
		t.Fatal("Equal is wrong")
	}
	if !(String{}).IsZero() || s.IsZero() {
		t.Fatal("IsZero is wrong")
	}
}
