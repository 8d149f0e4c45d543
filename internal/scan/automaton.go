package scan

import (
	"fmt"
	"sort"
)

// automaton finds every occurrence of a set of literal anchors in one pass
// over the input, ASCII case folded: an Aho-Corasick automaton compiled to
// a dense transition table over byte classes. Every input byte costs two
// table loads whatever the number of anchors, so matching is linear in the
// input and independent of the rule count; the rules' own checks run only
// where an anchor occurs.
//
// Bytes that occur in no anchor share class 0, and upper-case letters share
// the class of their lower-case form, which keeps the table small enough to
// stay in cache (a few hundred states times a few dozen classes).
type automaton struct {
	class   [256]uint8 // byte -> class
	classes int
	next    []int32 // state*classes + class -> state
	outAt   []int32 // state -> first index in outs; outAt[s+1] ends it
	outs    []int32 // anchor ids, grouped by state
	lens    []int32 // anchor id -> length
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// newAutomaton compiles anchors; ids are their indexes. Anchors must be
// non-empty.
func newAutomaton(anchors []string) (*automaton, error) {
	a := &automaton{lens: make([]int32, len(anchors))}
	// Byte classes: one per distinct folded byte used by any anchor.
	var used [256]bool
	for i, s := range anchors {
		if s == "" {
			return nil, fmt.Errorf("scan: anchor %d is empty", i)
		}
		a.lens[i] = int32(len(s))
		for j := 0; j < len(s); j++ {
			used[lower(s[j])] = true
		}
	}
	n := 1
	for c := 0; c < 256; c++ {
		if used[c] {
			a.class[c] = uint8(n)
			n++
		}
	}
	if n > 256 {
		return nil, fmt.Errorf("scan: anchors use too many distinct bytes")
	}
	for c := 'A'; c <= 'Z'; c++ {
		a.class[c] = a.class[c+'a'-'A']
	}
	a.classes = n

	// Trie.
	type node struct {
		next map[uint8]int32
		out  []int32
		fail int32
	}
	nodes := []node{{next: map[uint8]int32{}}}
	for id, s := range anchors {
		st := int32(0)
		for j := 0; j < len(s); j++ {
			k := a.class[s[j]]
			nx, ok := nodes[st].next[k]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, node{next: map[uint8]int32{}})
				nodes[st].next[k] = nx
			}
			st = nx
		}
		nodes[st].out = append(nodes[st].out, int32(id))
	}
	// Breadth-first: failure links, inherited outputs and the full
	// transition table.
	a.next = make([]int32, len(nodes)*n)
	queue := make([]int32, 0, len(nodes))
	for k := 1; k < n; k++ {
		if nx, ok := nodes[0].next[uint8(k)]; ok {
			nodes[nx].fail = 0
			a.next[k] = nx
			queue = append(queue, nx)
		}
	}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		f := nodes[st].fail
		nodes[st].out = append(nodes[st].out, nodes[f].out...)
		for k := 0; k < n; k++ {
			if nx, ok := nodes[st].next[uint8(k)]; ok && k != 0 {
				nodes[nx].fail = a.next[int(f)*n+k]
				a.next[int(st)*n+k] = nx
				queue = append(queue, nx)
			} else {
				a.next[int(st)*n+k] = a.next[int(f)*n+k]
			}
		}
	}
	a.outAt = make([]int32, len(nodes)+1)
	for s := range nodes {
		out := nodes[s].out
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		a.outAt[s] = int32(len(a.outs))
		a.outs = append(a.outs, out...)
	}
	a.outAt[len(nodes)] = int32(len(a.outs))
	return a, nil
}

// find calls hit with each anchor id and the offset where it starts, in
// order of the anchors' ends.
func (a *automaton) find(data []byte, hit func(id int, start int)) {
	next, class, outAt, n := a.next, &a.class, a.outAt, int32(a.classes)
	st := int32(0)
	for i := 0; i < len(data); i++ {
		st = next[st*n+int32(class[data[i]])]
		if lo, hi := outAt[st], outAt[st+1]; lo != hi {
			for _, id := range a.outs[lo:hi] {
				hit(int(id), i+1-int(a.lens[id]))
			}
		}
	}
}
