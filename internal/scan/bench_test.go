package scan_test

import (
	"testing"

	"github.com/keygate/keygate/internal/scan"
	"github.com/keygate/keygate/internal/scan/scantest"
)

// BenchmarkMatcher measures the scanner over a generated corpus of
// source-like files with credentials planted, one goroutine.
func BenchmarkMatcher(b *testing.B) {
	c := scantest.NewGen(3).Corpus(scantest.Options{PerRule: 2, NearMisses: 2, Filler: 8 << 20, FileSize: 48 << 10})
	m, err := scan.NewMatcher(scan.Rules())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(c.Size()))
	for b.Loop() {
		for _, f := range c.Files {
			scan.FindingsIn(m, f.Path, f.Data)
		}
	}
}
