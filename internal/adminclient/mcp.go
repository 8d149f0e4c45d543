package adminclient

import (
	"context"
	"net/http"

	"github.com/keygate/keygate/internal/adminapi"
)

// CreateMCPServer registers an MCP server.
func (c *Client) CreateMCPServer(ctx context.Context, req adminapi.CreateMCPServerRequest) (adminapi.MCPServer, error) {
	var out adminapi.MCPServer
	err := c.do(ctx, http.MethodPost, "/mcp/servers", req, &out)
	return out, err
}

// ListMCPServers returns every MCP server, ordered by name.
func (c *Client) ListMCPServers(ctx context.Context) ([]adminapi.MCPServer, error) {
	var out adminapi.MCPServerList
	err := c.do(ctx, http.MethodGet, "/mcp/servers", nil, &out)
	return out.Servers, err
}

// GetMCPServer returns one MCP server by name.
func (c *Client) GetMCPServer(ctx context.Context, name string) (adminapi.MCPServer, error) {
	var out adminapi.MCPServer
	p, err := segment("/mcp/servers/", "MCP server name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// UpdateMCPServer changes the per-key and per-tool limits of an MCP server.
func (c *Client) UpdateMCPServer(ctx context.Context, name string, req adminapi.UpdateMCPServerRequest) (adminapi.MCPServer, error) {
	var out adminapi.MCPServer
	p, err := segment("/mcp/servers/", "MCP server name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPatch, p, req, &out)
	return out, err
}

// DeleteMCPServer removes an MCP server; the vault secrets it names stay.
func (c *Client) DeleteMCPServer(ctx context.Context, name string) error {
	p, err := segment("/mcp/servers/", "MCP server name", name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// MCPAuthorization reports whether the caller has authorized keygate at
// an MCP server that acts for a person (auth oauth).
func (c *Client) MCPAuthorization(ctx context.Context, name string) (adminapi.MCPAuthorization, error) {
	var out adminapi.MCPAuthorization
	p, err := segment("/me/mcp/", "MCP server name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p+"/oauth", nil, &out)
	return out, err
}

// RevokeMCPAuthorization deletes the caller's tokens at an MCP server.
func (c *Client) RevokeMCPAuthorization(ctx context.Context, name string) error {
	p, err := segment("/me/mcp/", "MCP server name", name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p+"/oauth", nil, nil)
}
