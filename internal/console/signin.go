package console

import (
	"errors"
	"net/http"
	"strings"
)

// The console does not keep sessions: the admin API does (docs/signin.md).
// Its sign-in forms post here; each is passed to the API's sign-in route
// in-process and the session cookie it sets is handed to the browser.

// signInMethods is how people can sign in here, as GET /auth/methods says.
type signInMethods struct {
	Password bool `json:"password"`
	OIDC     *struct {
		Name     string `json:"name"`
		StartURL string `json:"start_url"`
	} `json:"oidc,omitempty"`
	Token bool `json:"token"`
}

type signinData struct {
	Methods signInMethods
	User    string
	// Next is where to go once signed in: a page of this origin that sent
	// the person here, such as an MCP client's authorization request.
	Next string
}

// localNext returns next when it is a path on this origin that the
// sign-in may return to, and "" otherwise: never another host (//host or
// a scheme), so the form cannot be turned into an open redirect.
func localNext(next string) string {
	if len(next) > 8192 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n\\") {
		return ""
	}
	return next
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	v := &view{Title: "Sign in", Path: r.URL.Path, Version: c.opts.Version, Flash: messages[r.URL.Query().Get("done")]}
	d := signinData{Methods: signInMethods{Password: true, Token: true}, Next: localNext(r.URL.Query().Get("next"))}
	if err := c.api.get(r, "/auth/methods", &d.Methods); err != nil && statusOf(err) != http.StatusNotFound {
		c.logErr(r, "read the sign-in methods", err)
	}
	v.Data = d
	c.render(w, r, http.StatusOK, "signin", v)
}

// signin signs a local user in with a password and, where enrolled, a
// one-time code.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	yes := true
	body := map[string]any{"user": strings.TrimSpace(r.PostForm.Get("user")), "password": r.PostForm.Get("password"),
		"otp": strings.TrimSpace(r.PostForm.Get("otp")), "cookie": &yes}
	c.startSession(w, r, "/auth/login", body, r.PostForm.Get("user"))
}

// signinToken exchanges an admin token, pasted into the form, for a
// session: the token travels once, in the body, and is not kept.
func (c *Console) signinToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	yes := true
	c.startSession(w, r, "/auth/token-login", map[string]any{"token": strings.TrimSpace(r.PostForm.Get("token")), "cookie": &yes}, "")
}

func (c *Console) startSession(w http.ResponseWriter, r *http.Request, path string, body any, user string) {
	rec, err := c.api.do(r, http.MethodPost, path, body, nil)
	if err != nil {
		v := &view{Title: "Sign in", Path: "/signin", Version: c.opts.Version}
		d := signinData{Methods: signInMethods{Password: true, Token: true}, User: user, Next: localNext(r.PostForm.Get("next"))}
		_ = c.api.get(r, "/auth/methods", &d.Methods)
		v.Data = d
		v.Error = "Sign-in failed: " + messageOf(err)
		status := statusOf(err)
		if status == 0 {
			status = http.StatusBadGateway
		}
		c.render(w, r, status, "signin", v)
		return
	}
	copyCookies(w, rec)
	to := "/"
	if next := localNext(r.PostForm.Get("next")); next != "" {
		to = next
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// signout ends the session and clears its cookie.
func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	rec, err := c.api.do(r, http.MethodPost, "/auth/logout", nil, nil)
	if err != nil && statusOf(err) != http.StatusUnauthorized {
		v, ok := c.begin(w, r, "Sign out")
		if ok {
			c.fail(w, r, v, err)
		}
		return
	}
	if rec != nil {
		copyCookies(w, rec)
	}
	http.Redirect(w, r, "/signin?done=signedout", http.StatusSeeOther)
}

// copyCookies hands the API's Set-Cookie headers to the browser.
func copyCookies(w http.ResponseWriter, rec *recorder) {
	for _, sc := range rec.header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", sc)
	}
}

// messageOf is what to tell the user about err: the API's own message,
// or a generic one.
func messageOf(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Message
	}
	return "keygate could not be reached; try again"
}
