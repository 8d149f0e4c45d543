package gitleaksbench

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zricethezav/gitleaks/v8/detect"

	"github.com/keygate/keygate/internal/scan"
	"github.com/keygate/keygate/internal/scan/scantest"
)

// corpusMB is the corpus size: 100 MB unless KEYGATE_COMPARE_MB says
// otherwise.
func corpusMB() int {
	if v, err := strconv.Atoi(os.Getenv("KEYGATE_COMPARE_MB")); err == nil && v > 0 {
		return v
	}
	return 100
}

var (
	corpusOnce sync.Once
	corpus     *scantest.Corpus
)

// theCorpus generates the labelled corpus once per run: every keygate rule
// planted 30 times, 40 rounds of near misses, in source-like filler.
func theCorpus() *scantest.Corpus {
	corpusOnce.Do(func() {
		corpus = scantest.NewGen(2024).Corpus(scantest.Options{PerRule: 30, NearMisses: 40, Filler: corpusMB() << 20, FileSize: 48 << 10})
	})
	return corpus
}

func keygateScan(m *scan.Matcher, files []scantest.File) []scantest.Found {
	var out []scantest.Found
	for _, f := range files {
		for _, fd := range scan.FindingsIn(m, f.Path, f.Data) {
			out = append(out, scantest.Found{File: f.Path, Line: fd.Line, Secret: fd.Secret.Reveal(), Family: fd.Family})
		}
	}
	return out
}

func gitleaksScan(d *detect.Detector, files []scantest.File) []scantest.Found {
	var out []scantest.Found
	for _, f := range files {
		for _, fd := range d.Detect(detect.Fragment{Raw: string(f.Data), FilePath: f.Path}) {
			// gitleaks counts lines from 0 here; labels count from 1.
			out = append(out, scantest.Found{File: f.Path, Line: fd.StartLine + 1, Secret: fd.Secret, Family: "gitleaks:" + fd.RuleID})
		}
	}
	return out
}

func newGitleaks(t testing.TB) *detect.Detector {
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCompareWithGitleaks runs both scanners, one file at a time on one
// goroutine each, over the same corpus of at least 100 MB, and reports
// their speed, recall and precision. It asserts what is not a timing:
// keygate's recall is at least gitleaks' and its precision at least 0.90.
// The speed figures are reported (see also the benchmarks below).
func TestCompareWithGitleaks(t *testing.T) {
	c := theCorpus()
	m, err := scan.NewMatcher(scan.Rules())
	if err != nil {
		t.Fatal(err)
	}
	d := newGitleaks(t)
	runtime.GC()
	t0 := time.Now()
	kg := keygateScan(m, c.Files)
	kt := time.Since(t0)
	runtime.GC()
	t0 = time.Now()
	gl := gitleaksScan(d, c.Files)
	gt := time.Since(t0)

	ks, gs := scantest.Evaluate(c, kg), scantest.Evaluate(c, gl)
	mb := float64(c.Size()) / (1 << 20)
	t.Logf("corpus: %d files, %.1f MiB, %d labels (%d credentials, the rest near misses)", len(c.Files), mb, len(c.Labels), ks["all"].Labels)
	t.Logf("keygate:  %6.2fs  %7.1f MiB/s  recall %.4f  precision %.4f  (found %d, false positives %d)",
		kt.Seconds(), mb/kt.Seconds(), ks["all"].Recall(), ks["all"].Precision(), ks["all"].Found, ks["all"].FalsePositives)
	t.Logf("gitleaks: %6.2fs  %7.1f MiB/s  recall %.4f  precision %.4f  (found %d, false positives %d)",
		gt.Seconds(), mb/gt.Seconds(), gs["all"].Recall(), gs["all"].Precision(), gs["all"].Found, gs["all"].FalsePositives)
	t.Logf("keygate is %.1fx faster", gt.Seconds()/kt.Seconds())

	// Per family, where the two differ.
	var fams []string
	for f := range ks {
		fams = append(fams, f)
	}
	sort.Strings(fams)
	var b strings.Builder
	for _, f := range fams {
		k := ks[f]
		g := gs[f]
		if g == nil {
			g = &scantest.Score{Labels: k.Labels}
		}
		if k.Labels > 0 && (k.Recall() != g.Recall()) {
			fmt.Fprintf(&b, "  %-14s keygate recall %.2f  gitleaks recall %.2f\n", f, k.Recall(), g.Recall())
		}
	}
	t.Logf("families where recall differs:\n%s", b.String())
	fpByRule := map[string]int{}
	for f, s := range gs {
		if strings.HasPrefix(f, "gitleaks:") {
			fpByRule[f] += s.FalsePositives
		}
	}
	t.Logf("gitleaks false positives by rule: %v", fpByRule)

	if ks["all"].Recall() < gs["all"].Recall() {
		t.Errorf("keygate recall %.4f is below gitleaks' %.4f", ks["all"].Recall(), gs["all"].Recall())
	}
	if ks["all"].Precision() < 0.90 {
		t.Errorf("keygate precision %.4f; want at least 0.90", ks["all"].Precision())
	}
	if c.Size() < 100<<20 && corpusMB() >= 100 {
		t.Errorf("the corpus is %d bytes; want at least 100 MB", c.Size())
	}
}

// BenchmarkScan measures both scanners side by side on the same 8 MiB of
// the corpus, in MB/s.
func BenchmarkScan(b *testing.B) {
	c := scantest.NewGen(7).Corpus(scantest.Options{PerRule: 2, NearMisses: 4, Filler: 8 << 20, FileSize: 48 << 10})
	size := int64(c.Size())
	b.Run("keygate", func(b *testing.B) {
		m, err := scan.NewMatcher(scan.Rules())
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for b.Loop() {
			keygateScan(m, c.Files)
		}
	})
	b.Run("gitleaks", func(b *testing.B) {
		d := newGitleaks(b)
		b.SetBytes(size)
		for b.Loop() {
			gitleaksScan(d, c.Files)
		}
	})
}
