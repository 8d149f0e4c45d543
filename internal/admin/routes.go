package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
)

// scope says what a route acts on, for its permission.
type scope int

const (
	// scopeAnyone lets every authenticated principal through: the route
	// shows the caller only itself (whoami) or nothing secret (status).
	scopeAnyone scope = iota + 1
	// scopeGlobal is keygate as a whole: only a global grant reaches it.
	scopeGlobal
	// scopeList lets through a principal with the permission anywhere;
	// the handler lists only the resources Allowed lets it see.
	scopeList
	// scopeTarget is one resource, resolved from the request (a key and
	// its team, a team, a credential and its owner) before the handler.
	scopeTarget
	// scopePublic needs no principal: the sign-in routes, which take a
	// credential to sign in with rather than carry one, and the list of
	// sign-in methods. Their handlers check what they are sent.
	scopePublic
)

// endpoint is one admin API route and its permission decision. Every route
// is registered from the table routes returns and nowhere else, so none
// runs without a decision; New refuses a route without one.
type endpoint struct {
	method, path string // path as http.ServeMux takes it, with the API prefix
	action       string // for /secrets/{path...}: the part after ':'
	perm         rbac.Permission
	scope        scope
	// target resolves the resource of a scopeTarget route; visible is the
	// permission that lets a principal know the resource exists: one that
	// lacks it is told 404, as for a resource that does not exist.
	target  func(a *API, r *http.Request) (resolved, error)
	visible rbac.Permission
	handler http.HandlerFunc
	// enrol lets a session that owes a second factor call the route: it
	// serves enrolling one (or signing out).
	enrol bool
}

// ID names a route as the permission matrix and the logs do: "GET
// /api/v1/keys/{ref}", with ":action" for a secret action.
func (rt endpoint) ID() string {
	id := rt.method + " " + rt.path
	if rt.action != "" {
		id += ":" + rt.action
	}
	return id
}

// resolved is a scopeTarget route's resource, and how to name it in a 404.
type resolved struct {
	res        rbac.Resource
	kind, name string
	self       bool // the principal's own: refused with 403, never 404
}

// routes is the admin API: every route with its permission and scope.
func (a *API) routes() []endpoint {
	p := adminapi.Prefix
	keys := func(method, path string, perm rbac.Permission, h http.HandlerFunc) endpoint {
		return endpoint{method: method, path: p + path, perm: perm, scope: scopeTarget, target: (*API).keyTarget, visible: rbac.KeysRead, handler: h}
	}
	team := func(method, path string, perm rbac.Permission, h http.HandlerFunc) endpoint {
		return endpoint{method: method, path: p + path, perm: perm, scope: scopeTarget, target: (*API).teamTarget, visible: rbac.TeamsRead, handler: h}
	}
	global := func(method, path string, perm rbac.Permission, h http.HandlerFunc) endpoint {
		return endpoint{method: method, path: p + path, perm: perm, scope: scopeGlobal, handler: h}
	}
	list := func(method, path string, perm rbac.Permission, h http.HandlerFunc) endpoint {
		return endpoint{method: method, path: p + path, perm: perm, scope: scopeList, handler: h}
	}
	secret := func(method, action string, perm rbac.Permission, h func(http.ResponseWriter, *http.Request, string)) endpoint {
		return endpoint{method: method, path: p + "/secrets/{path...}", action: action, perm: perm, scope: scopeGlobal, handler: a.secretHandler(h)}
	}
	public := func(method, path string, h http.HandlerFunc) endpoint {
		return endpoint{method: method, path: p + path, scope: scopePublic, handler: h}
	}
	rs := []endpoint{
		{method: "GET", path: p + "/whoami", scope: scopeAnyone, handler: a.whoAmI, enrol: true},
		{method: "GET", path: p + "/status", scope: scopeAnyone, handler: a.status},
		// The API's description: what exists, not what the caller may do.
		{method: "GET", path: p + "/openapi.json", scope: scopeAnyone, handler: a.openAPI},
		global("GET", "/roles", rbac.ConfigRead, a.listRoles),

		public("GET", "/auth/methods", a.signInMethods),
		public("POST", "/auth/login", a.login),
		public("POST", "/auth/token-login", a.tokenLogin),
		public("GET", "/auth/oidc/start", a.oidcStart),
		public("GET", "/auth/oidc/callback", a.oidcCallback),
		public("POST", "/auth/oidc/exchange", a.oidcExchange),
		public("POST", "/auth/oidc/device", a.oidcDeviceStart),
		public("POST", "/auth/oidc/device/token", a.oidcDeviceToken),
		public("POST", "/auth/passkey/begin", a.beginPasskeyLogin),
		public("POST", "/auth/passkey/finish", a.finishPasskeyLogin),
		{method: "POST", path: p + "/auth/logout", scope: scopeAnyone, handler: a.logout, enrol: true},
		{method: "GET", path: p + "/auth/session", scope: scopeAnyone, handler: a.sessionInfo, enrol: true},

		global("GET", "/audit/events", rbac.AuditRead, a.auditEvents),
		list("GET", "/overview", rbac.UsageRead, a.overview),
		global("GET", "/alerts", rbac.AlertsRead, a.listAlerts),
		global("POST", "/alerts/{id}/ack", rbac.AlertsResolve, a.alertState("acknowledged")),
		global("POST", "/alerts/{id}/resolve", rbac.AlertsResolve, a.alertState("resolved")),
		global("GET", "/audit/verify", rbac.AuditVerify, a.auditVerify),
		global("POST", "/audit/ref", rbac.AuditRead, a.auditRef),
		global("GET", "/audit/public-key", rbac.AuditRead, a.auditPublicKey),
		global("GET", "/audit/nodes", rbac.AuditRead, a.auditNodes),
		global("GET", "/audit/trail", rbac.AuditRead, a.auditRows(false)),
		global("GET", "/audit/checkpoints", rbac.AuditRead, a.auditRows(true)),
		global("GET", "/audit/webhook-key", rbac.WebhookKeys, a.webhookKey),
		global("POST", "/audit/webhook-key/rotate", rbac.WebhookKeys, a.rotateWebhookKey),

		global("GET", "/secrets", rbac.SecretsList, a.listSecrets),
		secret("PUT", "", rbac.SecretsWrite, a.putSecret),
		secret("GET", "", rbac.SecretsList, a.getSecret),
		secret("DELETE", "", rbac.SecretsWrite, a.deleteSecret),
		secret("GET", "versions", rbac.SecretsList, a.secretVersions),
		secret("GET", "value", rbac.SecretsReadValue, a.secretValue),
		secret("POST", "rollback", rbac.SecretsWrite, a.rollbackSecret),
		secret("POST", "restore", rbac.SecretsWrite, a.restoreSecret),
		secret("POST", "refresh", rbac.SecretsWrite, a.refreshSecretSource),
		global("GET", "/sources", rbac.SecretsList, a.listSourceRefs),

		global("POST", "/providers", rbac.ProvidersWrite, a.createProvider),
		global("GET", "/providers", rbac.ProvidersRead, a.listProviders),
		global("GET", "/providers/{name}", rbac.ProvidersRead, a.getProvider),
		global("DELETE", "/providers/{name}", rbac.ProvidersWrite, a.deleteProvider),
		global("POST", "/providers/{name}/rotate", rbac.ProvidersWrite, a.rotateProvider),
		global("POST", "/providers/{name}/refresh", rbac.ProvidersWrite, a.refreshProviderSource),

		global("GET", "/routing", rbac.ProvidersRead, a.listRouting),
		global("GET", "/routing/{kind}/{name...}", rbac.ProvidersRead, a.getRouting),
		global("POST", "/routing/{kind}", rbac.ProvidersWrite, a.createRouting),
		global("PUT", "/routing/{kind}/{name...}", rbac.ProvidersWrite, a.replaceRouting),
		global("DELETE", "/routing/{kind}/{name...}", rbac.ProvidersWrite, a.deleteRouting),
		global("POST", "/routing/apply", rbac.ProvidersWrite, a.applyRouting),
		global("GET", "/routing/health", rbac.ProvidersRead, a.routingHealth),
		// MCP servers are upstreams like providers, and their credentials
		// are the vault's: the providers permissions decide them.
		global("POST", "/mcp/servers", rbac.ProvidersWrite, a.createMCPServer),
		global("GET", "/mcp/servers", rbac.ProvidersRead, a.listMCPServers),
		global("GET", "/mcp/servers/{name}", rbac.ProvidersRead, a.getMCPServer),
		global("PATCH", "/mcp/servers/{name}", rbac.ProvidersWrite, a.updateMCPServer),
		global("DELETE", "/mcp/servers/{name}", rbac.ProvidersWrite, a.deleteMCPServer),
		// A user's own authorization at an MCP server that acts for a
		// person (auth oauth): every signed-in user makes, reads and
		// revokes only its own (the handler refuses a principal of no
		// user); whether its keys may call the server is their tool scope.
		{method: "GET", path: p + "/me/mcp/{name}/oauth", scope: scopeAnyone, handler: a.mcpOAuthStatus},
		{method: "GET", path: p + "/me/mcp/{name}/oauth/start", scope: scopeAnyone, handler: a.mcpOAuthStart},
		{method: "DELETE", path: p + "/me/mcp/{name}/oauth", scope: scopeAnyone, handler: a.mcpOAuthRevoke},
		// The authorization server sends the browser back here: the state,
		// bound to the user, the server and this browser's cookie, is the
		// credential, taken once.
		public("GET", "/auth/mcp/callback", a.mcpOAuthCallback),

		global("POST", "/vault/rotate-kek", rbac.VaultRotateKEK, a.rotateKEK),
		global("GET", "/vault/status", rbac.VaultStatus, a.vaultStatus),
		global("GET", "/vault/backup", rbac.BackupExport, a.backup),

		{method: "POST", path: p + "/keys", perm: rbac.KeysCreate, scope: scopeTarget, target: (*API).newKeyTarget, visible: rbac.TeamsRead, handler: a.createKey},
		list("GET", "/keys", rbac.KeysRead, a.listKeys),
		keys("GET", "/keys/{ref}", rbac.KeysRead, a.getKey),
		keys("POST", "/keys/{ref}/revoke", rbac.KeysRevoke, a.revokeKey),
		// Reporting a leaked credential needs only to be signed in: holding
		// the leaked value is what names the key, and the one thing the
		// route does is revoke that key, which whoever found it could
		// already use.
		{method: "POST", path: p + "/leaks", scope: scopeAnyone, handler: a.reportLeak},
		keys("PATCH", "/keys/{ref}", rbac.KeysUpdate, a.updateKey),
		keys("POST", "/keys/{ref}/suspend", rbac.KeysSuspend, a.suspendKey),
		keys("POST", "/keys/{ref}/resume", rbac.KeysSuspend, a.resumeKey),
		keys("POST", "/keys/{ref}/rotate", rbac.KeysRotate, a.rotateKey),
		// An AWS access key pair works as the key does: issuing it takes
		// the power to mint a working credential for the key, as rotating does.
		keys("POST", "/keys/{ref}/aws-credentials", rbac.KeysRotate, a.awsCredentials),
		keys("POST", "/keys/{ref}/totp", rbac.KeysEnrollOTP, a.enrollTOTP),
		keys("GET", "/keys/{ref}/usage", rbac.UsageRead, a.keyUsage),
		keys("GET", "/keys/{ref}/events", rbac.UsageRead, a.keyEvents),
		keys("POST", "/keys/{ref}/step-up", rbac.KeysSuspend, a.requireStepUp),

		global("POST", "/groups", rbac.GroupsManage, a.createGroup),
		global("GET", "/groups", rbac.GroupsRead, a.listGroups),
		global("GET", "/groups/{name}", rbac.GroupsRead, a.getGroup),
		global("PATCH", "/groups/{name}", rbac.GroupsManage, a.updateGroup),
		global("DELETE", "/groups/{name}", rbac.GroupsManage, a.deleteGroup),

		global("GET", "/users", rbac.UsersRead, a.listUsers(false)),
		global("POST", "/users", rbac.UsersManage, a.createUser(false)),
		global("GET", "/users/{name}", rbac.UsersRead, a.getUser),
		global("PUT", "/users/{name}/role", rbac.UsersManage, a.setUserRole),
		global("PUT", "/users/{name}/password", rbac.UsersManage, a.setUserPassword),
		{method: "PUT", path: p + "/me/password", scope: scopeAnyone, handler: a.setOwnPassword},
		{method: "POST", path: p + "/me/totp", scope: scopeAnyone, handler: a.enrolTOTP, enrol: true},
		{method: "POST", path: p + "/me/totp/confirm", scope: scopeAnyone, handler: a.confirmTOTP, enrol: true},
		{method: "GET", path: p + "/me/passkeys", scope: scopeAnyone, handler: a.listPasskeys, enrol: true},
		{method: "POST", path: p + "/me/passkeys/begin", scope: scopeAnyone, handler: a.beginPasskeyRegistration, enrol: true},
		{method: "POST", path: p + "/me/passkeys/finish", scope: scopeAnyone, handler: a.finishPasskeyRegistration, enrol: true},
		{method: "DELETE", path: p + "/me/passkeys/{id}", scope: scopeAnyone, handler: a.removePasskey},
		global("POST", "/users/{name}/disable", rbac.UsersDisable, a.disableUser),
		global("POST", "/users/{name}/enable", rbac.UsersManage, a.enableUser),
		global("GET", "/service-accounts", rbac.UsersRead, a.listUsers(true)),
		global("POST", "/service-accounts", rbac.UsersManage, a.createUser(true)),
		global("POST", "/service-accounts/{name}/tokens", rbac.UsersManage, a.createServiceToken),
		{method: "POST", path: p + "/me/tokens", perm: rbac.AdminTokensManage, scope: scopeTarget, target: (*API).selfTarget, visible: rbac.AdminTokensManage, handler: a.createPersonalToken},
		list("GET", "/admin-tokens", rbac.AdminTokensManage, a.listAdminTokens),
		{method: "POST", path: p + "/admin-tokens/{id}/revoke", perm: rbac.AdminTokensManage, scope: scopeTarget, target: (*API).tokenTarget, visible: rbac.AdminTokensManage, handler: a.revokeAdminToken},

		global("POST", "/teams", rbac.TeamsManage, a.createTeam),
		list("GET", "/teams", rbac.TeamsRead, a.listTeams),
		team("GET", "/teams/{name}", rbac.TeamsRead, a.getTeam),
		team("PATCH", "/teams/{name}", rbac.TeamsManage, a.updateTeam),
		team("GET", "/teams/{name}/usage", rbac.UsageRead, a.teamUsage),
		team("GET", "/teams/{name}/members", rbac.TeamsRead, a.listMembers),
		team("PUT", "/teams/{name}/members/{user}", rbac.TeamsMembers, a.putMember),
		team("DELETE", "/teams/{name}/members/{user}", rbac.TeamsMembers, a.removeMember),
		team("POST", "/teams/{name}/invitations", rbac.InvitationsManage, a.createInvitation),
		team("GET", "/teams/{name}/invitations", rbac.InvitationsRead, a.listTeamInvitations),
		list("GET", "/invitations", rbac.InvitationsRead, a.listInvitations),
		{method: "POST", path: p + "/invitations/{id}/revoke", perm: rbac.InvitationsManage, scope: scopeTarget, target: (*API).invitationTarget, visible: rbac.InvitationsRead, handler: a.revokeInvitation},
		// Holding an invitation's token is what lets its invitee in: these
		// take no principal, like signing in, and are throttled like it.
		public("POST", "/auth/invitations/lookup", a.lookupInvitation),
		public("POST", "/auth/invitations/accept", a.acceptInvitation),
		public("POST", "/auth/invitations/sso", a.ssoInvitation),
		// A user who exists already accepts as itself: the invitation must
		// be addressed to it.
		{method: "POST", path: p + "/me/invitations/accept", scope: scopeAnyone, handler: a.acceptInvitationAsCaller},

		list("GET", "/approvals", rbac.ApprovalsRead, a.listApprovals),
		{method: "GET", path: p + "/approvals/{id}", perm: rbac.ApprovalsRead, scope: scopeTarget, target: (*API).approvalTarget, visible: rbac.ApprovalsRead, handler: a.getApproval},
		global("POST", "/approvals/{id}/approve", rbac.ApprovalsDecide, a.decideApproval(true)),
		global("POST", "/approvals/{id}/deny", rbac.ApprovalsDecide, a.decideApproval(false)),
	}
	if a.opts.Metrics != nil {
		rs = append(rs, endpoint{method: "GET", path: "/metrics", perm: rbac.MetricsRead, scope: scopeGlobal, handler: a.opts.Metrics.ServeHTTP})
	}
	return rs
}

// register puts every route on mux behind its permission decision, and
// returns an error for a route the table left undecided.
func (a *API) register(mux *http.ServeMux, rs []endpoint) error {
	actions := map[string][]endpoint{} // pattern -> secret actions
	var patterns []string
	for _, rt := range rs {
		if err := rt.check(); err != nil {
			return err
		}
		h := a.authorize(rt)
		if rt.scope == scopePublic {
			a.public.Handle(rt.method+" "+rt.path, h)
		}
		if rt.action == "" && !strings.HasSuffix(rt.path, "{path...}") {
			mux.Handle(rt.method+" "+rt.path, h)
			continue
		}
		if _, ok := actions[rt.path]; !ok {
			patterns = append(patterns, rt.path)
		}
		rt.handler = h
		actions[rt.path] = append(actions[rt.path], rt)
	}
	for _, path := range patterns {
		mux.Handle(path, dispatchActions(actions[path]))
	}
	return nil
}

// check refuses a route without a permission decision.
func (rt endpoint) check() error {
	switch {
	case rt.handler == nil:
		return fmt.Errorf("admin route %s has no handler", rt.ID())
	case rt.scope == 0:
		return fmt.Errorf("admin route %s has no scope: give it one in routes()", rt.ID())
	case rt.scope == scopePublic && (rt.perm != "" || rt.action != ""):
		return fmt.Errorf("admin route %s is public but names a permission: a public route takes no principal", rt.ID())
	case rt.scope != scopeAnyone && rt.scope != scopePublic && !rbac.Known(rt.perm):
		return fmt.Errorf("admin route %s has no permission decision (permission %q): give it one of rbac's permissions in routes()", rt.ID(), rt.perm)
	case rt.scope == scopeTarget && (rt.target == nil || !rbac.Known(rt.visible)):
		return fmt.Errorf("admin route %s acts on a resource but names no way to resolve it, or no permission that shows it", rt.ID())
	}
	return nil
}

// dispatchActions serves the routes sharing one {path...} pattern by
// method and the ":action" suffix of the path.
func dispatchActions(rs []endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, action, _ := strings.Cut(r.PathValue("path"), ":")
		i := slices.IndexFunc(rs, func(rt endpoint) bool { return rt.method == r.Method && rt.action == action })
		if i < 0 {
			writeError(w, http.StatusNotFound, "not_found", "no admin API route "+r.Method+" "+r.URL.Path+
				"; secrets take PUT, GET and DELETE, GET :versions, GET :value, POST :rollback and POST :restore")
			return
		}
		rs[i].handler.ServeHTTP(w, r)
	})
}

// authorize decides rt's permission before its handler runs. This is the
// one place the admin plane decides who may do what.
func (a *API) authorize(rt endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := state(r)
		p := st.principal
		roles := a.opts.Roles
		st.route, st.perm = rt.ID(), rt.perm
		if st.session != nil && st.session.MFAPending && !rt.enrol {
			writeError(w, http.StatusForbidden, "mfa_enrolment_required",
				"your role needs a second factor: enrol one first (keygate user totp enrol, or a passkey in the console), then this works")
			return
		}
		switch rt.scope {
		case scopePublic:
			if unsafeMethod(r.Method) {
				// Signing in from another site's page (login CSRF) is
				// refused like any cross-origin change.
				if err := a.csrf.Check(r); err != nil {
					writeError(w, http.StatusForbidden, "forbidden", "cross-origin sign-in refused: sign in from the keygate console itself")
					return
				}
			}
		case scopeAnyone:
		case scopeGlobal:
			if !roles.AllowedGlobally(p, rt.perm) {
				a.forbid(w, r, rt, p)
				return
			}
		case scopeList:
			if !roles.AllowedSomewhere(p, rt.perm) {
				a.forbid(w, r, rt, p)
				return
			}
		case scopeTarget:
			got, err := rt.target(a, r)
			if err != nil {
				a.targetError(w, err)
				return
			}
			if !roles.Allowed(p, rt.perm, got.res) {
				// The principal knows what is its own (itself, its
				// credentials, its requests) exists; anything else only
				// if it may see it.
				if !got.self && !roles.Allowed(p, rt.visible, got.res) {
					// Whoever may not know it exists is told what it is
					// told of one that does not.
					writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no %s named %q", got.kind, got.name))
					return
				}
				a.forbid(w, r, rt, p)
				return
			}
			st.resource = got.res
		}
		if a.needsApproval(rt.perm) {
			a.approvalGate(w, r, rt, rt.handler)
			return
		}
		rt.handler(w, r)
	}
}

// forbid answers 403, naming the permission the caller lacks.
func (a *API) forbid(w http.ResponseWriter, r *http.Request, rt endpoint, p rbac.Principal) {
	a.opts.Log.Warn("admin request refused", "route", rt.ID(), "actor", p.ID, "role", p.Role, "permission", rt.perm, "request_id", requestID(r))
	msg := fmt.Sprintf("%s may not do this: it needs the permission %s, which role %s", describe(p), rt.perm, p.Role)
	if p.Cap != "" {
		msg += " capped at " + p.Cap
	}
	msg += " does not grant here; ask an admin for a role that does (keygate roles shows them)"
	writeError(w, http.StatusForbidden, "forbidden", msg)
}

// describe names a principal in a message.
func describe(p rbac.Principal) string {
	switch p.Kind {
	case rbac.KindUser:
		return "user " + p.Name
	case rbac.KindService:
		return "service account " + p.Name
	}
	return "admin credential " + p.Credential
}

// can reports whether the caller may use perm on res: list handlers show
// only what this allows.
func (a *API) can(r *http.Request, perm rbac.Permission, res rbac.Resource) bool {
	return a.opts.Roles.Allowed(state(r).principal, perm, res)
}

// global reports whether the caller holds perm everywhere, as admins do:
// team policies bind everyone else.
func (a *API) global(r *http.Request, perm rbac.Permission) bool {
	return a.opts.Roles.AllowedGlobally(state(r).principal, perm)
}
