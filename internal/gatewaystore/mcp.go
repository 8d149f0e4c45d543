package gatewaystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
		c := mcpgate.ServerConfig{Name: r.Name, Transport: r.Transport, URL: r.URL, Auth: r.Auth, AuthHeader: r.AuthHeader,
			Secret: r.Secret, Command: r.Command, Env: r.Env, AllowPrivate: r.AllowPrivate,
			MaxResultBytes: o.MaxResultBytes, RPM: o.RPM, Concurrency: o.Concurrency, CallsPerDay: o.CallsPerDay}
		if o.CallTimeout != "" {
			c.CallTimeout, _ = adminapi.ParseDuration(o.CallTimeout)
		}
		if o.ConnectTimeout != "" {
			c.ConnectTimeout, _ = adminapi.ParseDuration(o.ConnectTimeout)
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
