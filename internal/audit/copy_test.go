package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// linkedTrail builds n events of node's chain with a linked checkpoint at
// every seq in at.
func linkedTrail(t testing.TB, priv ed25519.PrivateKey, node string, n int, at ...int) ([]Event, []Checkpoint) {
	evs := trail(t, n)
	for i := range evs {
		evs[i].Actor = node
	}
	ch := NewChain(Event{})
	for i := range evs {
		evs[i].Hash, evs[i].Prev, evs[i].Seq = "", "", 0
		evs[i], _ = ch.Append(evs[i])
	}
	var cps []Checkpoint
	prev := uint64(0)
	for _, s := range at {
		cps = append(cps, SignLinked(priv, node, prev, evs[s-1]))
		prev = uint64(s)
	}
	return evs, cps
}

// copyOf writes events and checkpoints as the file sink does and reads them back.
func copyOf(t testing.TB, evs []Event, cps []Checkpoint) *Copy {
	var b bytes.Buffer
	for i := range evs {
		b.Write(append(evs[i].AppendJSON(nil), '\n'))
	}
	for _, cp := range cps {
		b.Write(append(AppendCheckpointLine(nil, cp), '\n'))
	}
	c, err := ReadCopy(&b, "copy")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestVerifyTrailAgainstCopyAndLinks: whatever someone with write access to
// the trail removes or rewrites is reported when an external copy or a
// later checkpoint shows it existed; an untouched trail is intact, with
// its coverage.
func TestVerifyTrailAgainstCopyAndLinks(t *testing.T) {
	pub, priv := testKey(t)
	_, otherPriv := testKey(t)
	type stored struct {
		evs []Event
		cps []Checkpoint
	}
	cases := []struct {
		name     string
		tamper   func(s *stored)
		withCopy bool
		seq      uint64
		kind     string
	}{
		{"untouched", func(s *stored) {}, true, 0, ""},
		{"untouched, no copy", func(s *stored) {}, false, 0, ""},
		{"tail and its checkpoints cut, against the copy", func(s *stored) {
			s.evs, s.cps = s.evs[:7], s.cps[:2]
		}, true, 8, Truncated},
		{"tail after the last checkpoint cut, against the copy", func(s *stored) {
			s.evs, s.cps = s.evs[:11], s.cps[:3]
		}, true, 12, Truncated},
		{"middle checkpoint deleted, a later one names it", func(s *stored) {
			s.cps = slices.Delete(s.cps, 1, 2)
		}, false, 6, CheckpointDeleted},
		{"newest checkpoint deleted, against the copy", func(s *stored) {
			s.cps = s.cps[:3]
		}, true, 12, CheckpointDeleted},
		{"every checkpoint deleted, against the copy", func(s *stored) {
			s.cps = nil
		}, true, 3, CheckpointDeleted},
		{"re-hashed from seq 5, its checkpoints dropped, against the copy", func(s *stored) {
			ch := NewChain(s.evs[3])
			for i := 4; i < len(s.evs); i++ {
				s.evs[i].Resource = "/nothing"
				s.evs[i], _ = ch.Append(s.evs[i])
			}
			s.cps = s.cps[:1]
		}, true, 5, DiffersFromCopy},
		{"re-hashed and re-signed with another key, against the copy", func(s *stored) {
			ch := NewChain(Event{})
			for i := range s.evs {
				s.evs[i].Resource = "/nothing"
				s.evs[i], _ = ch.Append(s.evs[i])
			}
			prev := uint64(0)
			for i, cp := range s.cps {
				s.cps[i] = SignLinked(otherPriv, "node_a", prev, s.evs[cp.Seq-1])
				prev = cp.Seq
			}
		}, true, 1, DiffersFromCopy},
		{"a middle event deleted, against the copy", func(s *stored) {
			s.evs = slices.Delete(s.evs, 4, 5)
		}, true, 5, Deleted},
		{"another node's checkpoint moved in", func(s *stored) {
			s.cps[1] = SignLinked(priv, "node_b", s.cps[1].PrevSeq, s.evs[5])
		}, false, 6, CheckpointMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, cps := linkedTrail(t, priv, "node_a", 12, 3, 6, 9, 12)
			var c *Copy
			if tc.withCopy {
				c = copyOf(t, evs, cps)
			}
			s := &stored{slices.Clone(evs), slices.Clone(cps)}
			tc.tamper(s)
			r := VerifyTrail(Trail{Node: "node_a", Events: s.evs, Checkpoints: s.cps}, pub, c)
			if tc.kind == "" {
				if r.Err != nil {
					t.Fatalf("intact trail failed: %v", r.Err)
				}
				if r.LastSeq != 12 || r.CheckpointSeq != 12 || r.Uncovered != 0 {
					t.Fatalf("coverage %+v", r)
				}
				if tc.withCopy && (r.CopyEvents != 12 || r.CopyCheckpoints != 4 || r.CopyLastSeq != 12) {
					t.Fatalf("copy compared %+v", r)
				}
				return
			}
			if r.Err == nil || r.Err.Seq != tc.seq || r.Err.What != tc.kind {
				t.Fatalf("got %v, want seq %d %q", r.Err, tc.seq, tc.kind)
			}
		})
	}
}

func TestVerifyTrailReportsCoverage(t *testing.T) {
	pub, priv := testKey(t)
	evs, cps := linkedTrail(t, priv, "n", 10, 4)
	r := VerifyTrail(Trail{Node: "n", Events: evs, Checkpoints: cps}, pub, nil)
	if r.Err != nil || r.LastSeq != 10 || r.CheckpointSeq != 4 || r.Uncovered != 6 || !r.CheckpointTime.Equal(evs[3].Time) || !r.LastTime.Equal(evs[9].Time) {
		t.Fatalf("report %+v", r)
	}
	r = VerifyTrail(Trail{Node: "n", Events: evs}, pub, nil)
	if r.Err != nil || r.CheckpointSeq != 0 || r.Uncovered != 10 {
		t.Fatalf("without checkpoints %+v", r)
	}
}

// memSource is a Source over rows in memory, paging a few rows at a time.
type memSource struct {
	events, checkpoints map[string][]Row
}

func (m memSource) Nodes(ctx context.Context) ([]string, error) {
	var out []string
	for n := range m.events {
		out = append(out, n)
	}
	for n := range m.checkpoints {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func page(rows []Row, after uint64) []Row {
	var out []Row
	for _, r := range rows {
		if r.Seq > after && len(out) < 3 {
			out = append(out, r)
		}
	}
	return out
}

func (m memSource) Events(ctx context.Context, node string, after uint64) ([]Row, error) {
	return page(m.events[node], after), nil
}

func (m memSource) Checkpoints(ctx context.Context, node string, after uint64) ([]Row, error) {
	return page(m.checkpoints[node], after), nil
}

func (m memSource) put(node string, evs []Event, cps []Checkpoint) {
	for i := range evs {
		m.events[node] = append(m.events[node], Row{Seq: evs[i].Seq, Data: evs[i].AppendJSON(nil)})
	}
	for _, cp := range cps {
		b, _ := json.Marshal(cp)
		m.checkpoints[node] = append(m.checkpoints[node], Row{Seq: cp.Seq, Data: b})
	}
}

// TestVerifyAllSplitsACopyOfTwoNodes: a webhook receiver's copy mixes the
// chains of two nodes; each is held to its own node, so a cut on one is
// reported there, and a chain no stored node holds is reported as gone.
func TestVerifyAllSplitsACopyOfTwoNodes(t *testing.T) {
	pub, priv := testKey(t)
	aEvs, aCps := linkedTrail(t, priv, "node_a", 8, 4, 8)
	bEvs, bCps := linkedTrail(t, priv, "node_b", 6, 3, 6)
	var mixed []Event
	for i := range 8 {
		mixed = append(mixed, aEvs[i])
		if i < 6 {
			mixed = append(mixed, bEvs[i])
		}
	}
	c := copyOf(t, mixed, append(slices.Clone(aCps), bCps...))

	src := memSource{map[string][]Row{}, map[string][]Row{}}
	src.put("node_a", aEvs, aCps)
	src.put("node_b", bEvs[:4], bCps[:1]) // node_b's tail and its checkpoint were cut
	reports, err := VerifyAll(t.Context(), src, pub, c, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || reports[0].Node != "node_a" || reports[0].Err != nil || reports[0].CopyEvents != 8 {
		t.Fatalf("node_a: %+v", reports)
	}
	if r := reports[1]; r.Node != "node_b" || r.Err == nil || r.Err.What != Truncated || r.Err.Seq != 5 || r.CopyEvents != 6 {
		t.Fatalf("node_b: %+v", r)
	}

	// Everything of node_b deleted: its chain in the copy is still held to it.
	src = memSource{map[string][]Row{}, map[string][]Row{}}
	src.put("node_a", aEvs, aCps)
	reports, err = VerifyAll(t.Context(), src, pub, c, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || reports[1].Node != "node_b" || reports[1].Err == nil || reports[1].Err.Seq != 1 {
		t.Fatalf("node_b gone: %+v", reports)
	}

	// Without checkpoints naming it, a chain that shares nothing with the
	// stored ones is held to the only stored node (where it differs) or, with
	// none stored, reported as a chain the database does not hold.
	c = copyOf(t, bEvs, nil)
	reports, _ = VerifyAll(t.Context(), src, pub, c, "")
	if len(reports) != 1 || reports[0].Node != "node_a" || reports[0].Err == nil || reports[0].Err.What != DiffersFromCopy {
		t.Fatalf("unmatched chain, one node stored: %+v", reports)
	}
	reports, _ = VerifyAll(t.Context(), memSource{map[string][]Row{}, map[string][]Row{}}, pub, c, "")
	if len(reports) != 1 || reports[0].Node != UnknownNode || reports[0].Err == nil || reports[0].Err.What != Truncated {
		t.Fatalf("unmatched chain, nothing stored: %+v", reports)
	}
	// --node names the chain's node when nothing else can: node_b's
	// re-hashed chain is held to node_b, not reported as unknown.
	src.put("node_b", linkedTrailEvents(t, priv, "node_b_rehashed", 6), nil)
	reports, _ = VerifyAll(t.Context(), src, pub, c, "node_b")
	if len(reports) != 2 || reports[1].Node != "node_b" || reports[1].Err == nil || reports[1].Err.What != DiffersFromCopy || reports[1].Err.Seq != 1 {
		t.Fatalf("unmatched chain held to --node: %+v", reports)
	}
}

func linkedTrailEvents(t testing.TB, priv ed25519.PrivateKey, actor string, n int) []Event {
	evs, _ := linkedTrail(t, priv, actor, n)
	return evs
}

// TestVerifyAllStoredRows: a stored row that is not an event or checkpoint,
// or stored under another seq, is tampering; a copy whose events do not
// match their own hashes is refused.
func TestVerifyAllStoredRows(t *testing.T) {
	pub, priv := testKey(t)
	evs, cps := linkedTrail(t, priv, "n", 5, 2, 5)
	for name, tc := range map[string]struct {
		mod  func(src memSource)
		seq  uint64
		kind string
	}{
		"unreadable checkpoint": {func(s memSource) { s.checkpoints["n"][1].Data = []byte("garbage") }, 5, BadCheckpoint},
		"checkpoint moved":      {func(s memSource) { s.checkpoints["n"][1].Seq = 4 }, 4, CheckpointMismatch},
		"unreadable event":      {func(s memSource) { s.events["n"][2].Data = []byte(`{"seq":3,"extra":1}`) }, 3, Edited},
		"event moved":           {func(s memSource) { s.events["n"][2].Seq = 9 }, 3, Deleted},
	} {
		t.Run(name, func(t *testing.T) {
			src := memSource{map[string][]Row{}, map[string][]Row{}}
			src.put("n", evs, cps)
			tc.mod(src)
			reports, err := VerifyAll(t.Context(), src, pub, nil, "")
			if err != nil {
				t.Fatal(err)
			}
			if e := reports[0].Err; e == nil || e.Seq != tc.seq || e.What != tc.kind {
				t.Fatalf("got %v, want seq %d %q", e, tc.seq, tc.kind)
			}
		})
	}
	bad := copyOf(t, evs, nil)
	bad.Events[2].Decision = "allow"
	src := memSource{map[string][]Row{}, map[string][]Row{}}
	src.put("n", evs, cps)
	if _, err := VerifyAll(t.Context(), src, pub, bad, ""); err == nil || !strings.Contains(err.Error(), "seq 3") {
		t.Fatalf("an altered copy gave %v", err)
	}
}

// TestReadCopyForms: the file sink's lines and a webhook receiver's arrays
// read back alike, duplicates once; anything else names its line.
func TestReadCopyForms(t *testing.T) {
	_, priv := testKey(t)
	evs, cps := linkedTrail(t, priv, "n", 3, 3)
	line := func(b []byte) string { return string(b) + "\n" }
	var text strings.Builder
	text.WriteString(line(evs[0].AppendJSON(nil)))
	text.WriteString("\n") // blank lines are skipped
	batch, _ := json.Marshal(evs[1:])
	text.WriteString(line(batch))                  // a webhook body as it came
	text.WriteString(line(evs[2].AppendJSON(nil))) // sent twice
	text.WriteString(line([]byte("[" + string(AppendCheckpointLine(nil, cps[0])) + "]")))
	text.WriteString(line(AppendCheckpointLine(nil, cps[0]))) // sent twice
	c, err := ReadCopy(strings.NewReader(text.String()), "copy")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Events) != 3 || len(c.Checkpoints) != 1 || !sameCheckpoint(c.Checkpoints[0], cps[0]) || c.check() != nil {
		t.Fatalf("read %d events, %d checkpoints", len(c.Events), len(c.Checkpoints))
	}

	good := line(evs[0].AppendJSON(nil))
	for name, bad := range map[string]string{
		"unknown field":       `{"seq":1,"time":"2026-01-01T00:00:00Z","type":"x","forged":1,"prev":"","hash":""}` + "\n",
		"checkpoint field":    `{"checkpoint":{"seq":1,"hash":"","time":"2026-01-01T00:00:00Z","key_id":"","signature":"","extra":1}}` + "\n",
		"checkpoint and more": `{"checkpoint":{"seq":1,"hash":"","time":"2026-01-01T00:00:00Z","key_id":"","signature":""},"seq":2}` + "\n",
		"null checkpoint":     `{"checkpoint":null}` + "\n",
		"trailing data":       strings.TrimSuffix(good, "\n") + ` {}` + "\n",
		"not an object":       "42\n",
		"array of numbers":    "[1]\n",
		"cut short":           strings.TrimSuffix(good, "\n"),
	} {
		_, err := ReadCopy(strings.NewReader(good+bad), "copy")
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%s: got %v, want an error naming line 2", name, err)
		}
	}
}

// TestFileSinkKeepsCheckpointsWithEvents: the file sink writes checkpoints
// beside the events, across rotation, and ReadCopyFile reads the whole copy
// back while ReadFile still gives just the events.
func TestFileSinkKeepsCheckpointsWithEvents(t *testing.T) {
	pub, priv := testKey(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := OpenFile(path, FileOptions{MaxSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	evs, cps := linkedTrail(t, priv, "n", 20, 5, 10, 15, 20)
	for i := range 4 {
		if err := f.Write(t.Context(), evs[i*5:i*5+5]); err != nil {
			t.Fatal(err)
		}
		if err := f.WriteCheckpoint(t.Context(), cps[i]); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Fatalf("the file did not rotate: %v", err)
	}
	c, err := ReadCopyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Events) != 20 || !slices.EqualFunc(c.Checkpoints, cps, sameCheckpoint) {
		t.Fatalf("read back %d events and checkpoints at %v", len(c.Events), seqsOf(c.Checkpoints))
	}
	if r := VerifyTrail(Trail{Node: "n", Events: c.Events, Checkpoints: c.Checkpoints}, pub, nil); r.Err != nil {
		t.Fatal(r.Err)
	}
	only, err := ReadFile(path)
	if err != nil || len(only) != 20 {
		t.Fatalf("ReadFile: %d events, %v", len(only), err)
	}
	if err := f.WriteCheckpoint(t.Context(), cps[0]); err == nil || errors.Is(err, nil) && !strings.Contains(err.Error(), "closed") {
		t.Fatalf("a checkpoint written to a closed sink: %v", err)
	}
}

func FuzzReadCopy(f *testing.F) {
	_, priv := testKey(f)
	evs, cps := linkedTrail(f, priv, "n", 3, 2)
	var seed bytes.Buffer
	for i := range evs {
		seed.Write(append(evs[i].AppendJSON(nil), '\n'))
	}
	seed.Write(append(AppendCheckpointLine(nil, cps[0]), '\n'))
	batch, _ := json.Marshal(evs)
	f.Add(seed.Bytes())
	f.Add(append(batch, '\n'))
	f.Add([]byte(`{"checkpoint":{"v":2,"node":"n","seq":1,"hash":"x","time":"2026-01-01T00:00:00Z","prev_seq":9,"key_id":"","signature":"AA=="}}` + "\n"))
	f.Add([]byte("[{\"seq\":1},\n"))
	pub := priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCopy(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		// Whatever parses can be written back and read again unchanged...
		var again bytes.Buffer
		for i := range c.Events {
			again.Write(append(c.Events[i].AppendJSON(nil), '\n'))
		}
		for _, cp := range c.Checkpoints {
			again.Write(append(AppendCheckpointLine(nil, cp), '\n'))
		}
		c2, err := ReadCopy(&again, "again")
		if err != nil || len(c2.Events) != len(c.Events) || len(c2.Checkpoints) != len(c.Checkpoints) {
			t.Fatalf("a parsed copy does not read back: %v", err)
		}
		// ...and verifying a trail against it never panics.
		src := memSource{map[string][]Row{}, map[string][]Row{}}
		src.put("n", evs, cps)
		_, _ = VerifyAll(context.Background(), src, pub, c, "")
		_, _ = VerifyAll(context.Background(), memSource{map[string][]Row{}, map[string][]Row{}}, pub, c, "n")
	})
}
