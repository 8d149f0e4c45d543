package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/keygate/keygate/internal/siem"
)

// syslogWriters opens one siem.Writer per syslog destination, shared by
// the audit trail and the alert notifier: when audit.syslog and
// alerts.syslog name the same collector, both go through one connection,
// with one host name and one format (the syslog: section).
type syslogWriters struct {
	opts siem.Options // all but the URL
	mu   sync.Mutex
	open map[string]*siem.Writer
}

// newSyslogWriters reads the syslog: section; the CA file is read here so
// a bad one fails the configuration check.
func newSyslogWriters(p *plan, version string) (*syslogWriters, error) {
	c := p.cfg.Syslog
	var roots *x509.CertPool
	if c.CAFile != "" {
		var err error
		if roots, err = siem.LoadRoots(c.CAFile); err != nil {
			return nil, fmt.Errorf("config: syslog.ca_file: %w", err)
		}
	}
	return &syslogWriters{opts: siem.Options{Format: siem.Format(c.Format), Facility: c.Facility, Hostname: c.Hostname, Version: version, RootCAs: roots},
		open: map[string]*siem.Writer{}}, nil
}

// writer returns the writer for url, dialling it the first time.
func (s *syslogWriters) writer(ctx context.Context, url string) (*siem.Writer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.open[url]; ok {
		return w, nil
	}
	o := s.opts
	o.URL = url
	w, err := siem.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	s.open[url] = w
	return w, nil
}

// close closes every writer, after the audit trail and the alerts have
// stopped.
func (s *syslogWriters) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for url, w := range s.open {
		_ = w.Close()
		delete(s.open, url)
	}
}
