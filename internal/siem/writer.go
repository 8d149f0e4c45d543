// Package siem sends keygate's audit events and alerts to a SIEM over
// syslog: one Writer per collector, shared by the audit trail and the
// alert notifier, over UDP (one datagram per message), TCP (octet-counting
// framing, RFC 6587) or TLS (RFC 5425, the collector's certificate
// verified), in RFC 5424 structured data or ArcSight's Common Event
// Format (CEF). The packages that own the events (internal/audit,
// internal/detect) describe each one as a Record; this package frames,
// formats and sends it.
package siem

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures a Writer.
type Options struct {
	// URL is the collector: udp://host:514, tcp://host:601 or
	// tls://host:6514.
	URL string
	// Format is FormatRFC5424 (the default) or FormatCEF.
	Format Format
	// Facility is the syslog facility (default 10, security/authorization).
	Facility int
	// Hostname is the HOSTNAME field (default os.Hostname), the same for
	// audit events and alerts.
	Hostname string
	// AppName is the APP-NAME field (default "keygate").
	AppName string
	// Version is keygate's version, the CEF header's device version.
	Version string
	// RootCAs verifies a TLS collector's certificate; nil uses the
	// system's roots. The certificate must name the URL's host.
	RootCAs *x509.CertPool
	// Timeout bounds a dial (default 5s).
	Timeout time.Duration
}

// Writer is one connection to a syslog collector. It is safe for
// concurrent use; a broken TCP or TLS connection is dialled again on the
// next send.
type Writer struct {
	opts    Options
	network string // udp, tcp or tls
	addr    string
	mu      sync.Mutex
	conn    net.Conn
	buf     []byte
}

// Dial checks o and connects to the collector.
func Dial(ctx context.Context, o Options) (*Writer, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("siem: syslog destination %q is not a URL such as udp://host:514, tcp://host:601 or tls://host:6514", o.URL)
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
	default:
		return nil, fmt.Errorf("siem: syslog transport %q is not supported; use udp, tcp or tls", u.Scheme)
	}
	if o.Format == "" {
		o.Format = FormatRFC5424
	}
	if o.Format != FormatRFC5424 && o.Format != FormatCEF {
		return nil, fmt.Errorf("siem: format %q is not supported; use rfc5424 or cef", o.Format)
	}
	if o.Facility == 0 {
		o.Facility = 10
	}
	if o.Facility < 0 || o.Facility > 23 {
		return nil, fmt.Errorf("siem: syslog facility %d is out of range; use 0-23", o.Facility)
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	o.Hostname = HeaderField(o.Hostname, 255)
	if o.AppName == "" {
		o.AppName = "keygate"
	}
	o.AppName = HeaderField(o.AppName, 48)
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	w := &Writer{opts: o, network: u.Scheme, addr: u.Host}
	if err := w.dial(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// Format is how a message's content is written.
type Format string

// The formats a Writer writes.
const (
	// FormatRFC5424 puts a record's fields in a [keygate@32473 ...]
	// structured data element and its text in the message.
	FormatRFC5424 Format = "rfc5424"
	// FormatCEF writes the message as an ArcSight CEF:0 line after the
	// RFC 5424 header.
	FormatCEF Format = "cef"
)

// Format reports the format the writer writes.
func (w *Writer) Format() Format { return w.opts.Format }

// Destination names the collector, for messages: transport://host:port.
func (w *Writer) Destination() string { return w.network + "://" + w.addr }

func (w *Writer) dial(ctx context.Context) error {
	d := net.Dialer{Timeout: w.opts.Timeout}
	var c net.Conn
	var err error
	if w.network == "tls" {
		host, _, _ := net.SplitHostPort(w.addr)
		td := tls.Dialer{NetDialer: &d, Config: &tls.Config{RootCAs: w.opts.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12}}
		c, err = td.DialContext(ctx, "tcp", w.addr)
	} else {
		c, err = d.DialContext(ctx, w.network, w.addr)
	}
	if err != nil {
		return fmt.Errorf("siem: connecting to syslog collector %s: %w; check the address, that the collector is running and, over TLS, that its certificate is trusted and names the host", w.Destination(), err)
	}
	w.conn = c
	return nil
}

// Send formats and sends records, in order: one datagram each over UDP,
// one write of octet-counted frames over TCP and TLS.
func (w *Writer) Send(ctx context.Context, recs ...Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		if err := w.dial(ctx); err != nil {
			return err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = w.conn.SetWriteDeadline(dl)
	} else {
		_ = w.conn.SetWriteDeadline(time.Time{})
	}
	w.buf = w.buf[:0]
	for i := range recs {
		start := len(w.buf)
		w.buf = w.Append(w.buf, &recs[i])
		if w.network == "udp" {
			if _, err := w.conn.Write(w.buf[start:]); err != nil {
				return w.broken(err)
			}
			w.buf = w.buf[:start]
			continue
		}
		// Octet counting: the length, a space, the message.
		msg := len(w.buf) - start
		prefix := strconv.Itoa(msg) + " "
		w.buf = append(w.buf, prefix...)
		copy(w.buf[start+len(prefix):], w.buf[start:start+msg])
		copy(w.buf[start:], prefix)
	}
	if w.network != "udp" && len(w.buf) > 0 {
		if _, err := w.conn.Write(w.buf); err != nil {
			return w.broken(err)
		}
	}
	return nil
}

// broken drops a failed connection so the next send dials again.
func (w *Writer) broken(err error) error {
	w.conn.Close()
	w.conn = nil
	return fmt.Errorf("siem: sending to syslog %s: %w; will reconnect on the next send", w.Destination(), err)
}

// Close closes the connection.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// LoadRoots reads PEM certificates from file, for Options.RootCAs.
func LoadRoots(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("siem: reading the collector's CA file: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, errors.New("siem: the collector's CA file " + file + " holds no PEM certificate")
	}
	return p, nil
}

// HeaderField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most max characters, "-" when empty.
func HeaderField(s string, max int) string {
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
