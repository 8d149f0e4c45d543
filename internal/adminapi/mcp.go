package adminapi

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MCPServer is an MCP server keygate fronts at the gateway's /mcp and
// /mcp/{name}. Its credential never appears here: only the name of the
// vault secret that holds it.
type MCPServer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Transport is http (streamable HTTP), sse (the older HTTP+SSE) or
	// stdio (a local process keygate starts).
	Transport string `json:"transport"`
	URL       string `json:"url,omitempty"`
	// Auth is how the credential reaches a remote server: none, bearer
	// (Authorization: Bearer), header (the header AuthHeader names), oauth
	// (each user's own authorization, keygate mcp auth NAME) or
	// client-credentials (keygate's token from Options.OAuth.TokenURL).
	Auth       string `json:"auth"`
	AuthHeader string `json:"auth_header,omitempty"`
	Secret     string `json:"secret,omitempty"` // the vault secret holding the credential
	// Command is a stdio server's program and arguments; Env is its whole
	// environment besides PATH, each value literal or secret:NAME.
	Command      []string          `json:"command,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	AllowPrivate bool              `json:"allow_private,omitempty"`
	Options      MCPOptions        `json:"options"`
	CreatedAt    time.Time         `json:"created_at"`
}

// MCPOptions bound what a server may cost keygate and what each key may
// do with it. Zero values take the defaults docs/mcp.md lists.
type MCPOptions struct {
	// CallTimeout bounds one request to the server ("30s"); ConnectTimeout
	// bounds connecting to it, a stdio server's start included.
	CallTimeout    string `json:"call_timeout,omitempty"`
	ConnectTimeout string `json:"connect_timeout,omitempty"`
	// MaxResultBytes bounds one answer from the server; a larger one is
	// refused rather than passed on.
	MaxResultBytes int64 `json:"max_result_bytes,omitempty"`
	// Per key: tool calls per minute, calls in flight at once, and calls
	// per day (a budget). 0 sets no limit.
	RPM         int64 `json:"rpm,omitempty"`
	Concurrency int64 `json:"concurrency,omitempty"`
	CallsPerDay int64 `json:"calls_per_day,omitempty"`
	// ToolLimits are limits per key on the calls of some tools, on top of
	// the server's: each applies to the tools its glob matches, shared by
	// them, and every one that matches a call applies.
	ToolLimits []MCPToolLimit `json:"tool_limits,omitempty"`
	// ApprovalRequired names the tools (glob patterns of the server's own
	// tool names, such as "delete_*", or "*" for all) whose every call
	// waits for a person to approve it (keygate approve ID) before it
	// reaches the server; ApprovalTimeout is how long a call waits
	// (default 5m), after which it fails.
	ApprovalRequired []string `json:"approval_required,omitempty"`
	ApprovalTimeout  string   `json:"approval_timeout,omitempty"`
	// ApprovalWebhook, an http(s) URL, is asked to decide each call that
	// waits for approval, besides the queue: keygate POSTs the call
	// (signed, X-Keygate-Signature, with the approvals webhook key) and an
	// answer {"approval": ID, "decision": "approve"|"deny", "by": NAME}
	// decides it; any other answer leaves it to a person in the queue.
	ApprovalWebhook string `json:"approval_webhook,omitempty"`
	// OAuth configures auth oauth and client-credentials.
	OAuth *MCPOAuth `json:"oauth,omitempty"`
}

// MCPToolLimit limits, per key, the calls of the tools Tool matches (a
// tool name of the server's own, or a glob such as delete_*): per minute,
// in flight at once, and per day. 0 sets no limit; at least one is set.
type MCPToolLimit struct {
	Tool        string `json:"tool"`
	RPM         int64  `json:"rpm,omitempty"`
	Concurrency int64  `json:"concurrency,omitempty"`
	PerDay      int64  `json:"per_day,omitempty"`
}

// String writes l as ParseToolLimit reads it.
func (l MCPToolLimit) String() string {
	var parts []string
	for _, p := range []struct {
		name string
		v    int64
	}{{"rpm", l.RPM}, {"concurrency", l.Concurrency}, {"per_day", l.PerDay}} {
		if p.v > 0 {
			parts = append(parts, p.name+":"+strconv.FormatInt(p.v, 10))
		}
	}
	return l.Tool + "=" + strings.Join(parts, ",")
}

// ParseToolLimit reads a tool limit as the CLI takes it:
// TOOL=rpm:N,concurrency:N,per_day:N, naming one or more of the three,
// such as create_issue=rpm:10,concurrency:2 or delete_*=per_day:5.
func ParseToolLimit(s string) (MCPToolLimit, error) {
	const form = "TOOL=rpm:N,concurrency:N,per_day:N (one or more of the three), such as create_issue=rpm:10,per_day:100"
	tool, spec, ok := strings.Cut(strings.TrimSpace(s), "=")
	l := MCPToolLimit{Tool: strings.TrimSpace(tool)}
	if !ok || l.Tool == "" || strings.TrimSpace(spec) == "" {
		return l, fmt.Errorf("tool limit %q: write it as %s", s, form)
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(part), ":")
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if !ok || err != nil || n <= 0 {
			return l, fmt.Errorf("tool limit %q: %q must be a limit and a whole number above 0, as in %s", s, part, form)
		}
		name = strings.TrimSpace(name)
		if seen[name] {
			return l, fmt.Errorf("tool limit %q names %s twice", s, name)
		}
		seen[name] = true
		switch name {
		case "rpm":
			l.RPM = n
		case "concurrency":
			l.Concurrency = n
		case "per_day":
			l.PerDay = n
		default:
			return l, fmt.Errorf("tool limit %q: %q is not a limit; the limits are rpm, concurrency and per_day", s, name)
		}
	}
	return l, nil
}

// UpdateMCPServerRequest changes the per-key limits of a registered
// server (PATCH /api/v1/mcp/servers/{name}); a field left out stays as
// it is. ToolLimits, when given, replaces the whole list (an empty list
// clears it).
type UpdateMCPServerRequest struct {
	RPM         *int64          `json:"rpm,omitempty"`
	Concurrency *int64          `json:"concurrency,omitempty"`
	CallsPerDay *int64          `json:"calls_per_day,omitempty"`
	ToolLimits  *[]MCPToolLimit `json:"tool_limits,omitempty"`
}

// MCPOAuth is how keygate is an OAuth client of a server. With auth
// client-credentials, TokenURL and ClientID are required and the server's
// secret holds the client secret. With auth oauth all are optional: the
// endpoints are discovered, and without ClientID keygate registers itself
// (dynamic client registration); with it, the server's secret, if any,
// holds the client secret.
type MCPOAuth struct {
	TokenURL string   `json:"token_url,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
}

// MCPAuthorization is the caller's own authorization at a server that
// acts for a person (auth oauth): GET /api/v1/me/mcp/{name}/oauth.
type MCPAuthorization struct {
	Server     string `json:"server"`
	Authorized bool   `json:"authorized"`
	// ExpiresAt is when the access token expires (keygate refreshes it
	// before then while the refresh token works).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// StartPath is the admin-plane path that starts the authorization in
	// a browser signed in to keygate as the caller.
	StartPath string `json:"start_path"`
}

// CreateMCPServerRequest registers an MCP server: POST /api/v1/mcp/servers.
type CreateMCPServerRequest struct {
	Name         string            `json:"name"`
	Transport    string            `json:"transport,omitempty"` // default: http with url, stdio with command
	URL          string            `json:"url,omitempty"`
	Auth         string            `json:"auth,omitempty"` // default: bearer with secret, else none
	AuthHeader   string            `json:"auth_header,omitempty"`
	Secret       string            `json:"secret,omitempty"`
	Command      []string          `json:"command,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	AllowPrivate bool              `json:"allow_private,omitempty"`
	Options      MCPOptions        `json:"options,omitempty"`
}

// MCPServerList is the answer to GET /api/v1/mcp/servers.
type MCPServerList struct {
	Servers []MCPServer `json:"servers"`
}
