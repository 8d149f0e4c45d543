package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// checkpointDomain separates checkpoint signatures from anything else keygate
// signs with the same key; checkpointDomainV2 marks checkpoints that also
// name their node and the checkpoint before them.
const (
	checkpointDomain   = "keygate audit checkpoint v1\n"
	checkpointDomainV2 = "keygate audit checkpoint v2\n"
)

// Checkpoint is a signed statement that the trail held Seq events and that
// the event at Seq had hash Hash. Stored apart from the events (another
// sink, a database, an auditor's inbox), checkpoints reveal a trail that was
// rewritten or cut short.
//
// A version 2 checkpoint (V 2) also names the node whose chain it covers and
// PrevSeq, the seq of the checkpoint made before it on that chain (0 for the
// first), so the checkpoints form a chain of their own: a later checkpoint
// shows that an earlier one existed. Every field but KeyID and Signature is
// covered by the signature.
type Checkpoint struct {
	V         int       `json:"v,omitempty"`
	Node      string    `json:"node,omitempty"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	PrevSeq   uint64    `json:"prev_seq,omitempty"`
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
func checkpointMessage(cp Checkpoint) ([]byte, error) {
	b := make([]byte, 0, len(checkpointDomainV2)+len(cp.Node)+20+1+64+1+35+1+20+8)
	switch cp.V {
	case 0:
		if cp.Node != "" || cp.PrevSeq != 0 {
			return nil, fmt.Errorf("audit: checkpoint %d names a node or a previous checkpoint but is not version 2, so its signature does not cover them", cp.Seq)
		}
		b = append(b, checkpointDomain...)
	case 2:
		b = append(b, checkpointDomainV2...)
		b = strconv.AppendInt(b, int64(len(cp.Node)), 10)
		b = append(b, ':')
		b = append(b, cp.Node...)
		b = append(b, '\n')
	default:
		return nil, fmt.Errorf("audit: checkpoint %d has version %d, which this keygate does not know; verify it with a newer keygate", cp.Seq, cp.V)
	}
	b = strconv.AppendUint(b, cp.Seq, 10)
	b = append(b, '\n')
	b = append(b, cp.Hash...)
	b = append(b, '\n')
	b = cp.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '\n')
	if cp.V == 2 {
		b = strconv.AppendUint(b, cp.PrevSeq, 10)
		b = append(b, '\n')
	}
	return b, nil
}

// Sign returns a version 1 checkpoint for ev, dated with ev's time and
// signed with priv. keygate's writer makes version 2 checkpoints with
// SignLinked.
func Sign(priv ed25519.PrivateKey, ev Event) Checkpoint {
	return sign(priv, Checkpoint{Seq: ev.Seq, Hash: ev.Hash, Time: ev.Time.UTC().Round(0)})
}

// SignLinked returns a version 2 checkpoint for ev on node's chain, dated
// with ev's time, naming prevSeq (the seq of the checkpoint made before it
// on that chain, 0 for the first) and signed with priv.
func SignLinked(priv ed25519.PrivateKey, node string, prevSeq uint64, ev Event) Checkpoint {
	return sign(priv, Checkpoint{V: 2, Node: node, Seq: ev.Seq, Hash: ev.Hash, Time: ev.Time.UTC().Round(0), PrevSeq: prevSeq})
}

func sign(priv ed25519.PrivateKey, cp Checkpoint) Checkpoint {
	msg, err := checkpointMessage(cp)
	if err != nil {
		panic(err) // Sign and SignLinked only build well-formed checkpoints
	}
	cp.KeyID = KeyIDOf(priv.Public().(ed25519.PublicKey))
	cp.Signature = ed25519.Sign(priv, msg)
	return cp
}

// VerifyCheckpoint reports whether cp was signed by pub over its own
// fields. It returns nil for a good checkpoint.
func VerifyCheckpoint(pub ed25519.PublicKey, cp Checkpoint) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("audit: checkpoint public key has the wrong length; pass the Ed25519 public key keygate signs checkpoints with")
	}
	if cp.KeyID != "" && cp.KeyID != KeyIDOf(pub) {
		return fmt.Errorf("audit: checkpoint %d was signed by key %s, not %s; verify it with the matching public key", cp.Seq, cp.KeyID, KeyIDOf(pub))
	}
	msg, err := checkpointMessage(cp)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, cp.Signature) {
		return fmt.Errorf("audit: checkpoint %d has an invalid signature: it was altered or not signed by this key", cp.Seq)
	}
	return nil
}

// sameCheckpoint reports whether a and b are the same checkpoint, field for field.
func sameCheckpoint(a, b Checkpoint) bool {
	return a.V == b.V && a.Node == b.Node && a.Seq == b.Seq && a.Hash == b.Hash && a.Time.Equal(b.Time) &&
		a.PrevSeq == b.PrevSeq && a.KeyID == b.KeyID && bytes.Equal(a.Signature, b.Signature)
}
