package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// checkpointDomain separates checkpoint signatures from anything else keygate
// signs with the same key.
const checkpointDomain = "keygate audit checkpoint v1\n"

// Checkpoint is a signed statement that the trail held Seq events and that
// the event at Seq had hash Hash. Stored apart from the events (another
// sink, a database, an auditor's inbox), checkpoints reveal a trail that was
// rewritten or cut short.
type Checkpoint struct {
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

// KeyIDOf names a checkpoint signing key: the hex form of the first 8 bytes
// of the SHA-256 of the public key.
func KeyIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// checkpointMessage is the exact byte string a checkpoint signature covers.
func checkpointMessage(seq uint64, hash string, t time.Time) []byte {
	b := make([]byte, 0, len(checkpointDomain)+20+1+64+1+35+1)
	b = append(b, checkpointDomain...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '\n')
	b = append(b, hash...)
	b = append(b, '\n')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '\n')
	return b
}

// Sign returns a checkpoint for ev, dated with ev's time and signed with priv.
func Sign(priv ed25519.PrivateKey, ev Event) Checkpoint {
	t := ev.Time.UTC().Round(0)
	return Checkpoint{
		Seq:       ev.Seq,
		Hash:      ev.Hash,
		Time:      t,
		KeyID:     KeyIDOf(priv.Public().(ed25519.PublicKey)),
		Signature: ed25519.Sign(priv, checkpointMessage(ev.Seq, ev.Hash, t)),
	}
}

// VerifyCheckpoint reports whether cp was signed by pub over its own seq,
// hash and time. It returns nil for a good checkpoint.
func VerifyCheckpoint(pub ed25519.PublicKey, cp Checkpoint) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("audit: checkpoint public key has the wrong length; pass the Ed25519 public key keygate signs checkpoints with")
	}
	if cp.KeyID != "" && cp.KeyID != KeyIDOf(pub) {
		return fmt.Errorf("audit: checkpoint %d was signed by key %s, not %s; verify it with the matching public key", cp.Seq, cp.KeyID, KeyIDOf(pub))
	}
	if !ed25519.Verify(pub, checkpointMessage(cp.Seq, cp.Hash, cp.Time), cp.Signature) {
		return fmt.Errorf("audit: checkpoint %d has an invalid signature: it was altered or not signed by this key", cp.Seq)
	}
	return nil
}
