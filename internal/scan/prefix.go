package scan

import (
	"regexp/syntax"
	"unicode/utf8"
)

// undecided is a rule's pattern as a program that can be run on the bytes
// of a match that are here so far, to tell whether more bytes could still
// make it match. Go's regexp cannot say this: it reads one rune past the
// point of failure, so failing at the last byte looks the same as running
// out of bytes.
type undecided struct{ prog *syntax.Prog }

func newUndecided(pattern string) (*undecided, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	return &undecided{prog}, nil
}

// dead reports whether the pattern, run from the start of data, has no way
// left to match: every path through it failed on a byte of data, none
// reached its end, and none waits on what comes next.
func (u *undecided) dead(data []byte) bool {
	n := len(u.prog.Inst)
	cur, next := make([]uint32, 0, 16), make([]uint32, 0, 16)
	seen := make([]bool, n)
	prev := rune(-1)
	live := false // a path reached a match or depends on bytes not here
	var add func(list []uint32, pc uint32, at int) []uint32
	add = func(list []uint32, pc uint32, at int) []uint32 {
		if seen[pc] || live {
			return list
		}
		seen[pc] = true
		in := &u.prog.Inst[pc]
		switch in.Op {
		case syntax.InstMatch:
			live = true
		case syntax.InstAlt, syntax.InstAltMatch:
			list = add(list, in.Out, at)
			list = add(list, in.Arg, at)
		case syntax.InstCapture, syntax.InstNop:
			list = add(list, in.Out, at)
		case syntax.InstEmptyWidth:
			if at >= len(data) {
				live = true // decided by what comes next
				return list
			}
			r, _ := utf8.DecodeRune(data[at:])
			if syntax.EmptyOp(in.Arg)&^syntax.EmptyOpContext(prev, r) == 0 {
				list = add(list, in.Out, at)
			}
		case syntax.InstFail:
		default: // a rune instruction: it waits for the next rune
			list = append(list, pc)
		}
		return list
	}
	cur = add(cur, uint32(u.prog.Start), 0)
	for at := 0; at < len(data) && len(cur) > 0 && !live; {
		r, w := utf8.DecodeRune(data[at:])
		if r == utf8.RuneError && !utf8.FullRune(data[at:]) {
			return false // a rune cut by the end of what is here
		}
		clear(seen)
		next = next[:0]
		prev = r
		for _, pc := range cur {
			if in := &u.prog.Inst[pc]; in.MatchRune(r) {
				next = add(next, in.Out, at+w)
			}
		}
		at += w
		cur, next = next, cur
	}
	return !live && len(cur) == 0
}
