package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// MCPStore keeps the MCP servers keygate fronts.
type MCPStore interface {
	CreateMCPServer(ctx context.Context, m store.MCPServer) error
	GetMCPServer(ctx context.Context, name string) (store.MCPServer, error)
	ListMCPServers(ctx context.Context) ([]store.MCPServer, error)
	DeleteMCPServer(ctx context.Context, name string) error
	SetMCPServerOptions(ctx context.Context, name string, options []byte) (store.MCPServer, error)
	SetKeyTools(ctx context.Context, id string, tools []string) (store.Key, error)
}

// mcpServerName is a server's name: it is the first half of every tool
// name the aggregated /mcp shows (server__tool), so it holds no "__" and
// no "/" (the separator of tool: scopes).
var mcpServerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]|_[a-z0-9-]){0,31}$`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

func (a *API) mcpStore(w http.ResponseWriter) MCPStore {
	if a.opts.MCP == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no MCP servers")
	}
	return a.opts.MCP
}

func (a *API) createMCPServer(w http.ResponseWriter, r *http.Request) {
	st := a.mcpStore(w)
	if st == nil {
		return
	}
	var req adminapi.CreateMCPServerRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m, err := a.validateMCPServer(r.Context(), &req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m.ID, m.CreatedAt = newID("mcp_"), a.opts.Now().UTC()
	if err := st.CreateMCPServer(r.Context(), m); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("an MCP server named %q already exists; remove it first or choose another name", m.Name))
			return
		}
		a.internal(w, "create the MCP server", err)
		return
	}
	a.mcpChanged(r)
	web.WriteJSON(w, http.StatusCreated, mcpServerView(m))
}

// validateMCPServer checks a registration whole before anything is stored:
// a bad field changes nothing, and the error names it.
func (a *API) validateMCPServer(ctx context.Context, req *adminapi.CreateMCPServerRequest) (store.MCPServer, error) {
	m := store.MCPServer{Name: strings.TrimSpace(req.Name), Transport: req.Transport, URL: strings.TrimSpace(req.URL),
		Auth: req.Auth, AuthHeader: strings.TrimSpace(req.AuthHeader), Secret: strings.TrimSpace(req.Secret),
		Command: req.Command, Env: req.Env, AllowPrivate: req.AllowPrivate}
	if !mcpServerName.MatchString(m.Name) {
		return m, fmt.Errorf("name %q must be 1-32 lower-case letters, digits, '-' or single '_', starting with a letter or digit: tools are shown as NAME__tool", req.Name)
	}
	if m.Transport == "" {
		m.Transport = "http"
		if len(m.Command) > 0 {
			m.Transport = "stdio"
		}
	}
	switch m.Transport {
	case "http", "sse":
		if len(m.Command) > 0 || len(m.Env) > 0 {
			return m, errors.New("command and env are for stdio servers; a remote server takes url, auth and secret")
		}
		u, err := url.Parse(m.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return m, fmt.Errorf("url %q must be an http or https URL, such as https://mcp.example.com/mcp", req.URL)
		}
		if u.User != nil || u.Fragment != "" {
			return m, errors.New("url must not carry credentials or a fragment; keep the credential in a vault secret and name it with secret")
		}
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !m.AllowPrivate {
			if err := (egress.Policy{What: "allow_private on the MCP server"}).Check(ip); err != nil {
				return m, fmt.Errorf("url: %w", err)
			}
		}
		if m.Auth == "" {
			m.Auth = "none"
			if m.Secret != "" {
				m.Auth = "bearer"
			}
		}
		switch m.Auth {
		case "none":
			if m.Secret != "" {
				return m, errors.New("auth none sends no credential; leave secret out, or set auth to bearer or header")
			}
		case "bearer", "header":
			if m.Secret == "" {
				return m, fmt.Errorf("auth %s needs secret: the vault secret holding the credential (keygate secret put NAME)", m.Auth)
			}
			if err := a.secretExists(ctx, "secret", m.Secret); err != nil {
				return m, err
			}
		case "oauth", "client-credentials":
			if err := a.validateMCPOAuth(ctx, &m, req.Options.OAuth); err != nil {
				return m, err
			}
		default:
			return m, fmt.Errorf("auth %q must be none, bearer, header, oauth or client-credentials", m.Auth)
		}
		if m.Auth == "header" {
			if http.CanonicalHeaderKey(m.AuthHeader) == "" || strings.ContainsAny(m.AuthHeader, " :\r\n") {
				return m, errors.New("auth header needs auth_header: the header the server reads its credential from, such as X-Api-Key")
			}
		} else if m.AuthHeader != "" {
			return m, errors.New("auth_header is for auth header")
		}
	case "stdio":
		if m.URL != "" || m.Secret != "" || (m.Auth != "" && m.Auth != "none") {
			return m, errors.New("a stdio server takes command and env; url, auth and secret are for remote servers (give env values as secret:NAME)")
		}
		m.Auth = "none"
		if len(m.Command) == 0 || strings.TrimSpace(m.Command[0]) == "" {
			return m, errors.New("command is required for a stdio server: the program and its arguments, such as [\"npx\", \"-y\", \"@modelcontextprotocol/server-everything\"]")
		}
		for name, v := range m.Env {
			if !envName.MatchString(name) || name == "PATH" {
				return m, fmt.Errorf("env: %q is not a variable name keygate sets (letters, digits and _; PATH is keygate's own)", name)
			}
			if ref, ok := strings.CutPrefix(v, "secret:"); ok {
				if err := a.secretExists(ctx, "env "+name, ref); err != nil {
					return m, err
				}
			}
		}
	default:
		return m, fmt.Errorf("transport %q must be http (streamable HTTP), sse (HTTP+SSE) or stdio", m.Transport)
	}
	o := req.Options
	for _, d := range []struct{ field, v string }{{"call_timeout", o.CallTimeout}, {"connect_timeout", o.ConnectTimeout}} {
		if d.v == "" {
			continue
		}
		if v, err := adminapi.ParseDuration(d.v); err != nil || v <= 0 {
			return m, fmt.Errorf("options.%s %q must be a positive duration such as 30s", d.field, d.v)
		}
	}
	if o.ApprovalTimeout != "" {
		if v, err := adminapi.ParseDuration(o.ApprovalTimeout); err != nil || v < time.Second || v > 24*time.Hour {
			return m, fmt.Errorf("options.approval_timeout %q must be a duration from 1s to 24h, such as 5m", o.ApprovalTimeout)
		}
	}
	for _, pat := range o.ApprovalRequired {
		if _, err := path.Match(pat, "x"); err != nil || pat == "" || strings.Contains(pat, "/") {
			return m, fmt.Errorf("options.approval_required %q must be a tool name or a glob of the server's own tool names, such as delete_* or *", pat)
		}
	}
	if o.ApprovalWebhook != "" {
		u, err := url.Parse(o.ApprovalWebhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			return m, errors.New("options.approval_webhook must be an http(s) URL without credentials, such as https://approvals.example.com/keygate")
		}
		if len(o.ApprovalRequired) == 0 {
			return m, errors.New("options.approval_webhook asks about calls that wait for approval: name them with approval_required")
		}
	}
	if o.OAuth != nil && m.Auth != "oauth" && m.Auth != "client-credentials" {
		return m, errors.New("options.oauth is for auth oauth or client-credentials")
	}
	if err := validateMCPLimits(o); err != nil {
		return m, err
	}
	m.Options, _ = json.Marshal(o)
	return m, nil
}

// validateMCPLimits checks a server's per-key limits and its tool limits.
func validateMCPLimits(o adminapi.MCPOptions) error {
	if o.MaxResultBytes < 0 || o.RPM < 0 || o.Concurrency < 0 || o.CallsPerDay < 0 {
		return errors.New("options: max_result_bytes, rpm, concurrency and calls_per_day must be 0 (no limit) or more")
	}
	if len(o.ToolLimits) > 100 {
		return errors.New("options.tool_limits: at most 100; use globs such as delete_* to cover several tools")
	}
	seen := map[string]bool{}
	for _, l := range o.ToolLimits {
		if _, err := path.Match(l.Tool, "x"); err != nil || l.Tool == "" || strings.Contains(l.Tool, "/") || len(l.Tool) > 128 {
			return fmt.Errorf("options.tool_limits: tool %q must be a tool name or a glob of the server's own tool names, such as create_issue or delete_*", l.Tool)
		}
		if seen[l.Tool] {
			return fmt.Errorf("options.tool_limits: %q is limited twice; give its limits in one entry, such as %s=rpm:10,per_day:100", l.Tool, l.Tool)
		}
		seen[l.Tool] = true
		if l.RPM < 0 || l.Concurrency < 0 || l.PerDay < 0 || l.RPM+l.Concurrency+l.PerDay == 0 {
			return fmt.Errorf("options.tool_limits: %q needs rpm, concurrency or per_day above 0 (and none below)", l.Tool)
		}
	}
	return nil
}

// updateMCPServer changes a server's per-key limits (PATCH
// /mcp/servers/{name}); the rest of its registration stays.
func (a *API) updateMCPServer(w http.ResponseWriter, r *http.Request) {
	st := a.mcpStore(w)
	if st == nil {
		return
	}
	var req adminapi.UpdateMCPServerRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	m, err := st.GetMCPServer(r.Context(), r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "MCP server", r.PathValue("name"), err)
		return
	}
	var o adminapi.MCPOptions
	if err := json.Unmarshal(m.Options, &o); err != nil {
		a.internal(w, "read the MCP server's options", err)
		return
	}
	for _, f := range []struct {
		from *int64
		to   *int64
	}{{req.RPM, &o.RPM}, {req.Concurrency, &o.Concurrency}, {req.CallsPerDay, &o.CallsPerDay}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	if req.ToolLimits != nil {
		o.ToolLimits = *req.ToolLimits
	}
	if err := validateMCPLimits(o); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	opts, _ := json.Marshal(o)
	if m, err = st.SetMCPServerOptions(r.Context(), m.Name, opts); err != nil {
		a.lookupError(w, "MCP server", r.PathValue("name"), err)
		return
	}
	a.mcpChanged(r)
	web.WriteJSON(w, http.StatusOK, mcpServerView(m))
}

// validateMCPOAuth checks an OAuth server's client configuration.
func (a *API) validateMCPOAuth(ctx context.Context, m *store.MCPServer, o *adminapi.MCPOAuth) error {
	if m.Auth == "client-credentials" {
		if o == nil || o.TokenURL == "" || o.ClientID == "" || m.Secret == "" {
			return errors.New("auth client-credentials needs options.oauth.token_url, options.oauth.client_id and secret (the vault secret holding the client secret)")
		}
	}
	if o != nil && o.TokenURL != "" {
		u, err := url.Parse(o.TokenURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("options.oauth.token_url %q must be an http or https URL without credentials", o.TokenURL)
		}
	}
	if o != nil && o.ClientID == "" && m.Secret != "" {
		return errors.New("secret holds a client secret: give options.oauth.client_id with it, or leave both out for dynamic client registration")
	}
	if m.Secret != "" {
		return a.secretExists(ctx, "secret", m.Secret)
	}
	return nil
}

// secretExists refuses a registration naming a vault secret that is not
// there, so a typo shows now rather than at the first tool call.
func (a *API) secretExists(ctx context.Context, field, name string) error {
	if _, err := a.opts.Store.GetSecretMeta(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: no vault secret named %q; store it first with keygate secret put %s", field, name, name)
		}
		return fmt.Errorf("%s: could not check the vault secret: %w", field, err)
	}
	return nil
}

func (a *API) listMCPServers(w http.ResponseWriter, r *http.Request) {
	st := a.mcpStore(w)
	if st == nil {
		return
	}
	ms, err := st.ListMCPServers(r.Context())
	if err != nil {
		a.internal(w, "list MCP servers", err)
		return
	}
	out := adminapi.MCPServerList{Servers: make([]adminapi.MCPServer, 0, len(ms))}
	for _, m := range ms {
		out.Servers = append(out.Servers, mcpServerView(m))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getMCPServer(w http.ResponseWriter, r *http.Request) {
	st := a.mcpStore(w)
	if st == nil {
		return
	}
	m, err := st.GetMCPServer(r.Context(), r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "MCP server", r.PathValue("name"), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, mcpServerView(m))
}

func (a *API) deleteMCPServer(w http.ResponseWriter, r *http.Request) {
	st := a.mcpStore(w)
	if st == nil {
		return
	}
	m, err := st.GetMCPServer(r.Context(), r.PathValue("name"))
	if err == nil {
		err = st.DeleteMCPServer(r.Context(), m.Name)
	}
	if err != nil {
		a.lookupError(w, "MCP server", r.PathValue("name"), err)
		return
	}
	// The tokens users granted it, and keygate's registration at its
	// authorization server, go with it.
	if a.opts.MCPGrants != nil && m.Auth == "oauth" {
		if err := a.opts.MCPGrants.DeleteServer(r.Context(), m.ID); err != nil {
			a.opts.Log.Error("removing an MCP server: could not destroy its users' tokens; they stay sealed in the vault, unused", "mcp_server", m.Name, "err", err)
		}
	}
	a.mcpChanged(r)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) mcpChanged(r *http.Request) {
	if a.opts.MCPChanged != nil {
		a.opts.MCPChanged(r.Context())
	}
}

func mcpServerView(m store.MCPServer) adminapi.MCPServer {
	v := adminapi.MCPServer{ID: m.ID, Name: m.Name, Transport: m.Transport, URL: m.URL, Auth: m.Auth, AuthHeader: m.AuthHeader,
		Secret: m.Secret, Command: m.Command, Env: m.Env, AllowPrivate: m.AllowPrivate, CreatedAt: m.CreatedAt}
	_ = json.Unmarshal(m.Options, &v.Options)
	return v
}

// validateTools checks a key's MCP tool patterns: server/tool, each part
// a path.Match pattern, deny entries starting with !.
func validateTools(tools []string) error {
	for _, t := range tools {
		if err := authz.ValidToolPattern(t); err != nil {
			return fmt.Errorf("allow_tools: %w", err)
		}
	}
	return nil
}

// checkToolGrant lets only a principal with the permission over every key
// give a team's key MCP tools: a team's policy has no say over tools yet,
// and a tool's credential is the vault's, not the team's.
func (a *API) checkToolGrant(r *http.Request, team string, tools []string, perm rbac.Permission) error {
	if team == "" || len(tools) == 0 || a.global(r, perm) {
		return nil
	}
	return badRequestf("allow_tools: MCP tools are given to team keys by an administrator with %s over every key", perm)
}
