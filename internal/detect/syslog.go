package detect

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/siem"
)

// SyslogNotifier sends each alert as one syslog message (RFC 5424 or
// CEF, as the writer is set) through a siem.Writer it shares with the
// audit trail, so both reach the collector from one connection with one
// host name.
type SyslogNotifier struct {
	// Writer is the connection to the collector; the caller closes it.
	Writer *siem.Writer
}

// Notify sends a to the collector.
func (s *SyslogNotifier) Notify(ctx context.Context, a Alert) error {
	if err := s.Writer.Send(ctx, AlertRecord(a)); err != nil {
		return fmt.Errorf("detect: alert %s: %w", a.ID, err)
	}
	return nil
}

// AlertRecord describes a for a SIEM: rule, severity, key, key prefix,
// client and the figures that raised it, as RFC 5424 structured data or
// CEF extension keys (externalId, src, cs1 key id, cs2 key prefix); the
// message is its summary.
func AlertRecord(a Alert) siem.Record {
	sev := map[string]int{SeverityHigh: 2, SeverityMedium: 4, SeverityLow: 5, SeverityInfo: 6}[a.Severity]
	if a.Severity == "" || a.Recovered {
		sev = 6
	}
	f := make([]siem.Field, 0, 8+len(a.Numbers))
	add := func(name, cef, v string) { f = append(f, siem.Field{Name: name, CEF: cef, Value: v}) }
	add("id", "externalId", a.ID)
	add("severity", "", a.Severity)
	add("key", "cs1", a.KeyID)
	add("prefix", "cs2", a.KeyPrefix)
	add("client", "src", a.Client)
	if a.Recovered {
		add("recovered", "", "true")
	}
	names := make([]string, 0, len(a.Numbers))
	for k := range a.Numbers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		add(siem.HeaderField(strings.NewReplacer("=", "_", "]", "_", `"`, "_").Replace(k), 32), "", strconv.FormatFloat(a.Numbers[k], 'g', 6, 64))
	}
	if len(a.Events) > 0 {
		ev := make([]string, len(a.Events))
		for i, e := range a.Events {
			ev[i] = strconv.FormatUint(e, 10)
		}
		add("events", "", strings.Join(ev, ","))
	}
	return siem.Record{Time: a.At, Severity: sev, ID: a.Rule, Name: a.Summary, Fields: f, Text: a.Summary}
}
