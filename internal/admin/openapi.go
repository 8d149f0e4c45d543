package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/keygate/keygate/internal/adminapi"
)

// The OpenAPI 3.1 description of the admin API, served at GET
// /api/v1/openapi.json. Its paths are the route table itself (routes.go),
// so a route cannot be added without appearing in it; what the table does
// not know (a summary, the body types, query parameters) comes from
// operationDocs, which a test holds to the table in both directions. The
// schemas are generated from the adminapi types by reflection. The
// document is public to every signed-in principal, like /whoami: it says
// what exists, not what the caller may do, and the admin plane has no
// anonymous route at all.

// opDoc is what the route table does not say about an operation.
type opDoc struct {
	summary string
	req     any    // the request body's type (a zero value), nil for none
	resp    any    // the success body's type, nil for none
	status  int    // the success status; 200 when zero
	query   []qp   // query parameters
	content string // a success body that is not JSON: its media type
}

// qp is a query parameter.
type qp struct{ name, typ, desc string }

// auditRefRequest and auditRef are POST /audit/ref's bodies.
type auditRefRequest struct {
	Value string `json:"value"`
}
type auditRef struct {
	Ref string `json:"ref"`
}

// operationDocs describes every route of the table by its ID.
func operationDocs() map[string]opDoc {
	p := adminapi.Prefix
	return map[string]opDoc{
		"GET " + p + "/auth/methods":                {summary: "Which sign-in methods are configured (public)"},
		"POST " + p + "/auth/login":                 {summary: "Sign in with a password and a second factor; returns a session (public)"},
		"POST " + p + "/auth/token-login":           {summary: "Exchange an admin or personal token for a browser session (public)"},
		"GET " + p + "/auth/oidc/start":             {summary: "Start single sign-on with the OpenID provider (public)"},
		"GET " + p + "/auth/oidc/callback":          {summary: "The OpenID provider's return; ends in a session (public)"},
		"POST " + p + "/auth/oidc/exchange":         {summary: "Trade the CLI's one-time sign-on code for a session (public)"},
		"POST " + p + "/auth/oidc/device":           {summary: "Begin a single sign-on for a machine without a browser (device grant; public)", resp: adminapi.DeviceSignIn{}},
		"POST " + p + "/auth/oidc/device/token":     {summary: "Wait for a device sign-in's outcome: 202 pending, 200 a session (public)", req: adminapi.DeviceTokenRequest{}, resp: adminapi.LoginResponse{}},
		"POST " + p + "/auth/passkey/begin":         {summary: "Begin a passkey sign-in (public)"},
		"POST " + p + "/auth/passkey/finish":        {summary: "Finish a passkey sign-in; returns a session (public)"},
		"POST " + p + "/auth/logout":                {summary: "End the caller's session"},
		"GET " + p + "/auth/session":                {summary: "The caller's session: who, role, teams, method, expiry"},
		"GET " + p + "/overview":                    {summary: "Requests, refusals, spend and alerts over the hour, day and month"},
		"GET " + p + "/alerts":                      {summary: "Alerts, open and closed"},
		"POST " + p + "/alerts/{id}/ack":            {summary: "Acknowledge an alert"},
		"POST " + p + "/alerts/{id}/resolve":        {summary: "Resolve an alert"},
		"POST " + p + "/secrets/{path...}:refresh":  {summary: "Read a referenced secret from its source now"},
		"GET " + p + "/sources":                     {summary: "References to cloud secret managers and Vault, with their state"},
		"POST " + p + "/providers/{name}/refresh":   {summary: "Read a referenced provider key from its source now"},
		"GET " + p + "/routing":                     {summary: "Routing: deployments, aliases and services from the file and the database"},
		"GET " + p + "/routing/{kind}/{name...}":    {summary: "One routing entry"},
		"POST " + p + "/routing/{kind}":             {summary: "Create a routing entry"},
		"PUT " + p + "/routing/{kind}/{name...}":    {summary: "Replace a routing entry"},
		"DELETE " + p + "/routing/{kind}/{name...}": {summary: "Delete a routing entry"},
		"POST " + p + "/routing/apply":              {summary: "Apply a routing file declaratively (dry run available)"},
		"GET " + p + "/routing/health":              {summary: "This node's aliases with their deployments' breakers and recent upstream errors", resp: adminapi.RoutingHealth{}},
		"POST " + p + "/mcp/servers":                {summary: "Register an MCP server"},
		"GET " + p + "/mcp/servers":                 {summary: "List MCP servers"},
		"GET " + p + "/mcp/servers/{name}":          {summary: "One MCP server"},
		"PATCH " + p + "/mcp/servers/{name}":        {summary: "Change an MCP server's per-key and per-tool limits"},
		"DELETE " + p + "/mcp/servers/{name}":       {summary: "Remove an MCP server"},
		"GET " + p + "/me/mcp/{name}/oauth":         {summary: "Whether the caller has authorized keygate at an MCP server that acts for a person", resp: adminapi.MCPAuthorization{}},
		"GET " + p + "/me/mcp/{name}/oauth/start":   {summary: "Start the caller's authorization at an MCP server (in a browser): redirects to its authorization server", status: http.StatusFound},
		"DELETE " + p + "/me/mcp/{name}/oauth":      {summary: "Delete the caller's tokens at an MCP server", status: http.StatusNoContent},
		"GET " + p + "/auth/mcp/callback":           {summary: "An MCP server's authorization server's return; keeps the user's tokens (public)", content: "text/html"},
		"GET " + p + "/keys/{ref}/events":           {summary: "A key's recent requests and refusals"},
		"POST " + p + "/keys/{ref}/step-up":         {summary: "Require step-up (a one-time password) for a key's requests"},
		"PUT " + p + "/users/{name}/password":       {summary: "Set a user's password (their sessions end)"},
		"PUT " + p + "/me/password":                 {summary: "Change the caller's own password"},
		"POST " + p + "/me/totp":                    {summary: "Begin TOTP enrolment for the caller"},
		"POST " + p + "/me/totp/confirm":            {summary: "Confirm TOTP enrolment with a first code"},
		"GET " + p + "/me/passkeys":                 {summary: "The caller's passkeys"},
		"POST " + p + "/me/passkeys/begin":          {summary: "Begin registering a passkey"},
		"POST " + p + "/me/passkeys/finish":         {summary: "Finish registering a passkey"},
		"DELETE " + p + "/me/passkeys/{id}":         {summary: "Remove one of the caller's passkeys"},
		"GET " + p + "/whoami":                      {summary: "Who the caller is: kind, name, role and team memberships", resp: adminapi.WhoAmI{}},
		"GET " + p + "/status":                      {summary: "keygate's version, gateway URL and current KEK", resp: adminapi.Status{}},
		"GET " + p + "/openapi.json":                {summary: "This description of the admin API (OpenAPI 3.1)", resp: map[string]any{}},
		"GET " + p + "/roles":                       {summary: "The roles and the permissions each grants", resp: adminapi.RoleList{}},

		"GET " + p + "/audit/events": {summary: "Audit events, newest first", resp: adminapi.AuditEvents{}, query: []qp{
			{"key", "string", "only events of this key id"}, {"type", "string", "only events of this type"},
			{"since", "string", "only events after this time (RFC 3339) or duration ago (24h)"}, {"limit", "integer", "at most this many"}}},
		"GET " + p + "/audit/verify":              {summary: "Verify every node's hash chain and signed checkpoints", resp: adminapi.AuditVerification{}},
		"POST " + p + "/audit/ref":                {summary: "The reference under which a secret name appears on the trail", req: auditRefRequest{}, resp: auditRef{}},
		"GET " + p + "/audit/public-key":          {summary: "The key that signs audit checkpoints", resp: adminapi.AuditPublicKey{}},
		"GET " + p + "/audit/nodes":               {summary: "The nodes that have written audit events", resp: adminapi.AuditNodes{}},
		"GET " + p + "/audit/trail":               {summary: "Raw audit rows of one node, for an offline copy", resp: adminapi.AuditRows{}, query: nodeRows()},
		"GET " + p + "/audit/checkpoints":         {summary: "Signed checkpoints of one node", resp: adminapi.AuditRows{}, query: nodeRows()},
		"GET " + p + "/audit/webhook-key":         {summary: "The signing key of the audit, alert or approval webhook", resp: adminapi.WebhookKey{}, query: []qp{{"for", "string", "audit, alerts or approvals"}}},
		"POST " + p + "/audit/webhook-key/rotate": {summary: "Rotate a webhook signing key", req: adminapi.WebhookKeyRequest{}, resp: adminapi.WebhookKey{}},

		"GET " + p + "/secrets":                     {summary: "List vault secrets (names and versions, never values)", resp: adminapi.SecretList{}, query: []qp{{"deleted", "boolean", "include deleted secrets still recoverable"}}},
		"PUT " + p + "/secrets/{path...}":           {summary: "Store a new version of a secret", req: adminapi.PutSecretRequest{}, resp: adminapi.Secret{}},
		"GET " + p + "/secrets/{path...}":           {summary: "A secret's metadata", resp: adminapi.Secret{}},
		"DELETE " + p + "/secrets/{path...}":        {summary: "Delete a secret (recoverable until purged)", resp: adminapi.Secret{}, query: []qp{{"purge", "boolean", "destroy it now; answers 204"}}},
		"GET " + p + "/secrets/{path...}:versions":  {summary: "A secret's versions", resp: adminapi.SecretVersionList{}},
		"GET " + p + "/secrets/{path...}:value":     {summary: "A secret's value (audited)", resp: adminapi.SecretValue{}, query: []qp{{"version", "integer", "this version instead of the current one"}}},
		"POST " + p + "/secrets/{path...}:rollback": {summary: "Make an earlier version current", req: adminapi.RollbackSecretRequest{}, resp: adminapi.Secret{}},
		"POST " + p + "/secrets/{path...}:restore":  {summary: "Restore a deleted secret", resp: adminapi.Secret{}},

		"POST " + p + "/providers":                      {summary: "Register an upstream provider and its key", req: adminapi.CreateProviderRequest{}, resp: adminapi.Provider{}, status: 201},
		"GET " + p + "/providers":                       {summary: "List providers (never their keys)", resp: adminapi.ProviderList{}},
		"GET " + p + "/providers/{name}":                {summary: "One provider", resp: adminapi.Provider{}},
		"DELETE " + p + "/providers/{name}":             {summary: "Remove a provider and its key", status: 204},
		"POST " + p + "/providers/{name}/rotate":        {summary: "Replace a provider's key, keeping the old one for a grace period", req: adminapi.RotateProviderRequest{}, resp: adminapi.ProviderRotation{}},
		"POST " + p + "/vault/rotate-kek":               {summary: "Start rewrapping every data key under a new KEK", req: adminapi.RotateKEKRequest{}, resp: adminapi.KEKRotation{}, status: 202},
		"GET " + p + "/vault/status":                    {summary: "KEKs in use and the progress of a rotation", resp: adminapi.VaultStatus{}},
		"GET " + p + "/vault/backup":                    {summary: "An encrypted backup of the store", content: "application/octet-stream"},
		"POST " + p + "/keys":                           {summary: "Create a keygate key; the secret is shown once", req: adminapi.CreateKeyRequest{}, resp: adminapi.CreatedKey{}, status: 201},
		"GET " + p + "/keys":                            {summary: "List the keys the caller may see", resp: adminapi.KeyList{}, query: []qp{{"unused", "string", "only keys unused for this long (30d)"}}},
		"GET " + p + "/keys/{ref}":                      {summary: "One key, by id, name or prefix", resp: adminapi.Key{}},
		"PATCH " + p + "/keys/{ref}":                    {summary: "Change a key's scopes, limits or group", req: adminapi.UpdateKeyRequest{}, resp: adminapi.Key{}},
		"POST " + p + "/keys/{ref}/revoke":              {summary: "Revoke a key on every node", resp: adminapi.Key{}},
		"POST " + p + "/keys/{ref}/suspend":             {summary: "Suspend a key until resumed", resp: adminapi.Key{}},
		"POST " + p + "/keys/{ref}/resume":              {summary: "Resume a suspended key", resp: adminapi.Key{}},
		"POST " + p + "/keys/{ref}/rotate":              {summary: "Issue a successor key; the old one works for a grace period", req: adminapi.RotateKeyRequest{}, resp: adminapi.RotatedKey{}, status: 201},
		"POST " + p + "/keys/{ref}/aws-credentials":     {summary: "The AWS access key pair bound to a key, for Bedrock clients that sign with SigV4", resp: adminapi.AWSCredentials{}},
		"POST " + p + "/keys/{ref}/totp":                {summary: "Enrol a key for step-up one-time passwords", resp: adminapi.TOTPEnrollment{}, status: 201},
		"GET " + p + "/keys/{ref}/usage":                {summary: "A key's daily usage and spend", resp: adminapi.KeyUsage{}, query: []qp{{"days", "integer", "how many days back (default 30)"}}},
		"POST " + p + "/leaks":                          {summary: "Report a leaked keygate key (it is revoked) or provider key (a minted one is rotated)", req: adminapi.ReportLeakRequest{}, resp: adminapi.ReportLeakResult{}},
		"POST " + p + "/groups":                         {summary: "Create a limit group", req: adminapi.GroupRequest{}, resp: adminapi.Group{}, status: 201},
		"GET " + p + "/groups":                          {summary: "List limit groups", resp: adminapi.GroupList{}},
		"GET " + p + "/groups/{name}":                   {summary: "One limit group", resp: adminapi.Group{}},
		"PATCH " + p + "/groups/{name}":                 {summary: "Change a group's limits", req: adminapi.GroupRequest{}, resp: adminapi.Group{}},
		"DELETE " + p + "/groups/{name}":                {summary: "Delete a group with no keys", status: 204},
		"GET " + p + "/users":                           {summary: "List users", resp: adminapi.UserList{}},
		"POST " + p + "/users":                          {summary: "Create a user", req: adminapi.CreateUserRequest{}, resp: adminapi.CreatedUser{}, status: 201},
		"GET " + p + "/users/{name}":                    {summary: "One user", resp: adminapi.User{}},
		"PUT " + p + "/users/{name}/role":               {summary: "Set a user's role", req: adminapi.SetRoleRequest{}, resp: adminapi.User{}},
		"POST " + p + "/users/{name}/disable":           {summary: "Disable a user and revoke their credentials", resp: adminapi.User{}},
		"POST " + p + "/users/{name}/enable":            {summary: "Enable a user, optionally issuing a token", req: adminapi.IssueTokenRequest{}, resp: adminapi.CreatedUser{}},
		"GET " + p + "/service-accounts":                {summary: "List service accounts", resp: adminapi.UserList{}},
		"POST " + p + "/service-accounts":               {summary: "Create a service account", req: adminapi.CreateUserRequest{}, resp: adminapi.CreatedUser{}, status: 201},
		"POST " + p + "/service-accounts/{name}/tokens": {summary: "Issue a token to a service account", req: adminapi.CreateTokenRequest{}, resp: adminapi.CreatedToken{}, status: 201},
		"POST " + p + "/me/tokens":                      {summary: "Issue a personal admin token to the caller", req: adminapi.CreateTokenRequest{}, resp: adminapi.CreatedToken{}, status: 201},
		"GET " + p + "/admin-tokens":                    {summary: "List admin tokens the caller may manage", resp: adminapi.AdminTokenList{}},
		"POST " + p + "/admin-tokens/{id}/revoke":       {summary: "Revoke an admin token", resp: adminapi.AdminToken{}},
		"POST " + p + "/teams":                          {summary: "Create a team", req: adminapi.CreateTeamRequest{}, resp: adminapi.Team{}, status: 201},
		"GET " + p + "/teams":                           {summary: "List teams the caller may see", resp: adminapi.TeamList{}},
		"GET " + p + "/teams/{name}":                    {summary: "One team", resp: adminapi.Team{}},
		"PATCH " + p + "/teams/{name}":                  {summary: "Change a team's budget or policy", req: adminapi.UpdateTeamRequest{}, resp: adminapi.Team{}},
		"GET " + p + "/teams/{name}/usage":              {summary: "A team's daily usage and spend", resp: adminapi.TeamUsage{}, query: []qp{{"days", "integer", "how many days back (default 30)"}}},
		"GET " + p + "/teams/{name}/members":            {summary: "A team's members", resp: adminapi.TeamMemberList{}},
		"PUT " + p + "/teams/{name}/members/{user}":     {summary: "Add a member or change their team role", req: adminapi.PutMemberRequest{}, resp: adminapi.TeamMember{}},
		"DELETE " + p + "/teams/{name}/members/{user}":  {summary: "Remove a member", status: 204},
		"POST " + p + "/teams/{name}/invitations": {summary: "Invite an e-mail address to the team with a role no higher than the caller's; the link is shown once",
			req: adminapi.CreateInvitationRequest{}, resp: adminapi.CreatedInvitation{}, status: 201},
		"GET " + p + "/teams/{name}/invitations": {summary: "A team's pending invitations (?all=true for every one); never their links", resp: adminapi.InvitationList{}},
		"GET " + p + "/invitations":              {summary: "Pending invitations of every team the caller may see (?team=, ?all=true)", resp: adminapi.InvitationList{}},
		"POST " + p + "/invitations/{id}/revoke": {summary: "Revoke a pending invitation", resp: adminapi.Invitation{}},
		"POST " + p + "/auth/invitations/lookup": {summary: "What a pending invitation is for, given its token (public)", req: adminapi.InvitationToken{}, resp: adminapi.InvitationInfo{}},
		"POST " + p + "/auth/invitations/sso":    {summary: "Accept an invitation by single sign-on: redirects to the provider (public; a form with the field token)", status: 303},
		"POST " + p + "/me/invitations/accept":   {summary: "Accept an invitation addressed to the signed-in user: joins the team", req: adminapi.InvitationToken{}, resp: adminapi.TeamMember{}},
		"POST " + p + "/auth/invitations/accept": {summary: "Accept an invitation with a new password; returns a session (public)", req: adminapi.AcceptInvitationRequest{}, resp: adminapi.LoginResponse{}},
		"GET " + p + "/approvals":                {summary: "Pending and recent approval requests", resp: adminapi.ApprovalList{}},
		"GET " + p + "/approvals/{id}":           {summary: "One approval request", resp: adminapi.Approval{}},
		"POST " + p + "/approvals/{id}/approve":  {summary: "Approve another person's request", resp: adminapi.Approval{}},
		"POST " + p + "/approvals/{id}/deny":     {summary: "Deny another person's request", resp: adminapi.Approval{}},
		"GET /metrics":                           {summary: "Prometheus metrics", content: "text/plain; version=0.0.4"},
	}
}

func nodeRows() []qp {
	return []qp{{"node", "string", "the node's id (GET /audit/nodes)"}, {"after", "integer", "rows after this seq"}, {"limit", "integer", "at most this many"}}
}

// openAPIPath is a route's path in OpenAPI's template syntax: the
// wildcard {path...} is {path}, and a secret action is a literal suffix.
func openAPIPath(rt endpoint) string {
	p := strings.ReplaceAll(rt.path, "{path...}", "{path}")
	if rt.action != "" {
		p += ":" + rt.action
	}
	return p
}

// pathParams lists the {names} of an OpenAPI path.
func pathParams(p string) []string {
	var out []string
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(p[i:], '}')
		out = append(out, p[i+1:i+j])
		p = p[i+j+1:]
	}
}

// openAPIDocument builds the description of the routes rt, version being
// keygate's.
func openAPIDocument(rs []endpoint, version string) ([]byte, error) {
	docs := operationDocs()
	schemas := map[string]any{}
	ref := func(v any) (map[string]any, error) { return schemaRef(v, schemas) }
	errRef := map[string]any{"$ref": "#/components/responses/Error"}
	paths := map[string]map[string]any{}
	for _, rt := range rs {
		d, ok := docs[rt.ID()]
		if !ok {
			d = opDoc{summary: rt.ID()}
		}
		path := openAPIPath(rt)
		op := map[string]any{
			"operationId": operationID(rt),
			"summary":     d.summary,
			"tags":        []string{tag(rt.path)},
		}
		if rt.perm != "" {
			op["description"] = fmt.Sprintf("Needs the permission `%s`.", rt.perm)
			op["x-keygate-permission"] = string(rt.perm)
		} else {
			op["description"] = "Open to every signed-in principal."
		}
		var params []any
		for _, name := range pathParams(path) {
			desc := "the " + name
			if name == "path" {
				desc = "the secret's path; may hold '/'"
			}
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "description": desc, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range d.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.desc, "schema": map[string]any{"type": q.typ}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if d.req != nil {
			s, err := ref(d.req)
			if err != nil {
				return nil, err
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": s}}}
		}
		status := d.status
		if status == 0 {
			status = http.StatusOK
		}
		ok2 := map[string]any{"description": http.StatusText(status)}
		switch {
		case d.content != "":
			ok2["content"] = map[string]any{d.content: map[string]any{"schema": map[string]any{"type": "string"}}}
		case d.resp != nil:
			s, err := ref(d.resp)
			if err != nil {
				return nil, err
			}
			ok2["content"] = map[string]any{"application/json": map[string]any{"schema": s}}
		}
		responses := map[string]any{fmt.Sprint(status): ok2, "default": errRef}
		if rt.method != http.MethodGet {
			responses["202"] = map[string]any{"$ref": "#/components/responses/ApprovalPending"}
		}
		op["responses"] = responses
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(rt.method)] = op
	}
	errSchema, err := ref(adminapi.ErrorBody{})
	if err != nil {
		return nil, err
	}
	pending, err := ref(adminapi.ApprovalPending{})
	if err != nil {
		return nil, err
	}
	doc := map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": map[string]any{
			"title":       "keygate admin API",
			"version":     version,
			"description": "The admin REST API of keygate, on the admin listener. Every route needs an admin credential (Authorization: Bearer). Every error is an ErrorBody: a stable code for programs and a message for people.",
		},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []string{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an admin token, a service account token or a user's session token"}},
			"schemas":         schemas,
			"responses": map[string]any{
				"Error": map[string]any{"description": "An error: 400 bad input, 401 not signed in, 403 not allowed, 404 not found, 409 conflict, 413 body too large, 503 audit trail unavailable",
					"content": map[string]any{"application/json": map[string]any{"schema": errSchema}}},
				"ApprovalPending": map[string]any{"description": "The change needs a second person's approval (approvals.required_for); it is held until approved",
					"content": map[string]any{"application/json": map[string]any{"schema": pending}}},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	// The reflector's references point into its own $defs; here they
	// live under components.
	return []byte(strings.ReplaceAll(string(b), `"#/$defs/`, `"#/components/schemas/`)), nil
}

// schemaRef generates v's JSON Schema (2020-12, the dialect of OpenAPI
// 3.1), adds the named types it uses to schemas, and returns a reference
// to it.
func schemaRef(v any, schemas map[string]any) (map[string]any, error) {
	r := &jsonschema.Reflector{
		AllowAdditionalProperties: true,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[json.RawMessage]() {
				return &jsonschema.Schema{Description: "any JSON value"}
			}
			return nil
		},
	}
	s := r.Reflect(v)
	for name, def := range s.Definitions {
		schemas[name] = def
	}
	if s.Ref != "" {
		return map[string]any{"$ref": s.Ref}, nil
	}
	// An inline type (a map): its schema without the meta fields.
	s.Version, s.ID, s.Definitions = "", "", nil
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// operationID names an operation: its method and path in camel case,
// stable as long as the route is.
func operationID(rt endpoint) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.method))
	up := true
	for _, r := range strings.TrimPrefix(openAPIPath(rt), adminapi.Prefix) {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
			if up && r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			up = false
		case r == '{':
			b.WriteString("By")
			up = true
		default:
			up = true
		}
	}
	return b.String()
}

// tag groups an operation by the first segment of its path.
func tag(path string) string {
	seg := strings.Split(strings.TrimPrefix(strings.TrimPrefix(path, adminapi.Prefix), "/"), "/")[0]
	if seg == "" {
		return "admin"
	}
	return seg
}

// openAPI serves the description; it is built once, from the table.
func (a *API) openAPI(w http.ResponseWriter, r *http.Request) {
	a.docOnce.Do(func() {
		a.doc, a.docErr = openAPIDocument(a.table, a.opts.Version)
	})
	if a.docErr != nil {
		writeError(w, http.StatusInternalServerError, "internal", "the API description could not be built; see keygate's log")
		a.opts.Log.Error("building the OpenAPI document failed", "err", a.docErr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.doc)
}

// documentedRoutes lists the IDs operationDocs describes, sorted.
func documentedRoutes() []string {
	docs := operationDocs()
	ids := make([]string, 0, len(docs))
	for id := range docs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
