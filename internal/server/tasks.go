package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// task is one piece of background work a node does while it serves: the
// node's table of them (Node.tasks) is the whole list, and one runner
// starts them all and waits for them.
type task struct {
	// name says what the task does, in logs and in tests.
	name string
	// every is how often run is called. Every task is periodic: work that
	// must follow something (the revocation log, other nodes' changes)
	// polls, and keeps what it has seen between runs.
	every time.Duration
	// wake, when set, runs the task at once rather than at its next tick:
	// the change follower is woken by a database notification.
	wake <-chan struct{}
	// run does the work once; it must return soon after ctx ends.
	run func(ctx context.Context)
	// final makes the runner call run once more after the listeners have
	// drained and every task has stopped: a task that buffers what the
	// last requests left (last-used times, usage, risk histories) writes
	// it out.
	final bool
}

// Panic policy: a run that panics is logged (with where it panicked, never
// the panic's value, which could hold a secret) and the task runs again at
// its next interval, after a back-off that doubles up to panicBackoffMax
// while it keeps panicking. Failing the node instead would turn a bug in,
// say, the janitor into an outage of the data plane; letting the task die
// silently would stop, say, revocations from reaching this node. A restart
// keeps both the traffic and the task.
const (
	panicBackoffMin = time.Second
	panicBackoffMax = time.Minute
	// finalRunTimeout bounds each task's last run at shutdown.
	finalRunTimeout = 5 * time.Second
)

// taskRunner runs a table of tasks, each in its own goroutine, until it is
// stopped.
type taskRunner struct {
	log   *slog.Logger
	tasks []task
	stats []taskStats // by index in tasks

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// taskStats counts what a task has done, for tests and for the log at shutdown.
type taskStats struct {
	runs, panics atomic.Int64
}

func newTaskRunner(tasks []task, log *slog.Logger) *taskRunner {
	return &taskRunner{log: log, tasks: tasks, stats: make([]taskStats, len(tasks))}
}

// start runs every task until stop. It is called once.
func (r *taskRunner) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for i := range r.tasks {
		r.wg.Go(func() { r.loop(ctx, i) })
	}
}

// stop ends every task and waits for them; then each final task runs once
// more, in table order, each bounded by finalRunTimeout (and by ctx). A
// runner that was never started still makes the final runs: what Build's
// caller recorded is written out all the same.
func (r *taskRunner) stop(ctx context.Context) {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	for i, t := range r.tasks {
		if !t.final {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, finalRunTimeout)
		r.runOnce(fctx, i)
		cancel()
	}
}

func (r *taskRunner) loop(ctx context.Context, i int) {
	t := r.tasks[i]
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	backoff := panicBackoffMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.wake:
		}
		if r.runOnce(ctx, i) {
			backoff = panicBackoffMin
			continue
		}
		// It panicked: wait before its next run, longer each time in a row.
		wait := max(backoff, t.every)
		backoff = min(2*backoff, panicBackoffMax)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		tick.Reset(t.every)
	}
}

// runOnce runs task i once and reports whether it returned without panicking.
func (r *taskRunner) runOnce(ctx context.Context, i int) (ok bool) {
	t := r.tasks[i]
	st := &r.stats[i]
	defer func() {
		st.runs.Add(1)
		if v := recover(); v != nil {
			n := st.panics.Add(1)
			r.log.Error("a background task panicked; it runs again at its next interval",
				"task", t.name, "panic_type", panicType(v), "at", panicSite(), "panics", n)
			ok = false
		}
	}()
	t.run(ctx)
	return true
}

// panicType describes a panic value without printing it: it could hold a
// secret, and the log must stay free of them.
func panicType(v any) string {
	if err, ok := v.(runtime.Error); ok {
		return "runtime error: " + err.Error()
	}
	return fmt.Sprintf("%T", v)
}

// panicSite lists the functions, files and lines a panic unwound from,
// without argument values. Call it from the deferred function that recovered.
func panicSite() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(1, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var out []string
	seenPanic := false
	for {
		f, more := frames.Next()
		if seenPanic && !strings.HasPrefix(f.Function, "runtime.") {
			out = append(out, fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line))
			if len(out) == 8 {
				break
			}
		}
		if f.Function == "runtime.gopanic" || strings.HasPrefix(f.Function, "runtime.panic") {
			seenPanic = true
		}
		if !more {
			break
		}
	}
	return strings.Join(out, " < ")
}
