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
//
// States are numbered so that those where an anchor ends come last: the
// scan loop tells them apart with one comparison (state >= firstOut), and
// rows are a power of two wide so a state's row is found with a shift.
type automaton struct {
	class    [256]uint8 // byte -> class
	classes  int
	shift    uint    // log2 of the row width
	next     []int32 // state<<shift | class -> state
	firstOut int32   // states from here on end an anchor
	outAt    []int32 // state -> first index in outs; outAt[s+1] ends it
	outs     []int32 // anchor ids, grouped by state
	lens     []int32 // anchor id -> length
	depth    []int32 // state -> length of the anchor prefix it stands for
	maxLen   int     // the longest anchor
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
		next  map[uint8]int32
		out   []int32
		fail  int32
		depth int32
	}
	nodes := []node{{next: map[uint8]int32{}}}
	for id, s := range anchors {
		a.maxLen = max(a.maxLen, len(s))
		st := int32(0)
		for j := 0; j < len(s); j++ {
			k := a.class[s[j]]
			nx, ok := nodes[st].next[k]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, node{next: map[uint8]int32{}, depth: int32(j + 1)})
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
	// Renumber: states without output first, then those with.
	perm := make([]int32, len(nodes)) // old -> new
	id := int32(0)
	for pass := 0; pass < 2; pass++ {
		for st := range nodes {
			if (len(nodes[st].out) > 0) == (pass == 1) {
				perm[st] = id
				id++
			}
		}
		if pass == 0 {
			a.firstOut = id
		}
	}
	for a.shift = 0; 1<<a.shift < n; a.shift++ {
	}
	w := 1 << a.shift
	next := make([]int32, len(nodes)*w)
	for st := range nodes {
		for k := 0; k < n; k++ {
			next[int(perm[st])*w+k] = perm[a.next[st*n+k]]
		}
	}
	a.next = next
	byNew := make([][]int32, len(nodes))
	for st := range nodes {
		out := nodes[st].out
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		byNew[perm[st]] = out
	}
	a.depth = make([]int32, len(nodes))
	for st := range nodes {
		a.depth[perm[st]] = nodes[st].depth
	}
	a.outAt = make([]int32, len(nodes)+1)
	for st, out := range byNew {
		a.outAt[st] = int32(len(a.outs))
		a.outs = append(a.outs, out...)
	}
	a.outAt[len(nodes)] = int32(len(a.outs))
	return a, nil
}

// find calls hit with each anchor id and the offset where it starts, in
// order of the anchors' ends.
func (a *automaton) find(data []byte, hit func(id int, start int)) {
	next, class, shift, firstOut := a.next, &a.class, a.shift, a.firstOut
	st := int32(0)
	for i := 0; i < len(data); i++ {
		st = next[st<<shift|int32(class[data[i]])]
		if st >= firstOut {
			for _, id := range a.outs[a.outAt[st]:a.outAt[st+1]] {
				hit(int(id), i+1-int(a.lens[id]))
			}
		}
	}
}

// partial returns the length of the longest end of data that begins some
// anchor (ignoring case): where an anchor may still be arriving. Only the
// last anchor-length bytes decide it, so only those are read.
func (a *automaton) partial(data []byte) int {
	data = data[max(0, len(data)-(a.maxLen-1)):]
	st := int32(0)
	for _, c := range data {
		st = a.next[st<<a.shift|int32(a.class[c])]
	}
	return int(a.depth[st])
}
