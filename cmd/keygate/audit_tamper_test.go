package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/config"
)

// verifyResult is what `keygate --json audit verify` prints.
type verifyResult struct {
	OK     bool         `json:"ok"`
	KeyID  string       `json:"key_id"`
	Pinned bool         `json:"pinned"`
	Error  string       `json:"error"`
	Nodes  []nodeResult `json:"nodes"`
}

// nodeResult is one node's part of verifyResult.
type nodeResult struct {
	Node           string `json:"node"`
	Events         int    `json:"events"`
	Checkpoints    int    `json:"checkpoints"`
	Error          string `json:"error"`
	Seq            uint64 `json:"seq"`
	Kind           string `json:"kind"`
	LastSeq        uint64 `json:"last_seq"`
	CheckpointSeq  uint64 `json:"checkpoint_seq"`
	Uncovered      uint64 `json:"uncovered"`
	CopyEvents     int    `json:"copy_events"`
	CopyCheckpoint int    `json:"copy_checkpoints"`
}

// verify runs `keygate --json audit verify` with args and decodes its answer.
func (in *instance) verify(args ...string) verifyResult {
	in.t.Helper()
	out, errb, _ := in.cli(nil, "", append([]string{"--json", "audit", "verify"}, args...)...)
	var v verifyResult
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		in.t.Fatalf("audit verify %v printed no verification: %v\nstdout: %s\nstderr: %s", args, err, out, errb)
	}
	return v
}

// auditDB opens keygate's database directly, as someone with write access
// to it (and nothing else) would, and returns it with a function that
// writes a query's placeholders for its engine.
func auditDB(t *testing.T, cfg config.Config) (*sql.DB, func(string) string) {
	t.Helper()
	driver, dsn := "sqlite", filepath.Join(cfg.DataDir, "keygate.db")
	q := func(s string) string { return s }
	if cfg.Database != "" {
		driver, dsn = "pgx", cfg.Database
		q = func(s string) string {
			var b strings.Builder
			n := 0
			for _, r := range s {
				if r == '?' {
					n++
					b.WriteString("$" + strconv.Itoa(n))
					continue
				}
				b.WriteRune(r)
			}
			return b.String()
		}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, q
}

// auditRows is a saved copy of the audit tables, to undo one tampering
// before the next.
type auditRows struct{ events, checkpoints [][]any }

func saveAudit(t *testing.T, db *sql.DB) auditRows {
	t.Helper()
	read := func(query string, cols int) [][]any {
		rows, err := db.Query(query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out [][]any
		for rows.Next() {
			vals := make([]any, cols)
			ptrs := make([]any, cols)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return auditRows{
		events:      read(`SELECT node, seq, time, type, key_id, data FROM audit_events ORDER BY node, seq`, 6),
		checkpoints: read(`SELECT node, seq, data FROM audit_checkpoints ORDER BY node, seq`, 3),
	}
}

func restoreAudit(t *testing.T, db *sql.DB, q func(string) string, saved auditRows) {
	t.Helper()
	execSQL(t, db, `DELETE FROM audit_events`)
	execSQL(t, db, `DELETE FROM audit_checkpoints`)
	for _, r := range saved.events {
		execSQL(t, db, q(`INSERT INTO audit_events (node, seq, time, type, key_id, data) VALUES (?, ?, ?, ?, ?, ?)`), r...)
	}
	for _, r := range saved.checkpoints {
		execSQL(t, db, q(`INSERT INTO audit_checkpoints (node, seq, data) VALUES (?, ?, ?)`), r...)
	}
}

func execSQL(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// rehash rewrites the events from seq from on with a changed resource and
// a recomputed, internally consistent hash chain: what someone with write
// access to the database does to hide what those events said.
func rehash(t *testing.T, db *sql.DB, q func(string) string, from uint64) {
	t.Helper()
	rows, err := db.Query(`SELECT data FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			t.Fatal(err)
		}
		var ev audit.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	rows.Close()
	var prev audit.Event
	if from > 1 {
		prev = evs[from-2]
	}
	ch := audit.NewChain(prev)
	for _, ev := range evs[from-1:] {
		ev.Resource = "GET /nothing-to-see"
		ev, err := ch.Append(ev)
		if err != nil {
			t.Fatal(err)
		}
		execSQL(t, db, q(`UPDATE audit_events SET data = ? WHERE seq = ?`), string(ev.AppendJSON(nil)), int64(ev.Seq))
	}
}

// checkpointSeqs lists the seqs of the stored checkpoints, oldest first.
func checkpointSeqs(t *testing.T, db *sql.DB) []uint64 {
	t.Helper()
	rows, err := db.Query(`SELECT seq FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, uint64(s))
	}
	return out
}

// TestAuditTamperEvidence: the ways someone with write access to the
// database can remove evidence (the newest events, checkpoint rows, a
// re-hashed chain without its checkpoints, a replaced signing key) are
// reported by `keygate audit verify` as tampering whenever an external copy
// (--against the file sink), a later checkpoint or the pinned key
// (--public-key) shows it; an untouched trail verifies intact, with how
// much of its tail checkpoints cover.
func TestAuditTamperEvidence(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.Database = dbURL(t)
			copyFile := filepath.Join(dir, "audit.jsonl")
			cfg.Audit.File = copyFile
			cfg.Audit.CheckpointInterval = 100 * time.Millisecond
			cfg.Limits.AuthFailures = 0
			in := start(t, cfg, "")
			pub := strings.TrimSpace(in.mustCLI(nil, "", "audit", "public-key"))
			pubFile := filepath.Join(dir, "audit.pub")
			if err := os.WriteFile(pubFile, []byte(pub+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Four waves of refused requests, with pauses in which time-based
			// checkpoints are made.
			for range 4 {
				for range 6 {
					postJSON(t, in.addrs.Gateway+"/v1/chat/completions", "kg_live_not-a-key", `{"model":"gpt-4o-mini"}`)
				}
				time.Sleep(400 * time.Millisecond)
			}
			in.stop()

			db, q := auditDB(t, cfg)
			pristine := saveAudit(t, db)
			n := uint64(len(pristine.events))
			cps := checkpointSeqs(t, db)
			// Far fewer than 1,000 events: every checkpoint but the last was made on time.
			if n < 24 || len(cps) < 4 || cps[len(cps)-1] != n {
				t.Fatalf("%d events, checkpoints at %v: want time-based checkpoints and a final one at the head", n, cps)
			}
			fileText := string(must(os.ReadFile(copyFile)))
			if got := strings.Count(fileText, `{"checkpoint":`); got < len(cps) {
				t.Fatalf("the file sink holds %d checkpoints, the database %d", got, len(cps))
			}

			pinned := []string{"--against", copyFile, "--public-key", pubFile}
			// check undoes the last tampering, applies tamper and runs verify
			// with args: wantKind "*" is any tampering; a wantSeq of 0 is any seq.
			check := func(name string, tamper func(), args []string, wantKind string, wantSeq uint64) {
				t.Helper()
				restoreAudit(t, db, q, pristine)
				if tamper != nil {
					tamper()
				}
				again := start(t, cfg, in.admin)
				v := again.verify(args...)
				again.stop()
				if wantKind == "*" {
					if v.OK || !slices.ContainsFunc(v.Nodes, func(n nodeResult) bool { return n.Kind != "" }) {
						t.Fatalf("%s: want tampering, got %+v", name, v)
					}
					return
				}
				if v.OK || len(v.Nodes) != 1 || v.Nodes[0].Kind != wantKind || (wantSeq != 0 && v.Nodes[0].Seq != wantSeq) {
					t.Fatalf("%s: want %q at seq %d, got %+v", name, wantKind, wantSeq, v)
				}
			}

			// Untouched: intact, pinned and against the copy; the final
			// checkpoint covers the whole tail.
			again := start(t, cfg, in.admin)
			v := again.verify(pinned...)
			human, _, err := again.cli(nil, "", append([]string{"audit", "verify"}, pinned...)...)
			again.stop()
			if err != nil || !v.OK || !v.Pinned || len(v.Nodes) != 1 || v.Nodes[0].CheckpointSeq != n || v.Nodes[0].Uncovered != 0 ||
				v.Nodes[0].CopyEvents != int(n) || v.Nodes[0].CopyCheckpoint < len(cps) {
				t.Fatalf("untouched trail: %v\n%+v\n%s", err, v, human)
			}
			if !strings.Contains(human, "intact") || !strings.Contains(human, "covers up to seq "+strconv.FormatUint(n, 10)) {
				t.Fatalf("untouched trail, human output:\n%s", human)
			}

			cut := cps[1]
			check("newest events and their checkpoints deleted, against the copy", func() {
				execSQL(t, db, q(`DELETE FROM audit_events WHERE seq > ?`), int64(cut))
				execSQL(t, db, q(`DELETE FROM audit_checkpoints WHERE seq > ?`), int64(cut))
			}, pinned, "truncated", cut+1)
			check("newest events deleted, a later checkpoint kept", func() {
				execSQL(t, db, q(`DELETE FROM audit_events WHERE seq > ?`), int64(n-3))
			}, nil, "truncated", n-2)
			check("one checkpoint row deleted, a later one links to it", func() {
				execSQL(t, db, q(`DELETE FROM audit_checkpoints WHERE seq = ?`), int64(cps[1]))
			}, nil, "checkpoint deleted", cps[1])
			check("every checkpoint row deleted, against the copy", func() {
				execSQL(t, db, `DELETE FROM audit_checkpoints`)
			}, pinned, "checkpoint deleted", cps[0])
			check("chain re-hashed from a checkpoint on, its checkpoints dropped, against the copy", func() {
				rehash(t, db, q, cps[0]+1)
				execSQL(t, db, q(`DELETE FROM audit_checkpoints WHERE seq > ?`), int64(cps[0]))
			}, pinned, "differs from the external copy", cps[0]+1)
			check("every event of the node deleted, its checkpoints kept", func() {
				execSQL(t, db, `DELETE FROM audit_events`)
			}, nil, "truncated", 1)
			check("everything deleted, against the copy", func() {
				execSQL(t, db, `DELETE FROM audit_events`)
				execSQL(t, db, `DELETE FROM audit_checkpoints`)
			}, pinned, "*", 0)
			check("unreadable checkpoint rows hide a cut tail", func() {
				execSQL(t, db, q(`DELETE FROM audit_events WHERE seq > ?`), int64(cut))
				execSQL(t, db, q(`UPDATE audit_checkpoints SET data = 'not a checkpoint' WHERE seq > ?`), int64(cut))
			}, nil, "bad checkpoint signature", 0)

			// The signing key replaced: the whole chain re-hashed, every
			// checkpoint dropped and the key's vault record deleted, so the
			// next start makes a new key that signs checkpoints over the
			// forged chain. Only the pinned key tells.
			restoreAudit(t, db, q, pristine)
			rehash(t, db, q, 1)
			execSQL(t, db, `DELETE FROM audit_checkpoints`)
			execSQL(t, db, `DELETE FROM secret_versions WHERE id = 'system/audit-signing-key'`)
			forged := start(t, cfg, in.admin)
			postJSON(t, forged.addrs.Gateway+"/v1/chat/completions", "kg_live_not-a-key", `{"model":"gpt-4o-mini"}`)
			forged.stop()
			again = start(t, cfg, in.admin)
			unpinned := again.verify()
			v = again.verify("--public-key", pubFile)
			withCopy := again.verify(pinned...)
			again.stop()
			if !unpinned.OK {
				t.Fatalf("the forged trail is consistent under the new key, so unpinned verify passes it; got %+v", unpinned)
			}
			if v.OK || !v.Pinned || !strings.Contains(v.Error, "pinned") {
				t.Fatalf("a replaced signing key, pinned: %+v", v)
			}
			if withCopy.OK || !slices.ContainsFunc(withCopy.Nodes, func(n nodeResult) bool { return n.Kind != "" }) {
				t.Fatalf("a replaced signing key, against the copy: %+v", withCopy)
			}
		})
	}
}

// TestAuditForgedRowsWhileRunning: someone with write access to the
// database writes forged events at the seqs keygate is about to store,
// chained to the newest stored event so the rows look consistent. keygate
// logs that someone else writes its trail and keeps the genuine events it
// can; verify reports the forgery (against the copy, where it starts).
func TestAuditForgedRowsWhileRunning(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.Database = dbURL(t)
			cfg.Audit.File = filepath.Join(dir, "audit.jsonl")
			cfg.Audit.CheckpointInterval = 50 * time.Millisecond
			cfg.Limits.AuthFailures = 0
			in := start(t, cfg, "")
			refuse := func() {
				postJSON(t, in.addrs.Gateway+"/v1/chat/completions", "kg_live_not-a-key", `{"model":"gpt-4o-mini"}`)
			}
			db, q := auditDB(t, cfg)
			stored := func() (node string, seq int64, data string) {
				row := db.QueryRow(`SELECT node, seq, data FROM audit_events ORDER BY seq DESC LIMIT 1`)
				if err := row.Scan(&node, &seq, &data); err != nil && err != sql.ErrNoRows {
					t.Fatal(err)
				}
				return
			}
			for range 3 {
				refuse()
			}
			for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, seq, _ := stored(); seq >= 3 {
					break
				}
				if time.Now().After(end) {
					t.Fatal("the first events never reached the database")
				}
			}
			time.Sleep(100 * time.Millisecond) // let the last of them land
			node, head, data := stored()
			var last audit.Event
			if err := json.Unmarshal([]byte(data), &last); err != nil {
				t.Fatal(err)
			}
			ch := audit.NewChain(last)
			for range 2 {
				ev, _ := ch.Append(audit.Event{Time: time.Now(), Type: "auth.success", Resource: "POST /v1/chat/completions", Decision: "allow"})
				execSQL(t, db, q(`INSERT INTO audit_events (node, seq, time, type, key_id, data) SELECT ?, ?, time, ?, '', ? FROM audit_events WHERE node = ? AND seq = ?`),
					node, int64(ev.Seq), ev.Type, string(ev.AppendJSON(nil)), node, head)
			}
			for range 3 {
				refuse()
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			in.stop()
			if !strings.Contains(in.stderr.String()+in.stdout.String(), "did not write") {
				t.Fatal("keygate did not report the rows it did not write")
			}
			again := start(t, cfg, in.admin)
			plain := again.verify()
			withCopy := again.verify("--against", cfg.Audit.File)
			again.stop()
			if plain.OK {
				t.Fatalf("forged rows verified intact: %+v", plain)
			}
			if withCopy.OK || len(withCopy.Nodes) != 1 || withCopy.Nodes[0].Kind != "differs from the external copy" || withCopy.Nodes[0].Seq != uint64(head)+1 {
				t.Fatalf("forged rows, against the copy: %+v", withCopy)
			}
		})
	}
}
