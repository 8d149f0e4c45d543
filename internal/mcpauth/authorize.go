package mcpauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
)

// authRequest is an authorization request (RFC 6749 §4.1.1 with PKCE and
// a resource indicator), checked.
type authRequest struct {
	client      store.OAuthClient
	redirectURI string
	state       string
	challenge   string
	resource    string
	scope       string   // as asked, for the consent form
	tools       []string // the tool: scopes asked for
}

// pageError is a refusal shown to the person rather than sent to the
// client: the client or its redirect URI cannot be trusted with it.
type pageError struct{ msg string }

func (e *pageError) Error() string { return e.msg }

// redirectError is a refusal sent back to the client's redirect URI.
type redirectError struct{ code, desc string }

func (e *redirectError) Error() string { return e.code + ": " + e.desc }

// parseAuthRequest checks an authorization request's parameters: a
// registered client and one of its redirect URIs (else a page error),
// then response_type code, a PKCE S256 challenge (plain is refused), a
// resource that is an MCP endpoint of keygate, and tool: scopes.
func (s *Server) parseAuthRequest(r *http.Request, v url.Values) (*authRequest, error) {
	id := v.Get("client_id")
	if id == "" || len(id) > maxURI {
		return nil, &pageError{"the request names no client (client_id); start the sign-in from your MCP client again"}
	}
	var c store.OAuthClient
	if s.o.Documents != nil && isDocumentID(id) {
		var err error
		if c, err = s.clientDocument(r.Context(), id); err != nil {
			return nil, &pageError{"this MCP client's metadata document (" + id + ") cannot be used: " + err.Error()}
		}
	} else {
		var err error
		c, err = s.o.Store.GetOAuthClient(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &pageError{"this MCP client is not registered with keygate; let it register again (it does so on its own when it connects)"}
		}
		if err != nil {
			return nil, fmt.Errorf("read OAuth client: %w", err)
		}
	}
	req := &authRequest{client: c, redirectURI: v.Get("redirect_uri"), state: v.Get("state")}
	if req.redirectURI == "" && len(c.RedirectURIs) == 1 {
		req.redirectURI = c.RedirectURIs[0]
	}
	if !registeredRedirect(c, req.redirectURI) {
		return nil, &pageError{"the redirect URI is not one this client registered; keygate will not send a code there"}
	}
	if len(req.state) > 512 {
		return req, &redirectError{"invalid_request", "state must be at most 512 bytes"}
	}
	if v.Get("response_type") != "code" {
		return req, &redirectError{"unsupported_response_type", "keygate issues authorization codes only: response_type=code"}
	}
	req.challenge = v.Get("code_challenge")
	if req.challenge == "" {
		return req, &redirectError{"invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256"}
	}
	if v.Get("code_challenge_method") != "S256" {
		return req, &redirectError{"invalid_request", "code_challenge_method must be S256; plain is refused"}
	}
	if b, err := base64.RawURLEncoding.DecodeString(req.challenge); err != nil || len(b) != sha256.Size {
		return req, &redirectError{"invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)"}
	}
	req.resource = v.Get("resource")
	if _, ok := MCPResource(req.resource); !ok {
		return req, &redirectError{"invalid_target", "resource must be keygate's MCP endpoint, such as https://HOST/mcp or https://HOST/mcp/SERVER (RFC 8707)"}
	}
	req.scope = v.Get("scope")
	if len(req.scope) > 2048 {
		return req, &redirectError{"invalid_scope", "scope is at most 2048 bytes"}
	}
	for item := range strings.FieldsSeq(req.scope) {
		if item == "offline_access" {
			continue // refresh tokens are issued anyway
		}
		t, ok := strings.CutPrefix(item, "tool:")
		if !ok {
			return req, &redirectError{"invalid_scope", fmt.Sprintf("scope %.60q: keygate grants MCP clients tool:SERVER/TOOL scopes only", item)}
		}
		if err := authz.ValidToolPattern(t); err != nil {
			return req, &redirectError{"invalid_scope", "scope tool:" + err.Error()}
		}
		req.tools = append(req.tools, t)
	}
	return req, nil
}

// redirect sends the client its answer at its redirect URI, with state
// and iss (RFC 9207).
func (req *authRequest) redirect(w http.ResponseWriter, r *http.Request, params url.Values) {
	u, _ := url.Parse(req.redirectURI)
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if req.state != "" {
		q.Set("state", req.state)
	}
	q.Set("iss", req.issuer())
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// issuer is the authorization server the client discovered: the origin
// of the gateway whose MCP endpoint it asked for.
func (req *authRequest) issuer() string {
	u, ok := MCPResource(req.resource)
	if !ok {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// ServeAuthorize is GET and POST /oauth/authorize on the admin listener.
// It is deliberately outside the admin API's route table: it is public
// like the sign-in page, and acts only for the person whose session it
// reads. GET shows the consent page (after sending a person who is not
// signed in to the sign-in page, and back); POST takes the decision.
func (s *Server) ServeAuthorize(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	var v url.Values
	switch r.Method {
	case http.MethodGet:
		v = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			s.page(w, http.StatusBadRequest, "The form could not be read.")
			return
		}
		v = r.PostForm
	default:
		h.Set("Allow", "GET, POST")
		s.page(w, http.StatusMethodNotAllowed, "Use GET or POST.")
		return
	}
	req, err := s.parseAuthRequest(r, v)
	if err != nil {
		var pe *pageError
		var re *redirectError
		switch {
		case errors.As(err, &pe):
			s.page(w, http.StatusBadRequest, pe.msg)
		case errors.As(err, &re):
			s.audit(r, "oauth.authorize", "", "deny", map[string]string{"client_id": req.client.ID, "reason": re.code})
			req.redirect(w, r, url.Values{"error": {re.code}, "error_description": {re.desc}})
		default:
			s.o.Log.Error("an authorization request failed", "err", err)
			s.page(w, http.StatusServiceUnavailable, "keygate could not read this request right now; try again shortly.")
		}
		return
	}
	person, err := s.o.People.SignedIn(r)
	if errors.Is(err, ErrNotSignedIn) {
		if r.Method == http.MethodPost {
			s.page(w, http.StatusUnauthorized, "Your session ended; start the sign-in from your MCP client again.")
			return
		}
		http.Redirect(w, r, s.o.SignInURL+"?next="+url.QueryEscape(AuthorizePath+"?"+r.URL.RawQuery), http.StatusSeeOther)
		return
	}
	if errors.Is(err, ErrSecondFactorPending) {
		s.page(w, http.StatusForbidden, "Your role needs a second factor: set one up in the keygate console (keygate user totp, or a passkey), then start the sign-in from your MCP client again.")
		return
	}
	if err != nil {
		s.o.Log.Error("reading the session of an authorization request failed", "err", err)
		s.page(w, http.StatusServiceUnavailable, "keygate could not read your session right now; try again shortly.")
		return
	}
	keys, err := s.eligibleKeys(r, person, req)
	if err != nil {
		s.o.Log.Error("listing a person's keys failed", "err", err)
		s.page(w, http.StatusServiceUnavailable, "keygate could not read your keys right now; try again shortly.")
		return
	}
	if r.Method == http.MethodGet {
		s.consent(w, req, person, keys)
		return
	}
	s.decide(w, r, v, req, person, keys)
}

// grantable is one of the person's keys and the tools a token for it
// would carry.
type grantable struct {
	Key   Key
	Tools []string // the scope granted: those asked for, or the key's own
}

// eligibleKeys are the person's keys that allow every tool asked for.
func (s *Server) eligibleKeys(r *http.Request, p Person, req *authRequest) ([]grantable, error) {
	ks, err := s.o.Keys.OwnedKeys(r.Context(), p.ID, s.o.Now())
	if err != nil {
		return nil, err
	}
	var out []grantable
	for _, k := range ks {
		if len(k.Tools) == 0 {
			continue
		}
		if len(req.tools) == 0 {
			out = append(out, grantable{Key: k, Tools: k.Tools})
			continue
		}
		if authz.Within(authz.Grant{Tools: k.Tools}, authz.Scope{Tools: req.tools}) == nil {
			out = append(out, grantable{Key: k, Tools: req.tools})
		}
	}
	return out, nil
}

// csrfToken binds the consent form to the session that was shown it and
// to the request it answers.
func (s *Server) csrfToken(p Person, req *authRequest) string {
	m := hmac.New(sha256.New, s.o.CSRFKey)
	for _, part := range []string{"mcpauth-consent", p.Session, p.ID, req.client.ID, req.redirectURI, req.challenge, req.resource, req.scope, req.state} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// decide takes the consent form's answer: deny, or allow with one of the
// person's keys, for which it makes a code.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, v url.Values, req *authRequest, p Person, keys []grantable) {
	want := s.csrfToken(p, req)
	if got := v.Get("csrf"); !hmac.Equal([]byte(got), []byte(want)) {
		s.page(w, http.StatusForbidden, "This consent form was not shown to your session; start the sign-in from your MCP client again.")
		return
	}
	fields := map[string]string{"client_id": req.client.ID, "client_name": req.client.Name, "user": p.Name, "resource": req.resource}
	if v.Get("decision") != "allow" {
		fields["reason"] = "access_denied"
		s.audit(r, "oauth.authorize", "", "deny", fields)
		req.redirect(w, r, url.Values{"error": {"access_denied"}, "error_description": {"the person declined"}})
		return
	}
	i := slices.IndexFunc(keys, func(g grantable) bool { return g.Key.ID == v.Get("key") })
	if i < 0 {
		s.page(w, http.StatusBadRequest, "Choose one of your keys that allows the tools asked for.")
		return
	}
	g := keys[i]
	sc := token.Scope{Resource: req.resource}
	if len(req.tools) > 0 {
		sc.Tools = req.tools
	}
	scope, _ := json.Marshal(sc)
	raw, err := randomToken("kgc_", 32)
	if err != nil {
		s.page(w, http.StatusInternalServerError, "keygate could not make a code; try again.")
		return
	}
	now := s.o.Now().UTC()
	h := s.o.Codes.Hash(raw)
	err = s.o.Store.PutOAuthCode(r.Context(), store.OAuthCode{Hash: h[:], ClientID: req.client.ID, RedirectURI: req.redirectURI, Challenge: req.challenge,
		Resource: req.resource, UserID: p.ID, KeyID: g.Key.ID, Scope: scope, AMR: p.AMR, CreatedAt: now, ExpiresAt: now.Add(CodeLifetime)})
	if err != nil {
		s.o.Log.Error("recording an authorization code failed", "err", err)
		s.page(w, http.StatusServiceUnavailable, "keygate could not record the authorization right now; try again shortly.")
		return
	}
	fields["key"] = g.Key.Name
	fields["tools"] = strings.Join(g.Tools, " ")
	s.audit(r, "oauth.authorize", g.Key.ID, "allow", fields)
	req.redirect(w, r, url.Values{"code": {raw}})
}

// consentView is what the consent page shows.
type consentView struct {
	Client, RedirectHost, Resource, User string
	Publisher                            string // the host of a client ID metadata document, which vouches for the name
	Asked                                []string
	Keys                                 []grantable
	Hidden                               map[string]string
}

func (s *Server) consent(w http.ResponseWriter, req *authRequest, p Person, keys []grantable) {
	u, _ := url.Parse(req.redirectURI)
	cv := consentView{Client: req.client.Name, RedirectHost: u.Host, Resource: req.resource, User: p.Name, Asked: req.tools, Keys: keys,
		Publisher: documentHost(req.client.ID),
		Hidden: map[string]string{"client_id": req.client.ID, "redirect_uri": req.redirectURI, "response_type": "code", "state": req.state,
			"code_challenge": req.challenge, "code_challenge_method": "S256", "resource": req.resource, "scope": req.scope, "csrf": s.csrfToken(p, req)}}
	// The form posts here, and its answer redirects to the client: both
	// are allowed form targets, nothing else is.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' "+u.Scheme+"://"+u.Host+"; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if err := consentPage.Execute(w, cv); err != nil {
		s.o.Log.Error("rendering the consent page failed", "err", err)
	}
}

// page shows a message, for requests the client cannot be told about.
func (s *Server) page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = messagePage.Execute(w, msg)
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow {{.Client}} to use your keygate tools?</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}code{background:#eee;padding:0 .2em}</style></head>
<body>
<h1>Allow <em>{{.Client}}</em> to use your tools?</h1>
{{if .Publisher}}<p>The client describes itself from <strong>{{.Publisher}}</strong>.</p>{{else}}<p>The client registered itself with keygate: its name is its own claim.</p>{{end}}
<p>Signed in as <strong>{{.User}}</strong>.</p>
<p>The client will receive a token for <code>{{.Resource}}</code> alone, and will be sent back to <strong>{{.RedirectHost}}</strong>.</p>
{{if .Asked}}<p>It asks for: {{range .Asked}}<code>tool:{{.}}</code> {{end}}</p>{{else}}<p>It asks for no particular tools: it will get the tools of the key you choose.</p>{{end}}
<form method="post" action="/oauth/authorize">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}
{{if .Keys}}<fieldset><legend>Act with which of your keys?</legend>
{{range $i, $g := .Keys}}<p><label><input type="radio" name="key" value="{{$g.Key.ID}}"{{if eq $i 0}} checked{{end}}> <strong>{{$g.Key.Name}}</strong>: {{range $g.Tools}}<code>tool:{{.}}</code> {{end}}</label></p>
{{end}}</fieldset>
<p><button type="submit" name="decision" value="allow">Allow</button> <button type="submit" name="decision" value="deny">Deny</button></p>
{{else}}<p>You own no usable key that allows these tools. Ask an administrator for one (a key of your team with <code>--allow-tool</code>), then start again from your MCP client.</p>
<p><button type="submit" name="decision" value="deny">Tell the client no</button></p>{{end}}
</form>
</body></html>
`))

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keygate sign-in for MCP</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style></head>
<body><h1>keygate</h1><p>{{.}}</p></body></html>
`))

// documentHost is the host of a client ID metadata document's URL, or ""
// for a registered client.
func documentHost(id string) string {
	if !isDocumentID(id) {
		return ""
	}
	u, _ := url.Parse(id)
	return u.Host
}
