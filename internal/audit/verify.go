package audit

import (
	"cmp"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"
)

// Kinds of tampering a TamperError reports in its What field.
const (
	// Edited: an event's contents no longer match its own hash.
	Edited = "edited"
	// Deleted: an event is missing from the middle of the trail.
	Deleted = "deleted"
	// Reordered: events appear out of sequence order.
	Reordered = "reordered"
	// Inserted: a second event claims a sequence number already in the trail.
	Inserted = "inserted"
	// BrokenLink: an event's prev does not match the hash of the event before it,
	// so an event was replaced or forged with a recomputed hash.
	BrokenLink = "broken link"
	// BadCheckpoint: a checkpoint's signature does not verify.
	BadCheckpoint = "bad checkpoint signature"
	// CheckpointMismatch: a checkpoint's hash differs from the event at its seq.
	CheckpointMismatch = "checkpoint mismatch"
	// Truncated: a checkpoint covers events that are no longer in the trail.
	Truncated = "truncated"
	// MissingStart: the trail does not begin at seq 1 and no checkpoint vouches for where it begins.
	MissingStart = "missing start"
	// CheckpointDeleted: a checkpoint that a later checkpoint names as the one
	// before it, or that an external copy holds, is missing from the trail.
	CheckpointDeleted = "checkpoint deleted"
	// DiffersFromCopy: an event or checkpoint differs from the one an external
	// copy of the trail holds at the same seq.
	DiffersFromCopy = "differs from the external copy"
)

// TamperError names the first place where a trail fails verification.
type TamperError struct {
	Seq  uint64 // the sequence number where the trail first goes wrong
	What string // one of the kinds above: Edited, Deleted, Truncated, CheckpointDeleted, ...
}

// Error describes the tampering and what an operator should do about it.
func (e *TamperError) Error() string {
	return fmt.Sprintf("audit trail fails verification at seq %d: %s (%s); treat the trail from this point as untrusted, compare it with another sink's copy and find who had write access to it", e.Seq, e.What, describe(e.What))
}

// describe says what a kind of tampering means.
func describe(what string) string {
	switch what {
	case Edited:
		return "the event no longer matches its own hash, or its stored row is not an event"
	case Deleted:
		return "an event is missing from the middle of the trail"
	case Reordered:
		return "events are out of sequence order"
	case Inserted:
		return "a second event claims a sequence number already in the trail"
	case BrokenLink:
		return "the event does not follow the hash of the one before it: it was replaced with a recomputed hash"
	case BadCheckpoint:
		return "a checkpoint is unreadable or not signed by the key verify uses"
	case CheckpointMismatch:
		return "a signed checkpoint names another hash or another node's chain for this seq: the events were rewritten"
	case Truncated:
		return "events that a signed checkpoint or the external copy shows existed are missing from the end of the trail"
	case MissingStart:
		return "the trail does not begin at seq 1 and no checkpoint vouches for where it begins"
	case CheckpointDeleted:
		return "a checkpoint that a later checkpoint or the external copy shows existed is missing"
	case DiffersFromCopy:
		return "the stored event or checkpoint differs from the external copy's"
	}
	return "unknown kind"
}

// Verify checks a trail: events in stored order and the checkpoints kept for
// it, signed by pub. It returns nil for an intact trail, or a *TamperError
// for the first bad place (the lowest seq at which something is wrong).
//
// A trail normally starts at seq 1. One whose oldest part was rotated away
// is accepted when a valid checkpoint vouches for its first event (a
// checkpoint at that event, or at the one just before it whose hash is the
// first event's prev); otherwise it is reported as MissingStart.
func Verify(events []Event, checkpoints []Checkpoint, pub ed25519.PublicKey) error {
	r := VerifyTrail(Trail{Events: events, Checkpoints: checkpoints}, pub, nil)
	return asError(r.Err)
}

// Trail is one node's chain as read back for verification: its events in
// stored order and the checkpoints stored for it.
type Trail struct {
	Node        string // when set, version 2 checkpoints must name it
	Events      []Event
	Checkpoints []Checkpoint

	unreadable []TamperError // stored rows that were not an event or checkpoint
}

// Report is what VerifyTrail found: the first tampered place, if any, and
// how much of the trail checkpoints and the external copy vouch for.
type Report struct {
	Node        string
	Events      int // events in the trail
	Checkpoints int // checkpoints stored with the trail
	Err         *TamperError

	LastSeq  uint64    // the newest event of the trail (0: none)
	LastTime time.Time // and its time
	// CheckpointSeq is the newest event a valid stored checkpoint vouches
	// for, at CheckpointTime (the time of that event); the Uncovered events
	// after it could be cut without a trace unless a copy holds them.
	CheckpointSeq  uint64
	CheckpointTime time.Time
	Uncovered      uint64

	CopyEvents      int    // the copy's events compared with the trail
	CopyCheckpoints int    // the copy's checkpoints compared with the trail
	CopyLastSeq     uint64 // the newest event the copy holds
}

// VerifyTrail checks one trail against its checkpoints, signed by pub, and,
// when c is not nil, against an external copy of the same chain: an event of
// the copy that the trail lacks or holds differently, and a checkpoint of
// the copy that the trail lacks, are tampering. So is a checkpoint named as
// the predecessor of another (version 2) that the trail lacks.
func VerifyTrail(t Trail, pub ed25519.PublicKey, c *Copy) Report {
	v := verifier{pub: pub, rep: Report{Node: t.Node, Events: len(t.Events), Checkpoints: len(t.Checkpoints)}}
	for _, u := range t.unreadable {
		v.note(u.Seq, u.What)
	}
	v.walk(t.Events)
	if c != nil {
		v.compareEvents(c.Events)
	}
	v.checkpoints(t, c)
	return v.rep
}

// verifier collects what VerifyTrail finds about one trail.
type verifier struct {
	pub ed25519.PublicKey
	rep Report

	startSeq uint64            // the first seq the trail vouches for
	last     uint64            // the newest seq verified in order
	broken   bool              // the chain breaks before its end
	hashes   map[uint64]string // seq -> hash of every stored event (first one at a seq)
	maxSeq   uint64
}

// note keeps the finding at the lowest seq; at the same seq, the first.
func (v *verifier) note(seq uint64, what string) {
	if v.rep.Err == nil || seq < v.rep.Err.Seq {
		v.rep.Err = &TamperError{Seq: seq, What: what}
	}
}

// walk checks the events' own hashes, their links and their order.
func (v *verifier) walk(events []Event) {
	v.hashes = make(map[uint64]string, len(events))
	count := make(map[uint64]int, len(events))
	for _, ev := range events {
		count[ev.Seq]++
		if _, ok := v.hashes[ev.Seq]; !ok {
			v.hashes[ev.Seq] = ev.Hash
		}
		if ev.Seq >= v.maxSeq {
			v.maxSeq = ev.Seq
			v.rep.LastSeq, v.rep.LastTime = ev.Seq, ev.Time
		}
	}
	if len(events) == 0 {
		return
	}
	v.startSeq = 1
	prev := ""
	if e0 := events[0]; e0.Seq > 1 {
		v.startSeq, prev = e0.Seq, e0.Prev
	}
	want := v.startSeq
	for _, ev := range events {
		var bad string
		var at uint64
		switch {
		case count[ev.Seq] > 1:
			bad, at = Inserted, ev.Seq
		case ev.Seq > want:
			if count[want] > 0 {
				bad, at = Reordered, want
			} else {
				bad, at = Deleted, want
			}
		case ev.Seq < want:
			bad, at = Reordered, ev.Seq
		}
		if bad == "" {
			if h, err := ev.ComputeHash(); err != nil || h != ev.Hash {
				bad, at = Edited, ev.Seq
			} else if ev.Prev != prev {
				bad, at = BrokenLink, ev.Seq
			}
		}
		if bad != "" {
			v.note(at, bad)
			v.broken = true
			break // past the first break, every later place is suspect anyway
		}
		want, prev = ev.Seq+1, ev.Hash
	}
	v.last = want - 1
}

// compareEvents holds the trail to the copy's events: each must be stored,
// with the same hash.
func (v *verifier) compareEvents(copied []Event) {
	for _, ce := range copied {
		v.rep.CopyEvents++
		v.rep.CopyLastSeq = max(v.rep.CopyLastSeq, ce.Seq)
		h, ok := v.hashes[ce.Seq]
		switch {
		case ok && h == ce.Hash:
		case ok:
			v.note(ce.Seq, DiffersFromCopy)
		case ce.Seq > v.maxSeq:
			v.note(v.maxSeq+1, Truncated)
		default:
			v.note(ce.Seq, Deleted)
		}
	}
}

// checkpoints verifies the stored checkpoints and the copy's, holds the
// trail to them, and checks that each one's predecessor is stored.
func (v *verifier) checkpoints(t Trail, c *Copy) {
	type entry struct {
		cp     Checkpoint
		stored bool
		good   bool
	}
	all := make([]entry, 0, len(t.Checkpoints))
	storedAt := make(map[uint64][]Checkpoint, len(t.Checkpoints))
	for _, cp := range t.Checkpoints {
		all = append(all, entry{cp: cp, stored: true})
		storedAt[cp.Seq] = append(storedAt[cp.Seq], cp)
	}
	if c != nil {
		for _, cp := range c.Checkpoints {
			v.rep.CopyCheckpoints++
			if slices.ContainsFunc(storedAt[cp.Seq], func(o Checkpoint) bool { return sameCheckpoint(o, cp) }) {
				continue
			}
			all = append(all, entry{cp: cp})
		}
	}
	slices.SortStableFunc(all, func(a, b entry) int { return cmp.Compare(a.cp.Seq, b.cp.Seq) })

	for i := range all {
		e := &all[i]
		if err := VerifyCheckpoint(v.pub, e.cp); err != nil {
			v.note(e.cp.Seq, BadCheckpoint)
			continue
		}
		e.good = true
		if t.Node != "" && e.cp.V == 2 && e.cp.Node != t.Node {
			v.note(e.cp.Seq, CheckpointMismatch) // another chain's checkpoint
			continue
		}
		if !e.stored {
			if len(storedAt[e.cp.Seq]) > 0 {
				v.note(e.cp.Seq, DiffersFromCopy)
			} else {
				v.note(e.cp.Seq, CheckpointDeleted)
			}
		}
		switch {
		case len(t.Events) == 0:
			if e.cp.Seq > 0 {
				v.note(1, Truncated)
			}
		case e.cp.Seq < v.startSeq:
			// before the part of the trail that was kept; see the anchor check below
		case e.cp.Seq > v.last:
			// Beyond a break in the chain nothing is checked; past an intact end, events are missing.
			if !v.broken {
				v.note(v.last+1, Truncated)
			}
		case v.hashes[e.cp.Seq] != e.cp.Hash:
			v.note(e.cp.Seq, CheckpointMismatch)
		default:
			if e.stored && e.cp.Seq >= v.rep.CheckpointSeq {
				v.rep.CheckpointSeq, v.rep.CheckpointTime = e.cp.Seq, e.cp.Time
			}
		}
		// A checkpoint names the one before it; that one must be stored
		// unless it lies before the kept part of the trail.
		if e.cp.V == 2 && e.cp.PrevSeq > 0 && e.cp.PrevSeq+1 >= v.startSeq && len(storedAt[e.cp.PrevSeq]) == 0 {
			v.note(e.cp.PrevSeq, CheckpointDeleted)
		}
	}

	if len(t.Events) > 0 && v.startSeq > 1 {
		// The trail's oldest part was rotated away: a valid checkpoint must
		// vouch for where it now begins.
		e0 := t.Events[0]
		if !slices.ContainsFunc(all, func(e entry) bool {
			return e.good && ((e.cp.Seq == e0.Seq-1 && e.cp.Hash == e0.Prev) || (e.cp.Seq == e0.Seq && e.cp.Hash == e0.Hash))
		}) {
			v.note(1, MissingStart)
		}
	}
	if v.rep.CheckpointSeq > 0 && v.rep.LastSeq >= v.rep.CheckpointSeq {
		v.rep.Uncovered = v.rep.LastSeq - v.rep.CheckpointSeq
	} else {
		v.rep.Uncovered = v.rep.LastSeq
	}
}

func asError(e *TamperError) error {
	if e == nil {
		return nil
	}
	return e
}
