// Package audit keeps keygate's tamper-evident audit trail: every attempt to
// use a credential, every policy decision and every admin action becomes an
// Event, chained to the one before it by a SHA-256 hash, periodically covered
// by an Ed25519-signed Checkpoint, and written in batches to one or more sinks
// (a JSON-lines file, syslog, a webhook, keygate's database). An auditor reads
// the trail back and runs Verify, which names the first place where an event
// was edited, deleted, inserted or reordered, or where the trail was cut short.
//
// Checkpoints go to every sink, not only the database, and each names the
// one before it, so an external copy (ReadCopy) or a later checkpoint shows
// events and checkpoints someone removed from the database; VerifyAll holds
// every stored chain to them and reports how much of the tail checkpoints
// cover.
//
// # Event schema
//
// Each event is one JSON object; the field names and their order are stable:
//
//	seq       uint64   position in the trail, 1 for the first event
//	time      string   UTC, RFC 3339 with nanoseconds
//	type      string   "auth.success", "auth.failure", "policy.decision", "admin.action",
//	                   "secret.read", "key.rotated", "key.revoked", "alert", ...
//	actor     string   who acted (user or key owner); omitted when empty
//	key_id    string   the keygate key involved; omitted when empty
//	client    string   client address; omitted when empty
//	resource  string   what was acted on; omitted when empty
//	decision  string   "allow", "deny", ...; omitted when empty
//	reasons   []string why; omitted when empty
//	fields    object   string to string extras; omitted when empty
//	prev      string   hex SHA-256 of the previous event's canonical encoding; "" for the first
//	hash      string   hex SHA-256 of this event's canonical encoding
//
// The canonical encoding of an event is its encoding/json form with hash set
// to "". A line of the file sink looks like this:
//
//	{"seq":2,"time":"2026-03-01T12:00:00.123456789Z","type":"auth.failure","key_id":"key_7f3a","client":"203.0.113.9","reasons":["expired"],"prev":"9c1e...","hash":"4b7d..."}
//
// Never put a secret in an event. An identifier that could itself be
// sensitive (an upstream key's fingerprint, a token id) goes in as RefHMAC of
// it, so the trail can be searched for it without revealing it.
package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Event is one entry of the audit trail. See the package documentation for
// the JSON schema. Seq, Prev and Hash are set by a Chain.
type Event struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`
	Actor    string            `json:"actor,omitempty"`
	KeyID    string            `json:"key_id,omitempty"`
	Client   string            `json:"client,omitempty"`
	Resource string            `json:"resource,omitempty"`
	Decision string            `json:"decision,omitempty"`
	Reasons  []string          `json:"reasons,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
	Prev     string            `json:"prev"`
	Hash     string            `json:"hash"`
}

// Sink stores batches of chained events. Write receives events in chain order
// and must not modify them; it either stores the whole batch or returns an
// error, in which case the same events are offered again later. keygate's
// file, syslog and webhook sinks are in this package; the database sink
// lives with the store.
type Sink interface {
	Write(ctx context.Context, batch []Event) error
	Close() error
}

// CheckpointSink is a Sink that also keeps signed checkpoints. The writer
// gives each checkpoint to every sink that is one, after that sink has
// stored the events it covers, and offers it again until it is stored. The
// file, syslog and webhook sinks are; so is keygate's database sink. A sink
// may receive a checkpoint twice and must accept that.
type CheckpointSink interface {
	Sink
	WriteCheckpoint(ctx context.Context, cp Checkpoint) error
}

// RefHMAC returns a reference to a sensitive value: the hex form of the first
// 16 bytes of HMAC-SHA256(key, value). Equal values give equal references
// under one key, so the trail can be searched without holding the value.
func RefHMAC(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Canonical returns the event's canonical encoding: its JSON form with Hash
// empty. The event's Hash is the hex SHA-256 of these bytes.
func (e Event) Canonical() ([]byte, error) {
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("audit: encoding event %d: its time %v falls outside years 0-9999", e.Seq, e.Time)
	}
	e.Hash = ""
	return e.AppendJSON(make([]byte, 0, 256)), nil
}

// ComputeHash returns the hex SHA-256 of the event's canonical encoding,
// which equals e.Hash when the event is unaltered.
func (e Event) ComputeHash() (string, error) {
	b, err := e.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// normalize makes an event survive a round trip through JSON unchanged, so
// that its hash still matches once it has been stored and read back: times in
// UTC without a monotonic reading, strings as valid UTF-8.
func normalize(e *Event) {
	e.Time = e.Time.UTC().Round(0)
	fix := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	e.Type, e.Actor, e.KeyID = fix(e.Type), fix(e.Actor), fix(e.KeyID)
	e.Client, e.Resource, e.Decision = fix(e.Client), fix(e.Resource), fix(e.Decision)
	if len(e.Reasons) > 0 {
		r := make([]string, len(e.Reasons))
		for i, s := range e.Reasons {
			r[i] = fix(s)
		}
		e.Reasons = r
	} else {
		e.Reasons = nil
	}
	if len(e.Fields) > 0 {
		f := make(map[string]string, len(e.Fields))
		for k, v := range e.Fields {
			f[fix(k)] = fix(v)
		}
		e.Fields = f
	} else {
		e.Fields = nil
	}
}
