package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"slices"
)

// Row is one stored event or checkpoint as a Source returns it: the seq it
// is stored under and its JSON as stored.
type Row struct {
	Seq  uint64
	Data []byte
}

// Source reads stored chains for VerifyAll: keygate's database through its
// store or through the admin API.
type Source interface {
	// Nodes lists every node with stored events or checkpoints.
	Nodes(ctx context.Context) ([]string, error)
	// Events and Checkpoints return the next rows of a node's chain after
	// seq after, oldest first; an empty page ends the chain.
	Events(ctx context.Context, node string, after uint64) ([]Row, error)
	Checkpoints(ctx context.Context, node string, after uint64) ([]Row, error)
}

// UnknownNode names, in VerifyAll's reports, a chain of the external copy
// that cannot be matched to any node of the database.
const UnknownNode = "(a chain the database does not hold)"

// VerifyAll verifies every chain src holds with VerifyTrail, against the
// checkpoints' key pub and, when c is not nil, against that external copy.
// The copy's events are split into chains by their hash links and each is
// held to the node its checkpoints name, or whose stored events it shares,
// or else to node (when not empty), or to the only node stored. A chain of
// the copy that matches no stored node is verified against an empty trail,
// so its events count as deleted. Reports come sorted by node.
//
// A stored row that is not an event or checkpoint, or whose seq differs
// from the one it is stored under, is tampering at that seq. A copy whose
// own events do not match their hashes is an error: it cannot vouch for
// anything.
func VerifyAll(ctx context.Context, src Source, pub ed25519.PublicKey, c *Copy, node string) ([]Report, error) {
	if c != nil {
		if err := c.check(); err != nil {
			return nil, err
		}
	}
	nodes, err := src.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	trails := make([]*Trail, 0, len(nodes))
	for _, n := range nodes {
		t, err := readTrail(ctx, src, n)
		if err != nil {
			return nil, err
		}
		trails = append(trails, t)
	}
	var parts map[string]*Copy
	if c != nil {
		parts = c.split(trails, node)
		for n := range parts {
			if !slices.ContainsFunc(trails, func(t *Trail) bool { return t.Node == n }) {
				trails = append(trails, &Trail{Node: n})
			}
		}
	}
	slices.SortFunc(trails, func(a, b *Trail) int { return cmp.Compare(a.Node, b.Node) })
	reports := make([]Report, 0, len(trails))
	for _, t := range trails {
		var part *Copy
		if c != nil {
			part = parts[t.Node]
			if part == nil {
				part = &Copy{}
			}
		}
		reports = append(reports, VerifyTrail(*t, pub, part))
	}
	return reports, nil
}

// readTrail reads one node's events and checkpoints from src.
func readTrail(ctx context.Context, src Source, node string) (*Trail, error) {
	t := &Trail{Node: node}
	for after := uint64(0); ; {
		rows, err := src.Events(ctx, node, after)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			var ev Event
			if err := strictDecode(bytes.TrimSpace(r.Data), &ev); err != nil || ev.Seq != r.Seq {
				t.unreadable = append(t.unreadable, TamperError{Seq: r.Seq, What: Edited})
				ev.Seq = r.Seq
			}
			t.Events = append(t.Events, ev)
			after = max(after, r.Seq)
		}
	}
	for after := uint64(0); ; {
		rows, err := src.Checkpoints(ctx, node, after)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			var cp Checkpoint
			if err := strictDecode(bytes.TrimSpace(r.Data), &cp); err != nil {
				t.unreadable = append(t.unreadable, TamperError{Seq: r.Seq, What: BadCheckpoint})
			} else if cp.Seq != r.Seq {
				t.unreadable = append(t.unreadable, TamperError{Seq: min(r.Seq, cp.Seq), What: CheckpointMismatch})
			} else {
				cp.Time = cp.Time.UTC()
				t.Checkpoints = append(t.Checkpoints, cp)
			}
			after = max(after, r.Seq)
		}
	}
	return t, nil
}

// split assigns the copy's events and checkpoints to nodes: the events are
// cut into chains by their prev links, and each chain goes to the node its
// version 2 checkpoints name, else to the node whose trail holds one of its
// events (or the event before its first), else to fallback, else to the
// only trail, else to UnknownNode.
func (c *Copy) split(trails []*Trail, fallback string) map[string]*Copy {
	hashNode := make(map[string]string)
	for _, t := range trails {
		for _, ev := range t.Events {
			if ev.Hash != "" {
				hashNode[ev.Hash] = t.Node
			}
		}
	}
	if fallback == "" && len(trails) == 1 {
		fallback = trails[0].Node
	}
	if fallback == "" {
		fallback = UnknownNode
	}

	evs := slices.Clone(c.Events)
	slices.SortStableFunc(evs, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	chainOf := make(map[string]int, len(evs)) // event hash -> chain
	var chains [][]Event
	for _, ev := range evs {
		id, ok := chainOf[ev.Prev]
		if !ok || ev.Prev == "" {
			id = len(chains)
			chains = append(chains, nil)
		}
		chains[id] = append(chains[id], ev)
		chainOf[ev.Hash] = id
	}
	named := make([]string, len(chains))
	for _, cp := range c.Checkpoints {
		if id, ok := chainOf[cp.Hash]; ok && cp.V == 2 && cp.Node != "" && named[id] == "" {
			named[id] = cp.Node
		}
	}
	for id, ch := range chains {
		if named[id] != "" {
			continue
		}
		if n, ok := hashNode[ch[0].Prev]; ok {
			named[id] = n
		}
		for _, ev := range ch {
			if n, ok := hashNode[ev.Hash]; ok && named[id] == "" {
				named[id] = n
			}
		}
		if named[id] == "" {
			named[id] = fallback
		}
	}

	out := make(map[string]*Copy)
	part := func(n string) *Copy {
		p := out[n]
		if p == nil {
			p = &Copy{}
			out[n] = p
		}
		return p
	}
	for id, ch := range chains {
		p := part(named[id])
		p.Events = append(p.Events, ch...)
	}
	for _, cp := range c.Checkpoints {
		n := ""
		switch id, inChain := chainOf[cp.Hash]; {
		case cp.V == 2 && cp.Node != "":
			n = cp.Node
		case inChain:
			n = named[id]
		default:
			n = hashNode[cp.Hash]
		}
		if n == "" {
			n = fallback
		}
		p := part(n)
		p.Checkpoints = append(p.Checkpoints, cp)
	}
	return out
}
