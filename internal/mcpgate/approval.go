package mcpgate

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"
)

// Approvals keeps tool calls that wait for a person: the admin API's
// approval queue, where `keygate approvals list` shows them and
// `keygate approve ID` (or --deny) decides them. internal/gatewaystore
// implements it over the store.
type Approvals interface {
	// RequestApproval records a call waiting for a decision and returns
	// the approval's id.
	RequestApproval(ctx context.Context, req ApprovalRequest) (string, error)
	// ApprovalState returns "pending", "approved", "denied", "used" or
	// "expired", and who decided it.
	ApprovalState(ctx context.Context, id string) (state, decidedBy string, err error)
	// UseApproval marks an approved call as run, once; it fails when the
	// approval is not approved or was used already.
	UseApproval(ctx context.Context, id, keyID string) error
	// DecideApproval records an approval webhook's decision, named by,
	// unless one was made already.
	DecideApproval(ctx context.Context, id string, approve bool, by string) error
}

// WebhookAsker asks an approval webhook to decide a waiting call
// (internal/approvalhook implements it: a signed POST, an answer read
// back).
type WebhookAsker interface {
	// Ask sends q to url and returns the decision it answered with; ok
	// is false when it answered none (the call stays in the queue).
	Ask(ctx context.Context, url string, q WebhookQuestion) (approve bool, by string, ok bool, err error)
}

// WebhookQuestion is what an approval webhook is asked about a call.
type WebhookQuestion struct {
	Approval string    `json:"approval"`  // the approval's id, which the answer must repeat
	Server   string    `json:"server"`    // the MCP server
	Tool     string    `json:"tool"`      // the server's own tool name
	KeyID    string    `json:"key_id"`    // the calling key
	ArgsHMAC string    `json:"args_hmac"` // the arguments, keyed-hashed, never in clear
	Expires  time.Time `json:"expires_at"`
}

// ApprovalRequest is a tool call waiting for a person.
type ApprovalRequest struct {
	KeyID    string // the key making the call
	Server   string // the MCP server
	Tool     string // the server's own tool name
	ArgsHMAC string // the arguments, keyed-hashed: what the approver approves, never in clear
	Expires  time.Time
}

// defaultApprovalTimeout is how long a call waits for a decision when its
// server sets no approval_timeout.
const defaultApprovalTimeout = 5 * time.Minute

// needsApproval reports whether calls of tool on the server wait for a
// person.
func needsApproval(cfg *ServerConfig, tool string) bool {
	for _, pat := range cfg.ApprovalRequired {
		if ok, _ := path.Match(pat, tool); ok {
			return true
		}
	}
	return false
}

// askWebhook asks a server's approval webhook about a waiting call and
// records its answer as the decision; no answer, or a failure, leaves the
// call to the queue.
func (g *Gate) askWebhook(ctx context.Context, hook string, q WebhookQuestion) {
	approve, by, ok, err := g.opts.AskWebhook.Ask(ctx, hook, q)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			g.opts.Log.Warn("an approval webhook did not decide a waiting call; it stays in the queue", "mcp_server", q.Server, "approval", q.Approval, "err", err)
		}
		return
	case !ok:
		return
	}
	if err := g.opts.Approvals.DecideApproval(ctx, q.Approval, approve, "webhook "+by); err != nil && ctx.Err() == nil {
		g.opts.Log.Info("an approval webhook's decision came after another", "approval", q.Approval, "err", err)
	}
}

// approve holds a tool call that needs a person's approval until one
// approves it (it then runs, once), denies it, or the wait ends; the
// call's caller sees nothing reach the server before. Nothing is held of
// the call but a keyed hash of its arguments. Every step is on the audit
// trail: the call waits (approval_requested), then runs or fails with the
// approval's id and who decided.
func (g *Gate) approve(ctx context.Context, cl *call) error {
	if cl.method != "tools/call" || !needsApproval(&cl.u.cfg, cl.item) {
		return nil
	}
	if g.opts.Approvals == nil {
		g.record(cl, "deny", "approval_unavailable", 0, nil)
		return rpcError(CodeForbidden, "approval_unavailable", fmt.Sprintf("tool %s of MCP server %s needs a person's approval, and this keygate keeps no approvals", cl.item, cl.u.cfg.Name))
	}
	wait := cl.u.cfg.ApprovalTimeout
	if wait <= 0 {
		wait = defaultApprovalTimeout
	}
	expires := g.opts.Now().Add(wait)
	id, err := g.opts.Approvals.RequestApproval(ctx, ApprovalRequest{KeyID: cl.c.keyID, Server: cl.u.cfg.Name, Tool: cl.item,
		ArgsHMAC: g.argsHMAC(cl.send), Expires: expires})
	if err != nil {
		g.opts.Log.Error("could not record a tool call for approval", "mcp_server", cl.u.cfg.Name, "tool", cl.item, "err", err)
		g.record(cl, "deny", "approval_unavailable", 0, nil)
		return rpcError(CodeForbidden, "approval_unavailable", "keygate could not record this call for approval; try again shortly")
	}
	g.record(cl, "pending", "approval_requested", 0, map[string]string{"approval": id})
	g.opts.Log.Info("an MCP tool call waits for approval", "mcp_server", cl.u.cfg.Name, "tool", cl.item, "key_id", cl.c.keyID, "approval", id)

	ctx, cancel := context.WithDeadline(ctx, expires)
	defer cancel()
	if hook := cl.u.cfg.ApprovalWebhook; hook != "" && g.opts.AskWebhook != nil {
		// The webhook decides beside the queue: whichever decides first
		// wins, and the wait below reads the decision either way.
		q := WebhookQuestion{Approval: id, Server: cl.u.cfg.Name, Tool: cl.item, KeyID: cl.c.keyID, ArgsHMAC: g.argsHMAC(cl.send), Expires: expires.UTC()}
		go g.askWebhook(ctx, hook, q)
	}
	timedOut := func() error {
		g.record(cl, "deny", "approval_timeout", 0, map[string]string{"approval": id})
		return rpcError(CodeForbidden, "approval_timeout", fmt.Sprintf("no one approved this call of tool %s on MCP server %s within %s (approval %s); call it again to ask anew", cl.item, cl.u.cfg.Name, wait, id))
	}
	t := time.NewTicker(g.opts.ApprovalPoll)
	defer t.Stop()
	for {
		state, by, err := g.opts.Approvals.ApprovalState(ctx, id)
		switch {
		case err != nil && ctx.Err() == nil:
			g.opts.Log.Warn("could not read an approval; will retry", "approval", id, "err", err)
		case state == "approved":
			if err := g.opts.Approvals.UseApproval(ctx, id, cl.c.keyID); err != nil {
				g.record(cl, "deny", "approval_used", 0, map[string]string{"approval": id})
				return rpcError(CodeForbidden, "approval_used", fmt.Sprintf("approval %s could not be used for this call: %v", id, err))
			}
			cl.approval, cl.approvedBy = id, by
			return nil
		case state == "denied":
			g.record(cl, "deny", "approval_denied", 0, map[string]string{"approval": id, "decided_by": by})
			return rpcError(CodeForbidden, "approval_denied", fmt.Sprintf("%s denied this call of tool %s on MCP server %s (approval %s)", by, cl.item, cl.u.cfg.Name, id))
		case state == "expired":
			// The approval expires when this wait ends: a poll that
			// reads it a moment before the wait's own timer fires is the
			// same timeout, and says so.
			return timedOut()
		case state == "used":
			g.record(cl, "deny", "approval_expired", 0, map[string]string{"approval": id})
			return rpcError(CodeForbidden, "approval_expired", fmt.Sprintf("approval %s for tool %s is %s; call the tool again to ask anew", id, cl.item, state))
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return timedOut()
			}
			g.record(cl, "deny", "approval_abandoned", 0, map[string]string{"approval": id})
			return ctx.Err()
		}
	}
}
