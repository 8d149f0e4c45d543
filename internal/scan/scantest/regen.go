package scantest

import (
	"math/rand/v2"
	"regexp/syntax"
	"strings"
)

// fromPattern returns a random string matching the RE2 pattern re, or of
// its capture group named group when group is not empty. Open repeats
// stay within a few characters of their minimum.
func fromPattern(rnd *rand.Rand, re, group string) string {
	t, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		panic("scantest: " + err.Error())
	}
	if group != "" {
		if g := findGroup(t, group); g != nil {
			t = g
		}
	}
	var b strings.Builder
	gen(rnd, t, &b)
	return b.String()
}

func findGroup(t *syntax.Regexp, name string) *syntax.Regexp {
	if t.Op == syntax.OpCapture && t.Name == name {
		return t.Sub[0]
	}
	for _, s := range t.Sub {
		if g := findGroup(s, name); g != nil {
			return g
		}
	}
	return nil
}

func gen(rnd *rand.Rand, t *syntax.Regexp, b *strings.Builder) {
	switch t.Op {
	case syntax.OpLiteral:
		for _, r := range t.Rune {
			if t.Flags&syntax.FoldCase != 0 && rnd.IntN(2) == 0 {
				r = []rune(strings.ToUpper(string(r)))[0]
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		b.WriteRune(pickRune(rnd, t.Rune))
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteByte("abcdefghijklmnop"[rnd.IntN(16)])
	case syntax.OpCapture:
		gen(rnd, t.Sub[0], b)
	case syntax.OpConcat:
		for _, s := range t.Sub {
			gen(rnd, s, b)
		}
	case syntax.OpAlternate:
		gen(rnd, t.Sub[rnd.IntN(len(t.Sub))], b)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := t.Min, t.Max
		switch t.Op {
		case syntax.OpStar:
			lo, hi = 0, 0
		case syntax.OpPlus:
			lo, hi = 1, 1
		case syntax.OpQuest:
			lo, hi = 0, 1
		}
		if hi < 0 || hi > lo+8 {
			hi = lo + 8
		}
		n := lo + rnd.IntN(hi-lo+1)
		for range n {
			gen(rnd, t.Sub[0], b)
		}
	}
}

// pickRune picks a printable ASCII rune from a class given as ranges.
func pickRune(rnd *rand.Rand, ranges []rune) rune {
	var opts []rune
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1] && r < 127; r++ {
			if r >= 33 {
				opts = append(opts, r)
			}
		}
	}
	if len(opts) == 0 {
		return 'a'
	}
	return opts[rnd.IntN(len(opts))]
}
