package chaos

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// cutMode is how a cut link behaves towards new connections.
type cutMode int

const (
	// linkUp forwards every connection.
	linkUp cutMode = iota
	// linkRefused resets every new connection at once, as a restarting
	// server's closed port does.
	linkRefused
	// linkBlackholed accepts new connections and never answers, as a
	// network partition does: the client waits for its own timeout.
	linkBlackholed
)

// link is a TCP proxy on loopback between one keygate node and Redis or
// PostgreSQL, so the suite can cut that node off without touching the
// server itself or the other nodes. It is safe for concurrent use.
type link struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  cutMode
	conns map[net.Conn]struct{} // every open connection, both sides
	wg    sync.WaitGroup
}

// newLink listens on a free loopback port and forwards to target.
func newLink(target string) (*link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for a proxy to %s: %w", target, err)
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr is the host:port the node connects to instead of the server.
func (l *link) Addr() string { return l.ln.Addr().String() }

func (l *link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		mode := l.mode
		if mode == linkRefused {
			l.mu.Unlock()
			reset(c)
			continue
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		if mode == linkBlackholed {
			continue // held silent until Heal closes it
		}
		l.wg.Add(1)
		go l.forward(c)
	}
}

func (l *link) forward(c net.Conn) {
	defer l.wg.Done()
	s, err := net.DialTimeout("tcp", l.target, 2*time.Second)
	if err != nil {
		l.drop(c)
		reset(c)
		return
	}
	l.mu.Lock()
	if _, open := l.conns[c]; !open { // cut while dialling
		l.mu.Unlock()
		s.Close()
		return
	}
	l.conns[s] = struct{}{}
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
	l.drop(c)
	l.drop(s)
	c.Close()
	s.Close()
	<-done
}

func (l *link) drop(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Cut resets every open connection and treats new ones as mode says,
// until Heal.
func (l *link) Cut(mode cutMode) {
	l.mu.Lock()
	l.mode = mode
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		reset(c)
	}
}

// Heal forwards new connections again; connections held by a blackhole
// are reset, as a partition that heals after the client gave up.
func (l *link) Heal() {
	l.mu.Lock()
	held := l.conns
	if l.mode == linkBlackholed {
		l.conns = map[net.Conn]struct{}{}
	} else {
		held = nil
	}
	l.mode = linkUp
	l.mu.Unlock()
	for c := range held {
		reset(c)
	}
}

// Close stops the proxy and every connection through it.
func (l *link) Close() error {
	err := l.ln.Close()
	l.Cut(linkRefused)
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// reset closes c with a TCP RST rather than a FIN, so the peer sees the
// connection fail rather than end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
