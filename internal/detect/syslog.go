package detect

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// SyslogNotifier sends each alert as one RFC 5424 message in a UDP datagram.
type SyslogNotifier struct {
	// Addr is the collector's host:port.
	Addr string
	// Facility is the syslog facility number (default 10, security/authorization).
	Facility int
	// Hostname names this keygate node in the message; "" sends the RFC 5424 nil value "-".
	Hostname string
	// Dialer opens the socket; nil means a net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
}

// sdID is keygate's structured-data element; 32473 is the enterprise number RFC 5612 sets
// aside for examples, to be replaced by keygate's own once registered.
const sdID = "keygate@32473"

// Notify sends a to the collector.
func (s *SyslogNotifier) Notify(ctx context.Context, a Alert) error {
	var d interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	} = &net.Dialer{}
	if s.Dialer != nil {
		d = s.Dialer
	}
	conn, err := d.DialContext(ctx, "udp", s.Addr)
	if err != nil {
		return fmt.Errorf("detect: syslog to %s: %w", s.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte(s.Format(a))); err != nil {
		return fmt.Errorf("detect: syslog to %s: send alert %s: %w", s.Addr, a.ID, err)
	}
	return nil
}

// Format renders a as one RFC 5424 line:
// <PRI>1 TIMESTAMP HOSTNAME keygate - MSGID [keygate@32473 ...] summary
func (s *SyslogNotifier) Format(a Alert) string {
	fac := s.Facility
	if fac <= 0 || fac > 23 {
		fac = 10
	}
	sev := map[string]int{SeverityHigh: 2, SeverityMedium: 4, SeverityLow: 5, SeverityInfo: 6}[a.Severity]
	if a.Severity == "" || a.Recovered {
		sev = 6
	}
	host := header(s.Hostname, 255)
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s keygate - %s [%s", fac*8+sev, a.At.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		host, header(a.Rule, 32), sdID)
	param := func(k, v string) {
		if v != "" {
			b.WriteString(" " + k + `="` + sdEscape(v) + `"`)
		}
	}
	param("id", a.ID)
	param("severity", a.Severity)
	param("key", a.KeyID)
	param("prefix", a.KeyPrefix)
	param("client", a.Client)
	if a.Recovered {
		param("recovered", "true")
	}
	names := make([]string, 0, len(a.Numbers))
	for k := range a.Numbers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		param(header(k, 32), strconv.FormatFloat(a.Numbers[k], 'g', 6, 64))
	}
	if len(a.Events) > 0 {
		ev := make([]string, len(a.Events))
		for i, e := range a.Events {
			ev[i] = strconv.FormatUint(e, 10)
		}
		param("events", strings.Join(ev, ","))
	}
	b.WriteString("] ")
	b.WriteString(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, a.Summary))
	return b.String()
}

// header makes s a valid RFC 5424 header field: printable US-ASCII without spaces, at most n
// characters, "-" when empty.
func header(s string, n int) string {
	out := strings.Map(func(r rune) rune {
		if r < 33 || r > 126 || r == '=' || r == ']' || r == '"' {
			return '_'
		}
		return r
	}, s)
	if len(out) > n {
		out = out[:n]
	}
	if out == "" {
		return "-"
	}
	return out
}

// sdEscape escapes a structured-data parameter value as RFC 5424 section 6.3.3 requires.
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`, "\n", " ").Replace(s)
}
