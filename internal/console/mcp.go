package console

import (
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// mcpRow is an MCP server on the providers page, with the signed-in
// user's own authorization at it when it acts for a person (auth oauth).
type mcpRow struct {
	adminapi.MCPServer
	// Mine: the caller is a user, who may authorize; Authorized and
	// ExpiresAt are its authorization; Start is the admin API route that
	// starts one in this browser.
	Mine       bool
	Authorized bool
	ExpiresAt  *time.Time
	Start      string
}

// mcpServers lists the MCP servers for the providers page, or nil when
// this keygate keeps none.
func (c *Console) mcpServers(r *http.Request) ([]mcpRow, error) {
	var l adminapi.MCPServerList
	if err := c.api.get(r, "/mcp/servers", &l); err != nil {
		if statusOf(err) == http.StatusNotImplemented {
			return nil, nil
		}
		return nil, err
	}
	rows := make([]mcpRow, 0, len(l.Servers))
	for _, m := range l.Servers {
		row := mcpRow{MCPServer: m}
		if m.Auth == "oauth" {
			var a adminapi.MCPAuthorization
			switch err := c.api.get(r, "/me/mcp/"+seg(m.Name)+"/oauth", &a); {
			case err == nil:
				row.Mine, row.Authorized, row.ExpiresAt, row.Start = true, a.Authorized, a.ExpiresAt, a.StartPath
			case statusOf(err) != http.StatusForbidden: // 403: a credential of no user
				return nil, err
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// revokeMCP deletes the signed-in user's tokens at an MCP server.
func (c *Console) revokeMCP(r *http.Request, v *view) (string, error) {
	if _, err := c.api.do(r, http.MethodDelete, "/me/mcp/"+seg(r.PathValue("name"))+"/oauth", nil, nil); err != nil {
		return "", err
	}
	return "/providers?done=mcp#mcp", nil
}
