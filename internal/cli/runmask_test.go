package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestMasker: secrets are concealed whole, however the stream is cut into
// writes; text that only begins like a secret comes through unchanged.
func TestMasker(t *testing.T) {
	const a, b = "kgl_SECRETVALUEONE", "SECRETVALUE" // b inside a: the longer wins
	for _, c := range []struct {
		writes []string
		want   string
	}{
		{[]string{"x " + a + " y"}, "x " + maskText + " y"},
		{[]string{"x kgl_SEC", "RETVALUEONE y"}, "x " + maskText + " y"},
		{[]string{"k", "g", "l", "_SECRETVALUEONE"}, maskText},
		{[]string{"kgl_SECRET", "S and more"}, "kgl_SECRETS and more"},
		{[]string{"only " + b}, "only " + maskText},
		{[]string{a + a}, maskText + maskText},
		{[]string{"ends with kgl_SEC"}, "ends with kgl_SEC"},
		{[]string{"nothing to see"}, "nothing to see"},
	} {
		var out bytes.Buffer
		set := &maskSet{}
		set.add(a)
		set.add(b)
		set.add("abc") // too short to mask
		m := newMasker(&out, set)
		for _, w := range c.writes {
			if n, err := m.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		m.Close()
		if out.String() != c.want {
			t.Errorf("%q: got %q, want %q", c.writes, out.String(), c.want)
		}
	}
}

// TestMaskerAddsDuringRun: a credential made while the command runs is
// masked from then on.
func TestMaskerAddsDuringRun(t *testing.T) {
	var out bytes.Buffer
	set := &maskSet{}
	m := newMasker(&out, set)
	m.Write([]byte("kgl_later "))
	set.add("kgl_later")
	m.Write([]byte("kgl_later\n"))
	m.Close()
	if got := out.String(); got != "kgl_later "+maskText+"\n" || strings.Count(got, maskText) != 1 {
		t.Errorf("got %q", got)
	}
}
