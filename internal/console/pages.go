package console

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
)

// messages are the notes a redirect may ask a page to show, by name: a
// page never echoes text from its URL.
var messages = map[string]string{
	"suspended":    "The key is suspended: its requests are refused until it is resumed.",
	"resumed":      "The key is resumed.",
	"revoked":      "The key is revoked. This cannot be undone.",
	"step-up":      "The key's requests now need a second factor.",
	"acknowledged": "The alert is acknowledged.",
	"resolved":     "The alert is resolved.",
	"approved":     "The request is approved.",
	"denied":       "The request is refused.",
	"disabled":     "The user is disabled: every credential of theirs stopped working.",
	"provider":     "The provider key is stored in the vault. It will not be shown again.",
	"signedout":    "You are signed out.",
	"mcp":          "Your authorization at the MCP server is deleted: your keys' calls to it are refused until you authorize again.",
	"enrolled":     "Your second factor is set up: sign-ins now ask for a code from your authenticator app.",

	"invitation-revoked": "The invitation is revoked: its link no longer works.",
	"joined":             "You joined the team.",
}

// loader fills a page's data; an *apiError it returns is shown with the
// API's status and message.
type loader func(r *http.Request, v *view) error

// page serves a page for a signed-in user who holds one of perms.
func (c *Console) page(name, title string, perms []string, load loader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.begin(w, r, title)
		if !ok {
			return
		}
		if len(perms) > 0 && !slices.ContainsFunc(perms, v.Me.Can) {
			c.fail(w, r, v, &apiError{Status: http.StatusNotFound, Message: "There is no such page, or your role may not open it."})
			return
		}
		if err := load(r, v); err != nil {
			c.fail(w, r, v, err)
			return
		}
		c.render(w, r, http.StatusOK, name, v)
	}
}

// begin reads who is signed in; without a session it sends the browser to
// the sign-in page and returns false.
func (c *Console) begin(w http.ResponseWriter, r *http.Request, title string) (*view, bool) {
	v := &view{Title: title, Path: r.URL.Path, Version: c.opts.Version}
	if err := c.api.get(r, "/whoami", &v.Me.WhoAmI); err != nil {
		if statusOf(err) == http.StatusUnauthorized {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/signin", http.StatusSeeOther)
			} else {
				c.fail(w, r, v, err)
			}
			return nil, false
		}
		c.fail(w, r, v, err)
		return nil, false
	}
	for _, n := range nav {
		if slices.ContainsFunc(n.Perms, v.Me.Can) {
			v.Nav = append(v.Nav, n)
		}
	}
	v.Flash = messages[r.URL.Query().Get("done")]
	return v, true
}

// fail shows an error page: the API's refusal as it said it, or a generic
// message for anything else (logged).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	status := http.StatusBadGateway
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.Code == "mfa_enrolment_required" && r.Method == http.MethodGet {
			// The session may only enrol a second factor: do that first.
			http.Redirect(w, r, "/enrol", http.StatusSeeOther)
			return
		}
		status, v.Error = ae.Status, ae.Message
	} else {
		c.opts.Log.Error("console page failed", "path", r.URL.Path, "err", err)
		v.Error = "keygate could not show this page; see its log."
	}
	if v.Title == "" {
		v.Title = "Error"
	}
	c.render(w, r, status, "error", v)
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no console page "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.Execute(w, v); err != nil {
		c.opts.Log.Error("console page did not render", "page", name, "err", err)
	}
}

// action serves a form: do makes its API calls and returns where to go
// next. A refusal is shown with the API's status and message.
func (c *Console) action(do func(r *http.Request, v *view) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.begin(w, r, "")
		if !ok {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, v, &apiError{Status: http.StatusBadRequest, Message: "The form could not be read."})
			return
		}
		next, err := do(r, v)
		if err != nil {
			c.fail(w, r, v, err)
			return
		}
		if next != "" {
			http.Redirect(w, r, next, http.StatusSeeOther)
		}
	}
}

// routes registers every page and form.
func (c *Console) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.page("overview", "Overview", nil, c.overview))
	mux.HandleFunc("GET /keys", c.page("keys", "Keys", []string{"keys.read"}, c.keys))
	mux.HandleFunc("GET /keys/new", c.page("newkey", "New key", []string{"keys.create"}, c.newKeyForm))
	mux.HandleFunc("POST /keys/new", c.createKey)
	mux.HandleFunc("GET /keys/{ref}", c.page("key", "Key", []string{"keys.read"}, c.key))
	mux.HandleFunc("POST /keys/{ref}/{action}", c.keyAction)
	mux.HandleFunc("GET /providers", c.page("providers", "Providers", []string{"providers.read"}, c.providers))
	mux.HandleFunc("POST /providers/new", c.action(c.addProvider))
	mux.HandleFunc("POST /providers/{name}/rotate", c.action(c.rotateProvider))
	mux.HandleFunc("POST /mcp/{name}/revoke", c.action(c.revokeMCP))
	mux.HandleFunc("GET /people", c.page("people", "Teams and users", []string{"users.read", "teams.read"}, c.people))
	mux.HandleFunc("POST /users/{name}/disable", c.action(c.disableUser))
	mux.HandleFunc("GET /teams/{name}", c.page("team", "Team", []string{"teams.read"}, c.teamPage))
	mux.HandleFunc("POST /teams/{name}/invite", c.invite)
	mux.HandleFunc("POST /invitations/{id}/revoke", c.action(c.revokeInvitation))
	mux.HandleFunc("GET /invite", c.invitePage)
	mux.HandleFunc("POST /invite/accept", c.acceptInvite)
	mux.HandleFunc("POST /invite/sso", c.acceptInviteSSO)
	mux.HandleFunc("POST /invite/join", c.action(c.joinInvite))
	mux.HandleFunc("GET /enrol", c.page("enrol", "Second factor", nil, c.enrolPage))
	mux.HandleFunc("POST /enrol/totp", c.enrolTOTP)
	mux.HandleFunc("POST /enrol/confirm", c.action(c.confirmTOTP))
	mux.HandleFunc("GET /audit", c.page("audit", "Audit", []string{"audit.read"}, c.audit))
	mux.HandleFunc("GET /audit/export", c.auditExport)
	mux.HandleFunc("GET /alerts", c.page("alerts", "Alerts", []string{"alerts.read", "approvals.decide"}, c.alerts))
	mux.HandleFunc("POST /alerts/{id}/{action}", c.action(c.alertAction))
	mux.HandleFunc("POST /approvals/{id}/{decision}", c.action(c.decide))
	mux.HandleFunc("GET /vault", c.page("vault", "Vault", []string{"vault.status", "secrets.list"}, c.vault))
	mux.HandleFunc("POST /vault/read", c.readSecret)
	mux.HandleFunc("GET /signin", c.signinPage)
	mux.HandleFunc("POST /signin", c.signin)
	mux.HandleFunc("POST /signin/token", c.signinToken)
	mux.HandleFunc("POST /signout", c.signout)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.begin(w, r, "Not found")
		if !ok {
			return
		}
		c.fail(w, r, v, &apiError{Status: http.StatusNotFound, Message: "There is no such page."})
	})
}

// seg escapes one path segment of an API route.
func seg(s string) string { return url.PathEscape(s) }

// logErr logs err with the request path; for background failures that do
// not change what the user sees.
func (c *Console) logErr(r *http.Request, what string, err error) {
	c.opts.Log.LogAttrs(r.Context(), slog.LevelWarn, "console: "+what, slog.String("path", r.URL.Path), slog.String("err", err.Error()))
}

// splitList reads a comma- or space-separated form field.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

var _ = adminapi.Prefix
