package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/sync/semaphore"
)

// Request bodies are read whole (to find the model and the output cap
// before anything is admitted), and a translated request holds a second
// copy. A few clients sending the largest bodies at once could otherwise
// take gigabytes: eight 30 MB translated bodies took the process from 53 MB
// to 849 MB. Every call therefore holds its share of one budget,
// client.max_inflight_body_bytes, while it runs: the body's declared size
// before it is read (the whole max_body_bytes for a body of unknown
// length, given back once read), three times that on the chat paths a
// translation may serve, two thirds of which it gives back once routing
// shows it is not translated. The share is taken in one step: two calls
// each holding part of what they need and waiting for the rest could
// otherwise wait each other out. A call that cannot get its share within
// memoryWait is answered 503 with Retry-After.

// memoryWait is how long a call waits for its share of the body budget.
const memoryWait = 2 * time.Second

// errMemoryBusy means the body budget stayed spent for memoryWait.
var errMemoryBusy = errors.New("keygate is holding as many request bodies as client.max_inflight_body_bytes allows")

// bodyBudget is the gateway's budget of request-body bytes in memory.
type bodyBudget struct {
	sem  *semaphore.Weighted
	size int64
}

func newBodyBudget(size int64) *bodyBudget {
	if size <= 0 {
		return nil
	}
	return &bodyBudget{sem: semaphore.NewWeighted(size), size: size}
}

// hold takes n more bytes of the budget for the call, waiting up to
// memoryWait.
func (g *Gateway) hold(ctx context.Context, c *call, n int64) error {
	b := g.bodyMem
	if b == nil || n <= 0 {
		return nil
	}
	n = min(n, b.size-c.memHeld) // a call never waits for more than the whole budget
	if n <= 0 {
		return nil
	}
	if !b.sem.TryAcquire(n) {
		wctx, cancel := context.WithTimeout(ctx, memoryWait)
		err := b.sem.Acquire(wctx, n)
		cancel()
		if err != nil {
			return errMemoryBusy
		}
	}
	c.memHeld += n
	return nil
}

// giveBack returns n of the call's bytes to the budget.
func (g *Gateway) giveBack(c *call, n int64) {
	n = min(n, c.memHeld)
	if g.bodyMem == nil || n <= 0 {
		return
	}
	c.memHeld -= n
	g.bodyMem.sem.Release(n)
}

// untranslated gives back the share a call held for a translated copy of
// its body, once routing shows it will not be translated.
func (g *Gateway) untranslated(c *call, body []byte) {
	if c.translated {
		c.translated = false
		g.giveBack(c, 2*int64(len(body)))
	}
}

// busyDenial answers a call that could not get its share of the budget.
func busyDenial() *Denial {
	den := deny(http.StatusServiceUnavailable, "server_busy", "keygate is holding as many large request bodies as it may at once; retry shortly")
	den.RetryAfter = time.Second
	return den
}
