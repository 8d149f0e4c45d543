package mcpgate

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/authz"
)

// A server's notifications/tools/list_changed (and those of its prompts
// and resources) go to every client session that can see the server: the
// sessions of /mcp/{server}, and those of /mcp whose key reaches anything
// of it. keygate's cached tool list of the server is read again at once.
//
// The SDK sends list_changed only from its own lists, to every session
// of a server (to a 2026-07-28 client on its subscriptions/listen stream,
// which only the SDK knows), so keygate changes a placeholder entry of
// the endpoint's list to have the SDK notify, and its sending middleware
// (filterListChanged) drops the notification for each session whose key
// cannot see a server that changed in the last listChangedWindow.

// listChangedWindow is how long a server's change lets list_changed
// notifications through to the sessions that can see it.
const listChangedWindow = 2 * time.Second

// placeholder is the name of the entry keygate adds and removes to make
// the SDK notify. keygate answers every list and call itself, so no
// client ever sees it.
const placeholder = "keygate-list-changed"

// changes records, per endpoint, when each server last changed a list.
type changes struct {
	mu   sync.Mutex
	when map[string]time.Time // server name -> time of its last change
	// sessions maps each session to the caller that last used it, to
	// know which servers it can see; levels to the log level its client
	// set, to ask servers on protocol 2026-07-28 for their messages.
	sessions map[*mcp.ServerSession]*caller
	levels   map[*mcp.ServerSession]mcp.LoggingLevel
}

// listChanged tells the sessions that can see u that its list of kind
// (tools, prompts or resources) changed.
func (u *upstream) listChanged(kind string) {
	u.mu.Lock()
	if kind == "tools" {
		u.tools = nil
	}
	u.mu.Unlock()
	g := u.g
	if kind == "tools" {
		// Read the tools again now, so their hints stay current for the
		// detectors, and the next tools/list is answered from the cache.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), u.cfg.CallTimeout)
			defer cancel()
			if _, err := u.listTools(ctx); err != nil {
				g.opts.Log.Debug("reading an MCP server's tools after it said they changed failed", "mcp_server", u.cfg.Name, "err", u.scrubErr(err))
			}
		}()
	}
	now := g.opts.Now()
	for _, v := range g.viewsOf(u.cfg.Name) {
		v.changes.mu.Lock()
		if v.changes.when == nil {
			v.changes.when = map[string]time.Time{}
		}
		v.changes.when[u.cfg.Name] = now
		v.changes.mu.Unlock()
		v.nudge(kind)
	}
}

// viewsOf returns the endpoints that serve server: /mcp/{server} and /mcp,
// those that exist.
func (g *Gate) viewsOf(server string) []*view {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*view
	for _, name := range []string{server, ""} {
		if v := g.views[name]; v != nil {
			out = append(out, v)
		}
	}
	return out
}

// nudge has the SDK send kind's list_changed to the sessions of v.
func (v *view) nudge(kind string) {
	v.nudgeMu.Lock()
	defer v.nudgeMu.Unlock()
	switch kind {
	case "tools":
		v.server.AddTool(&mcp.Tool{Name: placeholder, InputSchema: map[string]any{"type": "object"}},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, errNotServed })
		v.server.RemoveTools(placeholder)
	case "prompts":
		v.server.AddPrompt(&mcp.Prompt{Name: placeholder},
			func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) { return nil, errNotServed })
		v.server.RemovePrompts(placeholder)
	case "resources":
		uri := "keygate:" + placeholder
		v.server.AddResource(&mcp.Resource{Name: placeholder, URI: uri},
			func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return nil, errNotServed
			})
		v.server.RemoveResources(uri)
	}
}

var errNotServed = rpcError(-32601, "method_not_served", "keygate does not serve this")

// seen records the caller of a session at v, to filter its list_changed
// notifications.
func (v *view) seen(ss *mcp.ServerSession, c *caller) {
	if ss == nil {
		return
	}
	v.changes.mu.Lock()
	if v.changes.sessions == nil {
		v.changes.sessions = map[*mcp.ServerSession]*caller{}
	}
	v.changes.sessions[ss] = c
	v.changes.mu.Unlock()
}

// forget drops the sessions of v that have ended.
func (v *view) forget(live map[string]bool) {
	v.changes.mu.Lock()
	for ss := range v.changes.sessions {
		if !live[ss.ID()] {
			delete(v.changes.sessions, ss)
			delete(v.changes.levels, ss)
		}
	}
	v.changes.mu.Unlock()
}

// setLevel records the log level the client of ss asked for.
func (v *view) setLevel(ss *mcp.ServerSession, level mcp.LoggingLevel) {
	if ss == nil {
		return
	}
	v.changes.mu.Lock()
	if v.changes.levels == nil {
		v.changes.levels = map[*mcp.ServerSession]mcp.LoggingLevel{}
	}
	v.changes.levels[ss] = level
	v.changes.mu.Unlock()
}

// withLevel returns meta with the log level the client of ss set, for a
// server on protocol 2026-07-28, which logs to a call only at the level
// the call names (an older server was asked for every message when
// keygate connected). A level the client named itself stays.
func (v *view) withLevel(ss *mcp.ServerSession, meta mcp.Meta) mcp.Meta {
	v.changes.mu.Lock()
	level, ok := v.changes.levels[ss]
	v.changes.mu.Unlock()
	if _, named := meta[mcp.MetaKeyLogLevel]; !ok || named {
		return meta
	}
	out := maps.Clone(meta)
	if out == nil {
		out = mcp.Meta{}
	}
	out[mcp.MetaKeyLogLevel] = level
	return out
}

// filterListChanged is a sending middleware of v: a list_changed
// notification goes only to a session whose caller can see a server that
// changed within listChangedWindow.
func (g *Gate) filterListChanged(v *view) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
			default:
				return next(ctx, method, req)
			}
			ss, _ := req.GetSession().(*mcp.ServerSession)
			now := g.opts.Now()
			v.changes.mu.Lock()
			c := v.changes.sessions[ss]
			var servers []string
			for name, t := range v.changes.when {
				if now.Sub(t) <= listChangedWindow {
					servers = append(servers, name)
				}
			}
			v.changes.mu.Unlock()
			if c == nil {
				return nil, nil
			}
			for _, name := range servers {
				if (v.name == "" || v.name == name) && authz.ToolServerAllowed(c.p, name) {
					return next(ctx, method, req)
				}
			}
			return nil, nil
		}
	}
}
