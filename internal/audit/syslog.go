package audit

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// SyslogOptions configures a SyslogSink.
type SyslogOptions struct {
	Network  string        // "udp" or "tcp"
	Addr     string        // host:port of the syslog collector
	Facility int           // syslog facility (default 10, authpriv)
	Hostname string        // HOSTNAME field (default os.Hostname)
	AppName  string        // APP-NAME field (default "keygate")
	Timeout  time.Duration // dial timeout (default 5s)
}

// sdID is the structured data element keygate's events travel in; 32473 is
// the private enterprise number RFC 5424 reserves for examples.
const sdID = "keygate@32473"

// SyslogSink sends each event as one RFC 5424 message to a syslog collector
// over UDP (one datagram per event) or TCP (octet-counting framing, RFC
// 6587). The main fields go in a [keygate@32473 ...] structured data element
// and the full JSON event, hash included, is the message. Over TCP a failed
// batch is sent again in full, so a collector may see an event twice; the
// seq parameter tells duplicates apart.
type SyslogSink struct {
	opts SyslogOptions
	mu   sync.Mutex
	conn net.Conn
	buf  []byte // a TCP batch
	msg  []byte // one message
}

// DialSyslog connects to the collector named in opts.
func DialSyslog(ctx context.Context, opts SyslogOptions) (*SyslogSink, error) {
	if opts.Network != "udp" && opts.Network != "tcp" {
		return nil, fmt.Errorf("audit: syslog network %q is not supported; use \"udp\" or \"tcp\"", opts.Network)
	}
	if opts.Facility == 0 {
		opts.Facility = 10
	}
	if opts.Facility < 0 || opts.Facility > 23 {
		return nil, fmt.Errorf("audit: syslog facility %d is out of range; use 0-23", opts.Facility)
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	opts.Hostname = headerField(opts.Hostname, 255)
	if opts.AppName == "" {
		opts.AppName = "keygate"
	}
	opts.AppName = headerField(opts.AppName, 48)
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	s := &SyslogSink{opts: opts}
	if err := s.dial(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *SyslogSink) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: s.opts.Timeout}
	c, err := d.DialContext(ctx, s.opts.Network, s.opts.Addr)
	if err != nil {
		return fmt.Errorf("audit: connecting to syslog collector %s over %s: %w; check the address and that the collector is running", s.opts.Addr, s.opts.Network, err)
	}
	s.conn = c
	return nil
}

// Write sends the batch. Over TCP the whole batch goes in one write.
func (s *SyslogSink) Write(ctx context.Context, batch []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(ctx); err != nil {
		return err
	}
	tcp := s.opts.Network == "tcp"
	s.buf = s.buf[:0]
	for i := range batch {
		msg, err := s.appendMessage(s.msg[:0], &batch[i])
		if err != nil {
			return err
		}
		s.msg = msg
		if !tcp {
			if _, err := s.conn.Write(msg); err != nil {
				return s.broken(err, batch[i].Seq)
			}
			continue
		}
		s.buf = strconv.AppendInt(s.buf, int64(len(msg)), 10)
		s.buf = append(s.buf, ' ')
		s.buf = append(s.buf, msg...)
	}
	if tcp {
		if _, err := s.conn.Write(s.buf); err != nil {
			return s.broken(err, batch[0].Seq)
		}
	}
	return nil
}

// WriteCheckpoint sends cp as one message of type audit.checkpoint (severity
// notice) whose structured data names its node, seq, hash and signing key,
// and whose message is the {"checkpoint":...} line a file copy holds.
func (s *SyslogSink) WriteCheckpoint(ctx context.Context, cp Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(ctx); err != nil {
		return err
	}
	msg := s.appendHeader(s.msg[:0], cp.Time, 5, "audit.checkpoint")
	param := func(name, v string) { msg = appendParam(msg, name, v) }
	param("node", cp.Node)
	param("seq", strconv.FormatUint(cp.Seq, 10))
	param("hash", cp.Hash)
	param("key_id", cp.KeyID)
	msg = append(msg, "] "...)
	msg = AppendCheckpointLine(msg, cp)
	s.msg = msg
	if s.opts.Network == "tcp" {
		s.buf = strconv.AppendInt(s.buf[:0], int64(len(msg)), 10)
		s.buf = append(s.buf, ' ')
		msg = append(s.buf, msg...)
		s.buf = msg
	}
	if _, err := s.conn.Write(msg); err != nil {
		return s.broken(err, cp.Seq)
	}
	return nil
}

// ready dials when the last write broke the connection and sets the write
// deadline from ctx. The caller holds s.mu.
func (s *SyslogSink) ready(ctx context.Context) error {
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(dl)
	} else {
		_ = s.conn.SetWriteDeadline(time.Time{})
	}
	return nil
}

// broken drops a failed connection so the next write dials again.
func (s *SyslogSink) broken(err error, seq uint64) error {
	s.conn.Close()
	s.conn = nil
	return fmt.Errorf("audit: sending events from seq %d to syslog %s: %w; will reconnect on the next batch", seq, s.opts.Addr, err)
}

// Close closes the connection.
func (s *SyslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
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

// appendMessage appends one RFC 5424 message (without framing) for ev.
func (s *SyslogSink) appendMessage(b []byte, ev *Event) ([]byte, error) {
	b = s.appendHeader(b, ev.Time, severity(ev.Type), ev.Type)
	param := func(name, v string) { b = appendParam(b, name, v) }
	param("seq", strconv.FormatUint(ev.Seq, 10))
	param("type", ev.Type)
	param("actor", ev.Actor)
	param("key_id", ev.KeyID)
	param("client", ev.Client)
	param("resource", ev.Resource)
	param("decision", ev.Decision)
	for _, r := range ev.Reasons {
		param("reason", r)
	}
	param("hash", ev.Hash)
	b = append(b, "] "...)
	return ev.AppendJSON(b), nil // JSON escaping keeps the message on one line
}

// appendHeader appends a message's header up to and including the opening
// of keygate's structured data element.
func (s *SyslogSink) appendHeader(b []byte, t time.Time, sev int, msgID string) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(s.opts.Facility*8+sev), 10)
	b = append(b, ">1 "...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, s.opts.Hostname...)
	b = append(b, ' ')
	b = append(b, s.opts.AppName...)
	b = append(b, " - "...)
	b = append(b, headerField(msgID, 32)...)
	return append(b, " ["+sdID...)
}

// appendParam appends one SD-PARAM, or nothing when v is empty.
func appendParam(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	b = appendParamValue(b, v)
	return append(b, '"')
}

// appendParamValue escapes v as an RFC 5424 PARAM-VALUE: '"', '\' and ']'
// get a backslash, and control characters, which could end or split the
// line at the collector, become U+FFFD.
func appendParamValue(b []byte, v string) []byte {
	for _, r := range strings.ToValidUTF8(v, "\uFFFD") {
		switch {
		case r == '"' || r == '\\' || r == ']':
			b = append(b, '\\', byte(r))
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b = append(b, "\uFFFD"...)
		default:
			b = append(b, string(r)...)
		}
	}
	return b
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most max characters, "-" when empty.
func headerField(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}
