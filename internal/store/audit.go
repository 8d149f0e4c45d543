package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AuditRecord is one audit event as stored: its JSON as written, with the
// fields searches filter on copied out.
type AuditRecord struct {
	Node  string // the keygate node whose chain it belongs to
	Seq   uint64
	Time  time.Time // UTC
	Type  string
	KeyID string
	Data  []byte // the event's JSON, hash chain included
}

// AuditFilter selects audit events; zero fields do not filter.
type AuditFilter struct {
	Node         string // with AfterSeq: one node's chain in order
	KeyID        string
	Type         string
	Since, Until time.Time
	AfterSeq     uint64
	Limit        int // default and maximum 10,000
}

// AppendAudit stores a batch of events in one transaction. An event whose
// seq is already stored is an ErrConflict and nothing of the batch lands.
func (s *Store) AppendAudit(ctx context.Context, recs []AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	// Many rows per statement: one round trip (and one parse) per chunk
	// rather than per event, which is what lets PostgreSQL keep up.
	return s.InTx(ctx, func(tx *Store) error {
		args := make([]any, 0, min(len(recs), auditRowsPerInsert)*6)
		for len(recs) > 0 {
			n := min(len(recs), auditRowsPerInsert)
			args = args[:0]
			for _, r := range recs[:n] {
				args = append(args, r.Node, int64(r.Seq), tx.timeArg(r.Time), r.Type, r.KeyID, string(r.Data))
			}
			if _, err := tx.w.ExecContext(ctx, s.auditInsert(n), args...); err != nil {
				return fmt.Errorf("store: append audit events %d to %d: %w", recs[0].Seq, recs[n-1].Seq, mapErr(err))
			}
			recs = recs[n:]
		}
		return nil
	})
}

// auditRowsPerInsert bounds the rows of one audit INSERT (6 parameters
// each, far below either database's limit).
const auditRowsPerInsert = 128

// auditInsert returns the INSERT statement for n audit rows.
func (s *Store) auditInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_events (node, seq, time, type, key_id, data) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?, ?, ?)`)
	}
	return rebind(s.dialect, b.String())
}

// LastAudit returns the newest stored event of a node's chain, or ErrNotFound.
func (s *Store) LastAudit(ctx context.Context, node string) (AuditRecord, error) {
	q := rebind(s.dialect, `SELECT node, seq, time, type, key_id, data FROM audit_events WHERE node = ? ORDER BY seq DESC LIMIT 1`)
	r, err := scanAudit(s.r.QueryRowContext(ctx, q, node))
	if err != nil {
		return AuditRecord{}, fmt.Errorf("store: last audit event: %w", mapErr(err))
	}
	return r, nil
}

// SearchAudit returns the events f selects, oldest first.
func (s *Store) SearchAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	q := `SELECT node, seq, time, type, key_id, data FROM audit_events WHERE seq > ?`
	args := []any{int64(f.AfterSeq)}
	if f.Node != "" {
		q += ` AND node = ?`
		args = append(args, f.Node)
	}
	if f.KeyID != "" {
		q += ` AND key_id = ?`
		args = append(args, f.KeyID)
	}
	if f.Type != "" {
		q += ` AND type = ?`
		args = append(args, f.Type)
	}
	if !f.Since.IsZero() {
		q += ` AND time >= ?`
		args = append(args, s.timeArg(f.Since))
	}
	if !f.Until.IsZero() {
		q += ` AND time < ?`
		args = append(args, s.timeArg(f.Until))
	}
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	q += ` ORDER BY node, seq LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, rebind(s.dialect, q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: search audit events: %w", err)
	}
	return collect(rows, scanAudit, "search audit events")
}

func scanAudit(row rowScanner) (AuditRecord, error) {
	var r AuditRecord
	var seq int64
	var data string
	err := row.Scan(&r.Node, &seq, timeCol{&r.Time}, &r.Type, &r.KeyID, &data)
	r.Seq, r.Data = uint64(seq), []byte(data)
	return r, err
}

// PutAuditCheckpoint stores a signed checkpoint (JSON) of a node's chain.
func (s *Store) PutAuditCheckpoint(ctx context.Context, node string, seq uint64, data []byte) error {
	q := rebind(s.dialect, `INSERT INTO audit_checkpoints (node, seq, data) VALUES (?, ?, ?)`)
	if _, err := s.w.ExecContext(ctx, q, node, int64(seq), string(data)); err != nil {
		return fmt.Errorf("store: store audit checkpoint %d: %w", seq, mapErr(err))
	}
	return nil
}

// AuditCheckpoint is one signed checkpoint of a node's chain as stored.
type AuditCheckpoint struct {
	Node string
	Seq  uint64
	Data []byte // the checkpoint's JSON
}

// ListAuditCheckpoints returns a node's checkpoints after seq after, oldest
// first, at most limit of them (default and maximum 10,000).
func (s *Store) ListAuditCheckpoints(ctx context.Context, node string, after uint64, limit int) ([]AuditCheckpoint, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	q := rebind(s.dialect, `SELECT node, seq, data FROM audit_checkpoints WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?`)
	rows, err := s.r.QueryContext(ctx, q, node, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("store: list audit checkpoints: %w", err)
	}
	return collect(rows, scanCheckpoint, "list audit checkpoints")
}

// LastAuditCheckpoint returns the newest checkpoint of a node's chain, or ErrNotFound.
func (s *Store) LastAuditCheckpoint(ctx context.Context, node string) (AuditCheckpoint, error) {
	q := rebind(s.dialect, `SELECT node, seq, data FROM audit_checkpoints WHERE node = ? ORDER BY seq DESC LIMIT 1`)
	cp, err := scanCheckpoint(s.r.QueryRowContext(ctx, q, node))
	if err != nil {
		return AuditCheckpoint{}, fmt.Errorf("store: last audit checkpoint: %w", mapErr(err))
	}
	return cp, nil
}

func scanCheckpoint(row rowScanner) (AuditCheckpoint, error) {
	var cp AuditCheckpoint
	var seq int64
	var data string
	err := row.Scan(&cp.Node, &seq, &data)
	cp.Seq, cp.Data = uint64(seq), []byte(data)
	return cp, err
}

// AuditNodes lists the nodes that have written audit events or checkpoints:
// a node whose events were all deleted is still listed while a checkpoint
// of it remains.
func (s *Store) AuditNodes(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT node FROM audit_events UNION SELECT DISTINCT node FROM audit_checkpoints ORDER BY node`)
	if err != nil {
		return nil, fmt.Errorf("store: list audit nodes: %w", err)
	}
	return collect(rows, func(r rowScanner) (string, error) {
		var n string
		err := r.Scan(&n)
		return n, err
	}, "list audit nodes")
}
