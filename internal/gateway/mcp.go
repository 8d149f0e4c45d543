package gateway

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/web"
)

// MCPServer serves the Model Context Protocol at /mcp and /mcp/{server}
// to callers the gateway authenticated; internal/mcpgate implements it.
type MCPServer interface {
	// ServeMCP serves one request of the caller whose key is keyID, of
	// the user userID ("" for none), who may reach what p allows, calling
	// from client.
	ServeMCP(w http.ResponseWriter, r *http.Request, keyID, userID string, p authz.Principal, client, leakAction string)
	// WriteError answers a request refused before it reached ServeMCP,
	// as a JSON-RPC error; reason is the denial's code.
	WriteError(w http.ResponseWriter, status int, reason, msg string)
}

// ProtectedResourcePath is the OAuth protected resource metadata (RFC
// 9728) of the MCP endpoint, which MCP clients read to learn how to
// authenticate there.
const ProtectedResourcePath = "/.well-known/oauth-protected-resource"

// isMCPPath reports whether path is an MCP endpoint.
func isMCPPath(path string) bool {
	return path == "/mcp" || strings.HasPrefix(path, "/mcp/")
}

// serveMCP is /mcp and /mcp/{server}: authenticate (the key or token, as
// everywhere), the key's scope (networks, hours, paths) and risk rules,
// then the MCP session, where each tool call is authorized against the
// key's tool: scope. A refusal here is a JSON-RPC error; a 401 names the
// protected resource metadata, as the MCP authorization spec asks.
func (g *Gateway) serveMCP(w http.ResponseWriter, r *http.Request) {
	c := callFrom(r.Context())
	c.dialect = g.openai // for the credential headers it reads
	if g.opts.MCP == nil {
		g.refuseMCP(w, r, deny(http.StatusNotFound, "unknown_url", "this keygate serves no MCP servers"))
		return
	}
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		g.refuseMCP(w, r, deny(http.StatusMethodNotAllowed, "method_not_allowed", "MCP's streamable HTTP transport takes POST, GET and DELETE"))
		return
	}
	key, den := g.caller(r, c)
	if den != nil {
		if den.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+g.resourceMetadataURL(r)+`"`)
		}
		g.refuseMCP(w, r, den)
		return
	}
	g.opts.MCP.ServeMCP(w, r, key.ID, key.User, c.principal(key), web.ClientAddr(r, g.opts.TrustedProxies).String(), key.LeakAction)
}

func (g *Gateway) refuseMCP(w http.ResponseWriter, r *http.Request, d *Denial) {
	callFrom(r.Context()).denied = d.Code
	for name, vals := range d.Header {
		w.Header()[name] = vals
	}
	if d.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.RetryAfter.Seconds())), 10))
	}
	if g.opts.MCP == nil {
		web.WriteJSON(w, d.Status, map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": -32600, "message": d.Message}})
		return
	}
	g.opts.MCP.WriteError(w, d.Status, d.Code, d.Message)
}

// resourceMetadataURL is where this request's client finds the protected
// resource metadata, on the host it called.
func (g *Gateway) resourceMetadataURL(r *http.Request) string {
	return g.origin(r) + ProtectedResourcePath + r.URL.Path
}

// origin is scheme://host as clients reach this gateway, for the URLs it
// hands out about itself: Options.PublicURL when set, else a trusted
// proxy's forwarded scheme and host, else the request's own.
func (g *Gateway) origin(r *http.Request) string {
	return web.PublicOrigin(r, g.opts.PublicURL, g.opts.TrustedProxies)
}

// protectedResource serves RFC 9728 metadata for /mcp (at
// /.well-known/oauth-protected-resource/mcp, and without the suffix).
// keygate's keys and access tokens go in the Authorization header; when
// keygate signs MCP clients in (TokenOptions.Authorization), it names
// itself, this origin, as the authorization server.
func (g *Gateway) protectedResource(w http.ResponseWriter, r *http.Request) {
	if mcpauth.PublicCORS(w, r) {
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	res := strings.TrimPrefix(r.URL.Path, ProtectedResourcePath)
	if res == "" {
		res = "/mcp"
	}
	if !isMCPPath(res) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	md := map[string]any{
		"resource":                 g.origin(r) + res,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "keygate MCP gateway",
	}
	if to := g.opts.Tokens; to != nil && to.Authorization != nil {
		md["authorization_servers"] = []string{g.origin(r)}
	}
	_ = json.NewEncoder(w).Encode(md)
}
