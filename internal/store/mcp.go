package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// MCPServer is an MCP server keygate fronts at the gateway's /mcp.
type MCPServer struct {
	ID   string
	Name string
	// Transport is "http" (streamable HTTP), "sse" (the older HTTP+SSE)
	// or "stdio" (a local process keygate starts).
	Transport string
	URL       string // remote servers
	// Auth is how the credential in the vault secret Secret reaches a
	// remote server: "none", "bearer" or "header" (AuthHeader names it).
	Auth       string
	AuthHeader string
	Secret     string
	// Command is a stdio server's program and arguments; Env its whole
	// environment besides PATH: each value is literal or "secret:NAME".
	Command []string
	Env     map[string]string
	// Options is JSON: timeouts, size limits and per-key call limits
	// (adminapi.MCPOptions).
	Options []byte
	// AllowPrivate lets a remote URL resolve to a private or loopback
	// address, for deliberately internal servers.
	AllowPrivate bool
	CreatedAt    time.Time
}

const mcpCols = `id, name, transport, url, auth, auth_header, secret, command, env, options, allow_private, created_at`

// CreateMCPServer stores a new MCP server. It returns ErrConflict when one
// with the same ID or name exists.
func (s *Store) CreateMCPServer(ctx context.Context, m MCPServer) error {
	env, err := json.Marshal(orEmptyMap(m.Env))
	if err != nil {
		return fmt.Errorf("store: create MCP server %q: encode env: %w", m.Name, err)
	}
	opts := m.Options
	if len(opts) == 0 {
		opts = []byte("{}")
	}
	_, err = s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO mcp_servers (`+mcpCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		m.ID, m.Name, m.Transport, m.URL, m.Auth, m.AuthHeader, m.Secret, listArg(m.Command), string(env), string(opts), m.AllowPrivate, s.timeArg(m.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: create MCP server %q: %w", m.Name, mapErr(err))
	}
	return nil
}

// GetMCPServer returns the MCP server with the given name, or ErrNotFound.
func (s *Store) GetMCPServer(ctx context.Context, name string) (MCPServer, error) {
	m, err := scanMCPServer(s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT `+mcpCols+` FROM mcp_servers WHERE name = ?`), name))
	if err != nil {
		return MCPServer{}, fmt.Errorf("store: get MCP server %q: %w", name, mapErr(err))
	}
	return m, nil
}

// ListMCPServers returns every MCP server ordered by name.
func (s *Store) ListMCPServers(ctx context.Context) ([]MCPServer, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+mcpCols+` FROM mcp_servers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list MCP servers: %w", mapErr(err))
	}
	return collect(rows, scanMCPServer, "list MCP servers")
}

// DeleteMCPServer removes the MCP server with the given name, or returns
// ErrNotFound.
func (s *Store) DeleteMCPServer(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM mcp_servers WHERE name = ?`), name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete MCP server %q: %w", name, mapErr(err))
	}
	return nil
}

// SetMCPServerOptions replaces the options (adminapi.MCPOptions, JSON) of
// the MCP server with the given name and returns it, or ErrNotFound.
func (s *Store) SetMCPServerOptions(ctx context.Context, name string, options []byte) (MCPServer, error) {
	if len(options) == 0 {
		options = []byte("{}")
	}
	m, err := scanMCPServer(s.w.QueryRowContext(ctx, rebind(s.dialect, `UPDATE mcp_servers SET options = ? WHERE name = ? RETURNING `+mcpCols), string(options), name))
	if err != nil {
		return MCPServer{}, fmt.Errorf("store: set the options of MCP server %q: %w", name, mapErr(err))
	}
	return m, nil
}

// SetKeyTools replaces the MCP tool patterns a key may call and returns
// the key.
func (s *Store) SetKeyTools(ctx context.Context, id string, tools []string) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, rebind(s.dialect, `UPDATE api_keys SET allow_tools = ? WHERE id = ? RETURNING `+keyCols), listArg(tools), id))
	if err != nil {
		return Key{}, fmt.Errorf("store: set tools of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

func scanMCPServer(row rowScanner) (MCPServer, error) {
	var m MCPServer
	var env, opts string
	err := row.Scan(&m.ID, &m.Name, &m.Transport, &m.URL, &m.Auth, &m.AuthHeader, &m.Secret, listCol{&m.Command}, &env, &opts, &m.AllowPrivate, timeCol{&m.CreatedAt})
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(env), &m.Env); err != nil {
		return m, fmt.Errorf("read the env of MCP server %q: %w", m.Name, err)
	}
	if len(m.Env) == 0 {
		m.Env = nil
	}
	m.Options = []byte(opts)
	return m, nil
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
