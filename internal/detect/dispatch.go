package detect

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// Dispatcher fans alerts out to notifiers without ever blocking the Engine: each notifier has
// its own bounded queue and worker, so a slow receiver delays only itself, and an alert that
// finds a queue full is dropped and counted.
type Dispatcher struct {
	now     func() time.Time
	timeout time.Duration
	onError func(notifier string, a Alert, err error)
	targets []*target
	wg      sync.WaitGroup
	stop    context.CancelFunc
	mu      sync.Mutex // guards closed against Emit racing Close
	closed  bool
}

// DispatcherOptions tunes a Dispatcher.
type DispatcherOptions struct {
	// Queue is each notifier's queue length (default 256).
	Queue int
	// Timeout bounds one delivery, retries included (default 30 s).
	Timeout time.Duration
	// Now is keygate's clock, for latency (default time.Now).
	Now func() time.Time
	// OnError hears about each delivery that failed for good, and each alert dropped on a
	// full queue (with ErrQueueFull), for keygate's log.
	OnError func(notifier string, a Alert, err error)
}

// ErrQueueFull reports an alert dropped because its notifier's queue was full.
var ErrQueueFull = errors.New("detect: notifier queue full, alert dropped")

type queued struct {
	a  Alert
	at time.Time
}

type target struct {
	name string
	n    Notifier
	q    chan queued

	mu    sync.Mutex
	stats LatencyStats
	// recent latencies for quantiles, a ring
	recent []time.Duration
	pos    int
}

// LatencyStats describes one notifier's deliveries, from enqueue to the end of delivery.
type LatencyStats struct {
	// Notifier is the name the notifier was given in NewDispatcher.
	Notifier string
	// Delivered, Failed and Dropped count alerts delivered, failed for good, and dropped on a full queue.
	Delivered, Failed, Dropped int64
	// Total is the summed latency of delivered and failed alerts.
	Total time.Duration
	// Max is the longest latency seen.
	Max time.Duration
	// P50 and P99 are over the latest 1024 deliveries.
	P50, P99 time.Duration
}

const latencyWindow = 1024

// NewDispatcher starts one worker per named notifier. Close stops them.
func NewDispatcher(notifiers map[string]Notifier, opts DispatcherOptions) (*Dispatcher, error) {
	if len(notifiers) == 0 {
		return nil, errors.New("detect: new dispatcher: no notifiers")
	}
	if opts.Queue <= 0 {
		opts.Queue = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{now: opts.Now, timeout: opts.Timeout, onError: opts.OnError, stop: cancel}
	names := make([]string, 0, len(notifiers))
	for name := range notifiers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if notifiers[name] == nil {
			cancel()
			return nil, errors.New("detect: new dispatcher: notifier " + name + " is nil")
		}
		t := &target{name: name, n: notifiers[name], q: make(chan queued, opts.Queue)}
		t.stats.Notifier = name
		d.targets = append(d.targets, t)
		d.wg.Add(1)
		go d.work(ctx, t)
	}
	return d, nil
}

// Emit queues a for every notifier and returns at once; it has the shape NewEngine's emit takes.
func (d *Dispatcher) Emit(a Alert) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	at := d.now()
	for _, t := range d.targets {
		select {
		case t.q <- queued{a: a, at: at}:
		default:
			t.mu.Lock()
			t.stats.Dropped++
			t.mu.Unlock()
			if d.onError != nil {
				d.onError(t.name, a, ErrQueueFull)
			}
		}
	}
}

func (d *Dispatcher) work(ctx context.Context, t *target) {
	defer d.wg.Done()
	for q := range t.q {
		dctx, cancel := context.WithTimeout(ctx, d.timeout)
		err := t.n.Notify(dctx, q.a)
		cancel()
		lat := d.now().Sub(q.at)
		t.mu.Lock()
		if err != nil {
			t.stats.Failed++
		} else {
			t.stats.Delivered++
		}
		t.stats.Total += lat
		t.stats.Max = max(t.stats.Max, lat)
		if len(t.recent) < latencyWindow {
			t.recent = append(t.recent, lat)
		} else {
			t.recent[t.pos] = lat
			t.pos = (t.pos + 1) % latencyWindow
		}
		t.mu.Unlock()
		if err != nil && d.onError != nil {
			d.onError(t.name, q.a, err)
		}
	}
}

// Latency returns each notifier's delivery statistics, ordered by notifier name, for
// keygate's metrics.
func (d *Dispatcher) Latency() []LatencyStats {
	out := make([]LatencyStats, 0, len(d.targets))
	for _, t := range d.targets {
		t.mu.Lock()
		s := t.stats
		sorted := append([]time.Duration(nil), t.recent...)
		t.mu.Unlock()
		if len(sorted) > 0 {
			sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
			s.P50 = sorted[(len(sorted)-1)*50/100]
			s.P99 = sorted[(len(sorted)-1)*99/100]
		}
		out = append(out, s)
	}
	return out
}

// Close stops accepting alerts and waits for the queued ones to be delivered until ctx ends;
// then it abandons the rest and reports ctx's error.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		for _, t := range d.targets {
			close(t.q)
		}
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		d.stop()
		return nil
	case <-ctx.Done():
		d.stop()
		<-done
		return errors.New("detect: dispatcher close: queued alerts abandoned: " + ctx.Err().Error())
	}
}
