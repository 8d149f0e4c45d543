package scan_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/scan"
	"github.com/keygate/keygate/internal/scan/scantest"
)

// scanCorpus runs the built-in rules over every corpus file.
func scanCorpus(t testing.TB, m *scan.Matcher, c *scantest.Corpus) []scantest.Found {
	var found []scantest.Found
	for _, f := range c.Files {
		for _, fd := range scan.FindingsIn(m, f.Path, f.Data) {
			found = append(found, scantest.Found{File: fd.File, Line: fd.Line, Secret: fd.Secret.Reveal(), Family: fd.Family})
		}
	}
	return found
}

// TestRulesCover checks the rule set's breadth: at least 100 formats,
// covering the issuers agents hold keys for.
func TestRulesCover(t *testing.T) {
	rs := scan.Rules()
	if len(rs) < 100 {
		t.Fatalf("%d rules; want at least 100", len(rs))
	}
	fam := map[string]bool{}
	for _, r := range rs {
		fam[r.Family] = true
	}
	for _, f := range []string{"openai", "anthropic", "google", "groq", "xai", "openrouter", "mistral", "deepseek", "huggingface",
		"replicate", "perplexity", "cohere", "together", "aws", "azure", "github", "gitlab", "slack", "stripe", "twilio",
		"sendgrid", "private-key", "jwt", "database", "keygate", "generic"} {
		if !fam[f] {
			t.Errorf("no rule for %s", f)
		}
	}
}

// TestCorpusRecallPrecision plants generated credentials of every rule and
// near misses of many in source-like files and asserts recall and
// precision per rule family.
func TestCorpusRecallPrecision(t *testing.T) {
	g := scantest.NewGen(1)
	c := g.Corpus(scantest.Options{PerRule: 20, NearMisses: 20, Filler: 4 << 20})
	m, err := scan.NewMatcher(scan.Rules())
	if err != nil {
		t.Fatal(err)
	}
	found := scanCorpus(t, m, c)
	scores := scantest.Evaluate(c, found)
	var fams []string
	for f := range scores {
		fams = append(fams, f)
	}
	sort.Strings(fams)
	var report strings.Builder
	for _, f := range fams {
		s := scores[f]
		fmt.Fprintf(&report, "%-14s labels=%4d found=%4d fp=%3d recall=%.3f precision=%.3f\n", f, s.Labels, s.Found, s.FalsePositives, s.Recall(), s.Precision())
		if s.Recall() < 0.95 || s.Precision() < 0.95 {
			t.Errorf("family %s: recall %.3f, precision %.3f; want both at least 0.95", f, s.Recall(), s.Precision())
		}
	}
	t.Logf("corpus: %d files, %d bytes, %d labels\n%s", len(c.Files), c.Size(), len(c.Labels), report.String())
	if t.Failed() {
		for i, l := range scantest.Missed(c, found) {
			if i < 30 {
				t.Logf("missed %s (%s) at %s:%d", l.Rule, l.Family, l.File, l.Line)
			}
		}
		fps := 0
		labelled := map[string]bool{}
		for _, l := range c.Labels {
			if l.Positive {
				labelled[fmt.Sprintf("%s:%d", l.File, l.Line)] = true
			}
		}
		for _, f := range found {
			if !labelled[fmt.Sprintf("%s:%d", f.File, f.Line)] && fps < 30 {
				fps++
				t.Logf("false positive %s at %s:%d: %.12q", f.Family, f.File, f.Line, f.Secret)
			}
		}
	}
}
