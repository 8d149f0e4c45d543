package detect

import "sync"

// ring holds the newest len(v) slot totals of a sliding window and their sum.
type ring struct {
	v   []int64
	pos int
	sum int64
	// fill counts pushes, so slots from before the subject existed are not taken for history.
	fill int64
}

func newRing(n int) ring { return ring{v: make([]int64, n)} }

// push stores x as the newest slot and returns the slot it evicts.
func (r *ring) push(x int64) int64 {
	old := r.v[r.pos]
	r.v[r.pos] = x
	r.pos++
	if r.pos == len(r.v) {
		r.pos = 0
	}
	r.sum += x - old
	r.fill++
	return old
}

// full reports whether every slot has been pushed at least once.
func (r *ring) full() bool { return r.fill >= int64(len(r.v)) }

// evictedReal reports whether the last push evicted a slot that was itself pushed, not the
// zero a fresh ring starts with.
func (r *ring) evictedReal() bool { return r.fill > int64(len(r.v)) }

// seqs keeps the most recent audit event sequence numbers of one subject.
type seqs struct {
	v   []uint64
	pos int
	n   int
}

func (s *seqs) add(seq uint64) {
	if len(s.v) == 0 || seq == 0 {
		return
	}
	s.v[s.pos] = seq
	s.pos++
	if s.pos == len(s.v) {
		s.pos = 0
	}
	if s.n < len(s.v) {
		s.n++
	}
}

// list returns the kept sequence numbers, oldest first.
func (s *seqs) list() []uint64 {
	if s.n == 0 {
		return nil
	}
	out := make([]uint64, 0, s.n)
	start := s.pos - s.n
	if start < 0 {
		start += len(s.v)
	}
	for i := 0; i < s.n; i++ {
		out = append(out, s.v[(start+i)%len(s.v)])
	}
	return out
}

// latch turns a condition evaluated over time into one raise and, once the condition has stayed
// clear for a hold period, one recovery.
type latch struct {
	on      bool
	clearAt int64 // second the condition was first seen clear while on; 0 if not clearing
}

type transition uint8

const (
	none transition = iota
	raise
	recovery
)

func (l *latch) step(cond bool, sec, hold int64) transition {
	if cond {
		l.clearAt = 0
		if !l.on {
			l.on = true
			return raise
		}
		return none
	}
	if !l.on {
		return none
	}
	if l.clearAt == 0 {
		l.clearAt = sec
	}
	if sec-l.clearAt >= hold {
		l.on, l.clearAt = false, 0
		return recovery
	}
	return none
}

// shardCount spreads per-subject state over independent locks so concurrent requests on
// different keys rarely contend.
const shardCount = 64

func shardOf(s string) int {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return int(h % shardCount)
}

type keyShard struct {
	mu sync.Mutex
	m  map[string]*keyState
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

type authShard struct {
	mu sync.Mutex
	m  map[string]*authState
	_  [40]byte
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// boundaries returns how many multiples of k lie in (from, to], and the first of them.
func boundaries(from, to, k int64) (n, first int64) {
	f := floorDiv(from, k)
	return floorDiv(to, k) - f, (f + 1) * k
}
