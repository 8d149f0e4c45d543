package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// nodeID names this keygate installation's audit chain. It is kept in the
// data directory, so a restarted node resumes its own chain, and nodes
// sharing a database keep separate ones.
func nodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := "node_" + hex.EncodeToString(r[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nodeID(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("record this node's id: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(id + "\n"); err != nil {
		return "", fmt.Errorf("record this node's id: %w", err)
	}
	return id, nil
}

// dbSink writes audit events to keygate's database, where keygate audit
// search and verify read them.
type dbSink struct {
	st   *store.Store
	node string
	log  *slog.Logger
}

func (s dbSink) Write(ctx context.Context, batch []audit.Event) error {
	recs := make([]store.AuditRecord, 0, len(batch))
	for i := range batch {
		ev := &batch[i]
		recs = append(recs, store.AuditRecord{Node: s.node, Seq: ev.Seq, Time: ev.Time, Type: ev.Type, KeyID: ev.KeyID, Data: ev.AppendJSON(nil)})
	}
	err := s.st.AppendAudit(ctx, recs)
	if !errors.Is(err, store.ErrConflict) || len(batch) == 0 {
		return err
	}
	// A retry of a batch that did land before has nothing to do. Rows at
	// these seqs that keygate did not write mean someone else writes this
	// node's trail: that cannot be repaired here, so it is reported, and
	// the checkpoints and external copies keep the genuine events.
	stored, serr := s.st.SearchAudit(ctx, store.AuditFilter{Node: s.node, AfterSeq: batch[0].Seq - 1, Limit: len(batch)})
	if serr != nil {
		return err
	}
	have := make(map[uint64][]byte, len(stored))
	for _, r := range stored {
		have[r.Seq] = r.Data
	}
	var foreign []uint64
	var missing []store.AuditRecord
	for _, r := range recs {
		d, ok := have[r.Seq]
		switch {
		case !ok:
			missing = append(missing, r)
		case !bytes.Equal(d, r.Data):
			foreign = append(foreign, r.Seq)
		}
	}
	if len(foreign) == 0 && len(missing) == 0 {
		return nil
	}
	s.log.Error("the database holds audit rows this keygate did not write at seqs it was storing; someone else writes this node's audit trail: run keygate audit verify --against an external copy",
		"node", s.node, "seqs", foreign)
	// Keep what can be kept of the genuine events beside the foreign rows.
	for _, r := range missing {
		if err := s.st.AppendAudit(ctx, []store.AuditRecord{r}); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

// WriteCheckpoint stores a signed checkpoint of this node's chain. One
// already stored (a retry after a timeout) is not an error; another
// checkpoint stored at its seq is reported.
func (s dbSink) WriteCheckpoint(ctx context.Context, cp audit.Checkpoint) error {
	data, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("audit: encoding checkpoint %d: %w", cp.Seq, err)
	}
	err = s.st.PutAuditCheckpoint(ctx, s.node, cp.Seq, data)
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	if cur, lerr := s.st.ListAuditCheckpoints(ctx, s.node, cp.Seq-1, 1); lerr == nil && (len(cur) != 1 || !bytes.Equal(cur[0].Data, data)) {
		s.log.Error("the database holds an audit checkpoint this keygate did not make at the seq it was storing; someone else writes this node's audit trail: run keygate audit verify",
			"node", s.node, "seq", cp.Seq)
	}
	return nil
}

func (s dbSink) Close() error { return nil }

// auditSigningRecord is the vault record of the checkpoint signing key seed.
const auditSigningRecord = "system/audit-signing-key"

// auditSigningKey returns the key that signs audit checkpoints.
func auditSigningKey(ctx context.Context, v *vault.Vault) (ed25519.PrivateKey, error) {
	seed, err := v.Ensure(ctx, auditSigningRecord, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	return ed25519.NewKeyFromSeed([]byte(seed.Reveal())), nil
}

// auditTrail is the audit writer with the node it writes for.
type auditTrail struct {
	w    *audit.Writer
	node string
	pub  ed25519.PublicKey
}

// newAudit builds the audit writer: the database always, and the file,
// syslog and webhook sinks the configuration names.
func newAudit(ctx context.Context, p *plan, st *store.Store, v *vault.Vault, log *slog.Logger) (*auditTrail, error) {
	cfg := p.cfg
	node, err := nodeID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var last audit.Event
	if rec, err := st.LastAudit(ctx, node); err == nil {
		if err := json.Unmarshal(rec.Data, &last); err != nil {
			return nil, fmt.Errorf("audit: the last stored event of this node cannot be read: %w", err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("audit: %w", err)
	}
	sinks := []audit.Sink{dbSink{st: st, node: node, log: log}}
	ok := false
	defer func() {
		if !ok { // the writer owns the sinks once it exists
			for _, s := range sinks {
				_ = s.Close()
			}
		}
	}()
	if cfg.Audit.File != "" {
		f, err := audit.OpenFile(cfg.Audit.File, audit.FileOptions{})
		if err != nil {
			return nil, fmt.Errorf("config: audit.file: %w", err)
		}
		sinks = append(sinks, f)
	}
	if u := p.auditSyslog; u != nil {
		w, err := p.syslogs.writer(ctx, u.String())
		if err != nil {
			return nil, fmt.Errorf("config: audit.syslog: %w", err)
		}
		sinks = append(sinks, audit.NewSyslogSink(w))
	}
	if cfg.Audit.Webhook != "" {
		if _, err := v.Ensure(ctx, admin.AuditWebhookKeyRecord, admin.WebhookKeySize); err != nil {
			return nil, fmt.Errorf("audit webhook signing key: %w", err)
		}
		// Read at every post (the vault caches it briefly), so a key rotated
		// with keygate audit webhook-key rotate applies without a restart.
		wh, err := audit.NewWebhookSink(audit.WebhookOptions{URL: cfg.Audit.Webhook, Client: cfg.EgressPolicy().Client(0), KeySource: func(ctx context.Context) (secret.String, error) {
			k, _, err := v.GetCached(ctx, admin.AuditWebhookKeyRecord)
			return k, err
		}})
		if err != nil {
			return nil, fmt.Errorf("config: audit.webhook: %w", err)
		}
		sinks = append(sinks, wh)
	}
	priv, err := auditSigningKey(ctx, v)
	if err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	lastCP := checkAuditResume(ctx, st, node, last, pub, log)
	log.Info("audit checkpoints are signed with this Ed25519 key; pin it for keygate audit verify --public-key (keygate audit public-key prints it)",
		"key_id", audit.KeyIDOf(pub), "public_key", hex.EncodeToString(pub))
	w, err := audit.NewWriter(audit.NewChain(last), sinks, audit.WriterOptions{
		FailClosed: cfg.Audit.FailClosed, FlushInterval: cfg.Audit.FlushInterval, Deadline: cfg.Audit.Deadline,
		SigningKey: priv, CheckpointInterval: cfg.Audit.CheckpointInterval, Node: node, LastCheckpoint: lastCP, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return &auditTrail{w: w, node: node, pub: pub}, nil
}

// checkAuditResume looks at where this node's stored chain ends before the
// writer continues it, and returns the seq of its newest stored checkpoint,
// which the next checkpoint names as its predecessor. A checkpoint past the
// last stored event, or one signed by another key, means the trail or the
// signing key was tampered with while keygate was stopped; that is logged
// as an error (keygate audit verify reports it too) and keygate goes on, so
// the evidence is kept rather than overwritten.
func checkAuditResume(ctx context.Context, st *store.Store, node string, last audit.Event, pub ed25519.PublicKey, log *slog.Logger) uint64 {
	rec, err := st.LastAuditCheckpoint(ctx, node)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.Error("could not read this node's newest audit checkpoint; the next checkpoint will not name it", "err", err)
		}
		return 0
	}
	var cp audit.Checkpoint
	if err := json.Unmarshal(rec.Data, &cp); err != nil {
		log.Error("this node's newest audit checkpoint is unreadable: the audit trail may have been tampered with; run keygate audit verify", "seq", rec.Seq)
		return rec.Seq
	}
	if rec.Seq > last.Seq {
		log.Error("a signed audit checkpoint covers events that are no longer stored: the audit trail was cut while keygate was stopped; run keygate audit verify",
			"checkpoint_seq", rec.Seq, "last_event_seq", last.Seq)
	}
	if cp.KeyID != "" && cp.KeyID != audit.KeyIDOf(pub) {
		log.Error("the audit signing key changed since the last checkpoint: its vault record was replaced; verify the trail with the pinned key (keygate audit verify --public-key)",
			"previous_key_id", cp.KeyID, "key_id", audit.KeyIDOf(pub))
	}
	return rec.Seq
}
