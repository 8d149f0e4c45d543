package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/siem"
)

// SyslogOptions configures a SyslogSink of its own (DialSyslog).
type SyslogOptions struct {
	Network  string        // "udp", "tcp" or "tls"
	Addr     string        // host:port of the syslog collector
	Facility int           // syslog facility (default 10, authpriv)
	Hostname string        // HOSTNAME field (default os.Hostname)
	AppName  string        // APP-NAME field (default "keygate")
	Timeout  time.Duration // dial timeout (default 5s)
	Format   siem.Format   // rfc5424 (default) or cef
}

// sdID is the structured data element keygate's events travel in.
const sdID = siem.SDID

// SyslogSink sends each event as one syslog message through a
// siem.Writer, which it may share with the alert notifier: over UDP
// (one datagram per event), TCP or TLS (octet-counting framing). In
// RFC 5424 the main fields go in a [keygate@32473 ...] structured data
// element and the full JSON event, hash included, is the message; in
// CEF they are the extension. Over TCP a failed batch is sent again in
// full, so a collector may see an event twice; the seq field tells
// duplicates apart.
type SyslogSink struct {
	w    *siem.Writer
	own  bool // the sink dialled w and closes it
	mu   sync.Mutex
	recs []siem.Record
}

// NewSyslogSink sends events through w, which the caller closes.
func NewSyslogSink(w *siem.Writer) *SyslogSink { return &SyslogSink{w: w} }

// DialSyslog connects to the collector named in opts.
func DialSyslog(ctx context.Context, opts SyslogOptions) (*SyslogSink, error) {
	if opts.Network != "udp" && opts.Network != "tcp" && opts.Network != "tls" {
		return nil, fmt.Errorf("audit: syslog network %q is not supported; use \"udp\", \"tcp\" or \"tls\"", opts.Network)
	}
	w, err := siem.Dial(ctx, siem.Options{URL: opts.Network + "://" + opts.Addr, Facility: opts.Facility, Hostname: opts.Hostname,
		AppName: opts.AppName, Timeout: opts.Timeout, Format: opts.Format})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &SyslogSink{w: w, own: true}, nil
}

// Write sends the batch. Over TCP and TLS the whole batch goes in one write.
func (s *SyslogSink) Write(ctx context.Context, batch []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = s.recs[:0]
	for i := range batch {
		s.recs = append(s.recs, EventRecord(&batch[i]))
	}
	if err := s.w.Send(ctx, s.recs...); err != nil && len(batch) > 0 {
		return fmt.Errorf("audit: sending events from seq %d: %w", batch[0].Seq, err)
	}
	return nil
}

// WriteCheckpoint sends cp as one message of type audit.checkpoint (severity
// notice) whose fields name its node, seq, hash and signing key, and whose
// message is the {"checkpoint":...} line a file copy holds.
func (s *SyslogSink) WriteCheckpoint(ctx context.Context, cp Checkpoint) error {
	rec := siem.Record{Time: cp.Time, Severity: 5, ID: "audit.checkpoint", Name: "audit trail checkpoint",
		Fields: []siem.Field{
			{Name: "node", CEF: "dvchost", Value: cp.Node},
			{Name: "seq", CEF: "cn1", Value: strconv.FormatUint(cp.Seq, 10)},
			{Name: "hash", CEF: "cs3", Value: cp.Hash},
			{Name: "key_id", CEF: "cs4", Value: cp.KeyID},
		},
		Text: string(AppendCheckpointLine(nil, cp))}
	if err := s.w.Send(ctx, rec); err != nil {
		return fmt.Errorf("audit: sending checkpoint %d: %w", cp.Seq, err)
	}
	return nil
}

// Close closes the connection, if the sink dialled it.
func (s *SyslogSink) Close() error {
	if !s.own {
		return nil
	}
	return s.w.Close()
}

// EventRecord describes ev for a SIEM: its fields in RFC 5424 structured
// data or as CEF's standard keys (src, suser, act, reason, request) and
// labelled custom strings (cs1 key id, cs2 request id, cs3 hash, cn1
// seq); the message is the full JSON event.
func EventRecord(ev *Event) siem.Record {
	f := make([]siem.Field, 0, 12+len(ev.Reasons))
	add := func(name, cef, v string) { f = append(f, siem.Field{Name: name, CEF: cef, Value: v}) }
	add("seq", "cn1", strconv.FormatUint(ev.Seq, 10))
	add("type", "cat", ev.Type)
	add("actor", "suser", ev.Actor)
	add("key_id", "cs1", ev.KeyID)
	add("client", "src", ev.Client)
	add("resource", "request", ev.Resource)
	add("decision", "act", ev.Decision)
	for _, r := range ev.Reasons {
		add("reason", "reason", r)
	}
	add("hash", "cs3", ev.Hash)
	if ev.Fields != nil {
		add("request_id", "cs2", ev.Fields["request_id"])
		add("status", "", ev.Fields["status"])
		add("model", "", ev.Fields["model"])
		add("provider", "", ev.Fields["provider"])
	}
	name := ev.Type
	if ev.Decision != "" {
		name += " " + ev.Decision
	}
	return siem.Record{Time: ev.Time, Severity: severity(ev.Type), ID: ev.Type, Name: name, Fields: f, Text: string(ev.AppendJSON(nil))}
}

// severity maps an event type to a syslog severity.
func severity(typ string) int {
	switch {
	case typ == "alert", typ == "auth.failure":
		return 4 // warning
	case typ == "key.revoked", typ == "key.rotated", strings.HasPrefix(typ, "admin."):
		return 5 // notice
	}
	return 6 // informational
}
