package audit

import (
	"crypto/ed25519"
	"fmt"
	"slices"
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
)

// TamperError names the first place where a trail fails verification.
type TamperError struct {
	Seq  uint64 // the sequence number where the trail first goes wrong
	What string // one of Edited, Deleted, Reordered, Inserted, BrokenLink, BadCheckpoint, CheckpointMismatch, Truncated, MissingStart
}

// Error describes the tampering and what an operator should do about it.
func (e *TamperError) Error() string {
	return fmt.Sprintf("audit trail fails verification at seq %d: %s; treat the trail from this point as untrusted, compare it with another sink's copy and find who had write access to it", e.Seq, e.What)
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
	var first *TamperError
	note := func(seq uint64, what string) {
		if first == nil || seq < first.Seq {
			first = &TamperError{Seq: seq, What: what}
		}
	}

	cps := slices.Clone(checkpoints)
	slices.SortStableFunc(cps, func(a, b Checkpoint) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	goodCP := make([]bool, len(cps))
	for i, cp := range cps {
		if err := VerifyCheckpoint(pub, cp); err != nil {
			note(cp.Seq, BadCheckpoint)
			continue
		}
		goodCP[i] = true
	}

	if len(events) == 0 {
		for i, cp := range cps {
			if goodCP[i] && cp.Seq > 0 {
				note(1, Truncated)
			}
		}
		return asError(first)
	}

	// Where the trail starts, and which hash its first event must follow.
	startSeq, startPrev := uint64(1), ""
	if e0 := events[0]; e0.Seq > 1 {
		anchored := false
		for i, cp := range cps {
			if goodCP[i] && ((cp.Seq == e0.Seq-1 && cp.Hash == e0.Prev) || (cp.Seq == e0.Seq && cp.Hash == e0.Hash)) {
				anchored = true
			}
		}
		if !anchored {
			note(1, MissingStart)
		}
		startSeq, startPrev = e0.Seq, e0.Prev
	}

	count := make(map[uint64]int, len(events))
	for _, ev := range events {
		count[ev.Seq]++
	}
	byseq := make(map[uint64]string, len(events))
	want, prev := startSeq, startPrev
	broken := false
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
			note(at, bad)
			broken = true
			break // past the first break, every later place is suspect anyway
		}
		byseq[ev.Seq] = ev.Hash
		want, prev = ev.Seq+1, ev.Hash
	}
	last := want - 1 // the newest seq verified in order

	for i, cp := range cps {
		if !goodCP[i] || cp.Seq < startSeq {
			continue
		}
		if cp.Seq > last {
			// Beyond a break in the chain nothing is checked; past an intact end, events are missing.
			if !broken {
				note(last+1, Truncated)
			}
			continue
		}
		if byseq[cp.Seq] != cp.Hash {
			note(cp.Seq, CheckpointMismatch)
		}
	}
	return asError(first)
}

func asError(e *TamperError) error {
	if e == nil {
		return nil
	}
	return e
}
