// Package chaos runs keygate as a small production cluster on one machine
// and breaks it on purpose: three `keygate serve` processes sharing a real
// PostgreSQL database and a real Redis, behind a real HAProxy, with fake
// providers two per alias, under a steady mixed load. It injects one fault
// after another (node crashes and restarts, Redis and PostgreSQL outages, a
// provider that hangs or fails, the audit sink down, a partition, a slow
// KMS), then checks what callers saw and that nothing was lost: every
// admitted call audited, every node's audit chain intact, spend recorded
// equal to spend billed, no quota or budget exceeded, every revocation in
// force on every node within a second. A soak then holds the load steady
// and checks memory, goroutines, open files and latency stay flat.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Options configures a run.
type Options struct {
	// Binary is the keygate executable the nodes run (`keygate serve`).
	Binary string
	// Postgres is a PostgreSQL server URL whose role may create databases;
	// the suite creates a database of its own there and drops it after.
	Postgres string
	// Short is the CI form: faults held a few seconds, a one-minute soak.
	Short bool
	// Soak is how long the soak holds the load steady after the faults;
	// 0 skips it.
	Soak time.Duration
	// MinAvailability fails the run when fewer calls than this share were
	// answered correctly, over the run and within any fault.
	MinAvailability float64
	// Rate is the calls per second offered to the cluster, Workers the
	// most in flight at once.
	Rate    float64
	Workers int
	// Hold is how long each fault is held; Recover how long the load runs
	// after healing before the next; Steady the calm at the start.
	Hold, Recover, Steady time.Duration
	// Only, when set, runs just the faults whose names contain one of
	// these strings (such as "Redis" or "provider").
	Only []string
	// KeepDir keeps the working directory (logs, configurations) after the run.
	KeepDir bool
	// Progress receives a line per step (nothing when nil).
	Progress io.Writer
}

// Defaults fills the unset fields with the long form, or the short one.
func (o *Options) Defaults() {
	if o.Rate == 0 {
		o.Rate = 40
	}
	if o.Workers == 0 {
		o.Workers = 64
	}
	if o.MinAvailability == 0 {
		o.MinAvailability = 0.999
	}
	long := [3]time.Duration{30 * time.Second, 20 * time.Second, 60 * time.Second}
	if o.Short {
		long = [3]time.Duration{6 * time.Second, 5 * time.Second, 10 * time.Second}
	}
	if o.Hold == 0 {
		o.Hold = long[0]
	}
	if o.Recover == 0 {
		o.Recover = long[1]
	}
	if o.Steady == 0 {
		o.Steady = long[2]
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Run builds the cluster, runs the load through the faults and the soak,
// checks what was kept, and tears everything down. The report is returned
// even when a check failed; the error then says which.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.Defaults()
	if o.Binary == "" {
		return nil, errors.New("chaos: Options.Binary must name the keygate executable")
	}
	if o.Postgres == "" {
		return nil, errors.New("chaos: a PostgreSQL server is needed: give --postgres postgres://user@host:port/db or set KEYGATE_TEST_POSTGRES_URL")
	}
	dir, err := os.MkdirTemp("", "keygate-chaos-")
	if err != nil {
		return nil, err
	}
	dir, _ = filepath.Abs(dir)
	if o.KeepDir {
		fmt.Fprintf(o.Progress, "working directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	c, err := build(ctx, o, dir)
	if c != nil {
		defer c.teardown()
	}
	if err != nil {
		return nil, err
	}
	s := newSuite(c)
	return s.run(ctx)
}
