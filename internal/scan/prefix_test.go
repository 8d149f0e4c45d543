package scan_test

import (
	"testing"

	"github.com/keygate/keygate/internal/scan"
	"github.com/keygate/keygate/internal/scan/scantest"
)

// TestUndecidedNeverDropsARealMatch: for every credential the matcher
// finds in a generated corpus, no beginning of it is judged unable to
// match, and text that breaks a format is judged dead within a byte.
func TestUndecidedNeverDropsARealMatch(t *testing.T) {
	m, err := scan.NewMatcher(scan.Rules())
	if err != nil {
		t.Fatal(err)
	}
	c := scantest.NewGen(7).Corpus(scantest.Options{PerRule: 3, Filler: 256 << 10, FileSize: 32 << 10})
	checked := 0
	for _, f := range c.Files {
		for _, x := range m.Find(f.Data) {
			if _, ok := m.Dead(x.Rule.ID, nil); !ok {
				continue
			}
			for l := 0; l <= x.End-x.Start; l++ {
				if dead, _ := m.Dead(x.Rule.ID, f.Data[x.Start:x.Start+l]); dead {
					t.Fatalf("%s: %q judged dead, but %q matches", x.Rule.ID, f.Data[x.Start:x.Start+l], f.Data[x.Start:x.End])
				}
			}
			checked++
		}
	}
	if checked < 200 {
		t.Fatalf("only %d matches checked", checked)
	}
	for _, tc := range []struct {
		rule, text string
		dead       bool
	}{
		{"airtable-pat", "path ", true},
		{"airtable-pat", "patAbc", false},
		{"github-pat", "ghp_abc-", true},
		{"github-pat", "ghp_abc", false},
		{"slack-bot-token", "xoxb-", false},
	} {
		if got, ok := m.Dead(tc.rule, []byte(tc.text)); !ok || got != tc.dead {
			t.Errorf("%s on %q: dead %v (known %v), want %v", tc.rule, tc.text, got, ok, tc.dead)
		}
	}
}
