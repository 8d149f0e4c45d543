package gatewaystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/mcpoauth"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// GrantVault seals what MCPGrants keeps; internal/vault's Vault
// implements it.
type GrantVault interface {
	Put(ctx context.Context, id string, plaintext secret.String) (int, error)
	Get(ctx context.Context, id string) (secret.String, int, error)
	Forget(id string)
}

// GrantStore is the store's part MCPGrants needs besides the vault: to
// destroy superseded versions (a refreshed token's old ones) and a
// revoked grant.
type GrantStore interface {
	ScheduleDestroy(ctx context.Context, id string, below int, at time.Time) (int, error)
	DeleteSecret(ctx context.Context, id string) error
	DeleteSecretRecords(ctx context.Context, prefix string) (int, error)
}

// MCPGrants keeps users' authorizations at OAuth MCP servers, and keygate's
// client registrations there, as vault records (envelope-encrypted like
// every secret): mcp-oauth/SERVER_ID/user/USER_ID and
// mcp-oauth/SERVER_ID/client. A grant replaced by a refresh has its older
// versions destroyed by the vault janitor at once.
type MCPGrants struct {
	v   GrantVault
	st  GrantStore
	now func() time.Time
}

// NewMCPGrants keeps grants in v, destroying old versions through st.
func NewMCPGrants(v GrantVault, st GrantStore, now func() time.Time) MCPGrants {
	return MCPGrants{v: v, st: st, now: now}
}

func grantRecord(serverID, userID string) string { return "mcp-oauth/" + serverID + "/user/" + userID }
func clientRecord(serverID string) string        { return "mcp-oauth/" + serverID + "/client" }

// Grant implements mcpgate.Grants.
func (m MCPGrants) Grant(ctx context.Context, serverID, userID string) (*mcpoauth.Grant, error) {
	v, _, err := m.v.Get(ctx, grantRecord(serverID, userID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, mcpoauth.ErrNoGrant
	}
	if err != nil {
		return nil, err
	}
	return mcpoauth.UnmarshalGrant([]byte(v.Reveal()))
}

// PutGrant implements mcpgate.Grants.
func (m MCPGrants) PutGrant(ctx context.Context, serverID, userID string, g *mcpoauth.Grant) error {
	b, err := g.Marshal()
	if err != nil {
		return err
	}
	return m.put(ctx, grantRecord(serverID, userID), b)
}

func (m MCPGrants) put(ctx context.Context, id string, b []byte) error {
	ver, err := m.v.Put(ctx, id, secret.New(string(b)))
	clear(b)
	if err != nil {
		return err
	}
	if ver > 1 {
		if _, err := m.st.ScheduleDestroy(ctx, id, ver, m.now().UTC()); err != nil {
			return fmt.Errorf("schedule the replaced versions of %s for destruction: %w", id, err)
		}
	}
	return nil
}

// DeleteGrant removes the user's grant; deleting one that is not there is
// no error.
func (m MCPGrants) DeleteGrant(ctx context.Context, serverID, userID string) error {
	id := grantRecord(serverID, userID)
	err := m.st.DeleteSecret(ctx, id)
	m.v.Forget(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// DeleteServer destroys every grant users made at a server, and keygate's
// registration there: the server was removed.
func (m MCPGrants) DeleteServer(ctx context.Context, serverID string) error {
	_, err := m.st.DeleteSecretRecords(ctx, "mcp-oauth/"+serverID+"/")
	return err
}

// Client returns keygate's registration at the server's authorization
// server, or an error wrapping store.ErrNotFound.
func (m MCPGrants) Client(ctx context.Context, serverID string) (mcpoauth.Client, error) {
	var c mcpoauth.Client
	v, _, err := m.v.Get(ctx, clientRecord(serverID))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(v.Reveal()), &c); err != nil {
		return c, fmt.Errorf("keygate's registration at the MCP server's authorization server is not readable: %w", err)
	}
	return c, nil
}

// PutClient keeps keygate's registration at the server's authorization
// server.
func (m MCPGrants) PutClient(ctx context.Context, serverID string, c mcpoauth.Client) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return m.put(ctx, clientRecord(serverID), b)
}
