package mcpgate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// progressRoutes passes an MCP server's progress notifications to the
// client whose call they are about. keygate's session to a server is
// shared by every client, and each client picks its own progress tokens
// (two may both say "1"), so a call goes upstream with a token of
// keygate's own, unique to the call and unguessable, and a notification
// with that token goes to the calling client's session with the client's
// token, its message scrubbed of the server's credentials. A notification
// with a token keygate did not hand out, or for a call that has ended,
// goes nowhere.
type progressRoutes struct {
	m      sync.Map // keygate's token -> *progressRoute
	seq    atomic.Uint64
	prefix string
	once   sync.Once
}

type progressRoute struct {
	ctx   context.Context // the client's request: its notifications go on that request's stream
	ss    *mcp.ServerSession
	token any // the client's own
	u     *upstream
	// last is when the route last passed a notification (Unix nanos).
	last atomic.Int64
}

// route returns the _meta a call sends upstream, with keygate's token in
// place of the client's, and a func to call when the call has ended. A
// call without a token, or without a client session to answer, is
// passed on unchanged.
func (p *progressRoutes) route(ctx context.Context, meta mcp.Meta, ss *mcp.ServerSession, u *upstream) (mcp.Meta, func()) {
	token, ok := meta["progressToken"]
	if !ok || token == nil || ss == nil {
		return meta, func() {}
	}
	p.once.Do(func() {
		var b [8]byte
		_, _ = rand.Read(b[:])
		p.prefix = "kg-" + hex.EncodeToString(b[:]) + "-"
	})
	ours := fmt.Sprintf("%s%d", p.prefix, p.seq.Add(1))
	r := &progressRoute{ctx: ctx, ss: ss, token: token, u: u}
	p.m.Store(ours, r)
	out := maps.Clone(meta)
	out["progressToken"] = ours
	return out, func() {
		// The SDK hands notifications to their handler apart from the
		// answers, so the server's progress is still on its way when the
		// call's answer is. The answer waits until no progress has come
		// for progressQuiet (at most progressDrain), so the client sees
		// every step on the call's own stream before the answer: a call
		// that asks for progress is a long one, and the wait is short.
		start := time.Now()
		for time.Since(start) < progressDrain {
			quiet := start
			if l := r.last.Load(); l != 0 && time.Unix(0, l).After(quiet) {
				quiet = time.Unix(0, l)
			}
			if time.Since(quiet) >= progressQuiet {
				break
			}
			time.Sleep(progressQuiet / 4)
		}
		p.m.Delete(ours)
	}
}

// A call that reported progress answers once no progress has come for
// progressQuiet, or after progressDrain at most.
const (
	progressQuiet = 20 * time.Millisecond
	progressDrain = 200 * time.Millisecond
)

// notify passes one progress notification to the client it is for.
func (p *progressRoutes) notify(n *mcp.ProgressNotificationParams) {
	token, ok := n.ProgressToken.(string)
	if !ok {
		return
	}
	v, ok := p.m.Load(token)
	if !ok {
		return
	}
	r := v.(*progressRoute)
	msg := n.Message
	if r.u != nil {
		msg = r.u.scrubber().String(msg)
	}
	r.last.Store(time.Now().UnixNano())
	_ = r.ss.NotifyProgress(r.ctx, &mcp.ProgressNotificationParams{ProgressToken: r.token, Progress: n.Progress, Total: n.Total, Message: msg})
}
