package gatewaystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/keygate/keygate/internal/rbac"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// MCPStore is the store's part MCPServers reads.
type MCPStore interface {
	ListMCPServers(ctx context.Context) ([]store.MCPServer, error)
	GetSecretMeta(ctx context.Context, name string) (store.SecretMeta, error)
}

// MCPServers serves the registered MCP servers and the vault secrets they
// name to internal/mcpgate (mcpgate.Source).
type MCPServers struct {
	st MCPStore
	v  SecretVault
}

// NewMCPServers reads servers from st and their secrets from v.
func NewMCPServers(st MCPStore, v SecretVault) MCPServers { return MCPServers{st: st, v: v} }

// MCPServers implements mcpgate.Source.
func (m MCPServers) MCPServers(ctx context.Context) ([]mcpgate.ServerConfig, error) {
	rows, err := m.st.ListMCPServers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]mcpgate.ServerConfig, 0, len(rows))
	for _, r := range rows {
		var o adminapi.MCPOptions
		if len(r.Options) > 0 {
			if err := json.Unmarshal(r.Options, &o); err != nil {
				return nil, fmt.Errorf("MCP server %s: its options are not readable: %w", r.Name, err)
			}
		}
		c := mcpgate.ServerConfig{ID: r.ID, Name: r.Name, Transport: r.Transport, URL: r.URL, Auth: r.Auth, AuthHeader: r.AuthHeader,
			Secret: r.Secret, Command: r.Command, Env: r.Env, AllowPrivate: r.AllowPrivate,
			MaxResultBytes: o.MaxResultBytes, RPM: o.RPM, Concurrency: o.Concurrency, CallsPerDay: o.CallsPerDay}
		if o.CallTimeout != "" {
			c.CallTimeout, _ = adminapi.ParseDuration(o.CallTimeout)
		}
		if o.ConnectTimeout != "" {
			c.ConnectTimeout, _ = adminapi.ParseDuration(o.ConnectTimeout)
		}
		c.ApprovalRequired, c.ApprovalWebhook = o.ApprovalRequired, o.ApprovalWebhook
		for _, l := range o.ToolLimits {
			c.ToolLimits = append(c.ToolLimits, mcpgate.ToolLimit{Tool: l.Tool, RPM: l.RPM, Concurrency: l.Concurrency, PerDay: l.PerDay})
		}
		if o.OAuth != nil {
			c.TokenURL, c.ClientID, c.Scopes = o.OAuth.TokenURL, o.OAuth.ClientID, o.OAuth.Scopes
		}
		if o.ApprovalTimeout != "" {
			c.ApprovalTimeout, _ = adminapi.ParseDuration(o.ApprovalTimeout)
		}
		out = append(out, c)
	}
	return out, nil
}

// Secret implements mcpgate.Source: the current value of a secret that is
// not deleted.
func (m MCPServers) Secret(ctx context.Context, name string) (secret.String, error) {
	meta, err := m.st.GetSecretMeta(ctx, name)
	if err == nil && meta.DeletedAt != nil {
		err = store.ErrNotFound
	}
	if err == nil {
		var v secret.String
		v, _, err = m.v.Get(ctx, meta.RecordID)
		if err == nil {
			return v, nil
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return secret.String{}, errors.New("the vault holds no such secret; store it with keygate secret put")
	}
	return secret.String{}, err
}

// ApprovalStore is what MCPApprovals needs of the store.
type ApprovalStore interface {
	CreateApproval(ctx context.Context, a store.Approval) error
	GetApproval(ctx context.Context, id string) (store.Approval, error)
	UseApproval(ctx context.Context, id, requester string, at time.Time) (store.Approval, error)
	DecideApproval(ctx context.Context, id, status, by, byName string, at time.Time) (store.Approval, error)
}

// MCPApprovals keeps MCP tool calls that wait for a person in the admin
// API's approval queue (mcpgate.Approvals): `keygate approvals list` shows
// them, `keygate approve ID` decides them, as it does admin requests.
// Deciding one takes approvals.decide; the requester is the calling key,
// so no key can approve its own call.
type MCPApprovals struct {
	st  ApprovalStore
	now func() time.Time
}

// NewMCPApprovals returns the approval queue over st.
func NewMCPApprovals(st ApprovalStore) MCPApprovals { return MCPApprovals{st: st, now: time.Now} }

// RequestApproval implements mcpgate.Approvals.
func (m MCPApprovals) RequestApproval(ctx context.Context, req mcpgate.ApprovalRequest) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := "apr_" + hex.EncodeToString(b[:])
	now := m.now().UTC()
	sum, _ := hex.DecodeString(req.ArgsHMAC)
	err := m.st.CreateApproval(ctx, store.Approval{ID: id, Permission: string(rbac.ApprovalsDecide), Method: "tools/call",
		Path: "mcp " + req.Server + "/" + req.Tool, RequestHash: sum, Requester: req.KeyID, RequesterName: "key " + req.KeyID,
		Credential: req.KeyID, Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: req.Expires.UTC()})
	return id, err
}

// ApprovalState implements mcpgate.Approvals.
func (m MCPApprovals) ApprovalState(ctx context.Context, id string) (string, string, error) {
	a, err := m.st.GetApproval(ctx, id)
	if err != nil {
		return "", "", err
	}
	switch {
	case a.UsedAt != nil:
		return "used", a.DecidedName, nil
	case a.Status != store.ApprovalDenied && !m.now().Before(a.ExpiresAt):
		return "expired", a.DecidedName, nil
	}
	return a.Status, a.DecidedName, nil
}

// DecideApproval implements mcpgate.Approvals: an approval webhook's
// answer, recorded as the decision of "webhook NAME" (by), once; a person
// who decided first wins.
func (m MCPApprovals) DecideApproval(ctx context.Context, id string, approve bool, by string) error {
	status := store.ApprovalDenied
	if approve {
		status = store.ApprovalApproved
	}
	_, err := m.st.DecideApproval(ctx, id, status, "webhook", by, m.now().UTC())
	return err
}

// UseApproval implements mcpgate.Approvals.
func (m MCPApprovals) UseApproval(ctx context.Context, id, keyID string) error {
	_, err := m.st.UseApproval(ctx, id, keyID, m.now().UTC())
	return err
}
