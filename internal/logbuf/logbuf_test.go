package logbuf

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type countingWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.b.Write(p)
}

func TestBatchesAndLosesNothingOnClose(t *testing.T) {
	out := &countingWriter{}
	w := New(out, 1<<16, time.Hour) // only size and Close flush here
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(w, "g%d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSpace(out.b.String()), "\n")
	if len(lines) != 8000 {
		t.Fatalf("got %d lines, want 8000", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "g") || !strings.Contains(l, " line ") {
			t.Fatalf("a line was torn: %q", l)
		}
	}
	if out.writes >= 8000/10 {
		t.Fatalf("%d writes for 8000 lines: not batching", out.writes)
	}
}

func TestFlushesOnInterval(t *testing.T) {
	out := &countingWriter{}
	w := New(out, 1<<16, 10*time.Millisecond)
	defer w.Close()
	w.Write([]byte("hello\n"))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out.mu.Lock()
		got := out.b.String()
		out.mu.Unlock()
		if got == "hello\n" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("a queued line was not flushed by the interval")
}
