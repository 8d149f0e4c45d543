// Package ssotest runs a real OpenID provider for tests: the OpenID
// Provider of github.com/zitadel/oidc with its example storage, served
// over HTTP on the loopback address, with discovery, signed ID tokens,
// userinfo and the device authorization grant (RFC 8628). A person's part
// of a device sign-in (entering the code, signing in, approving) goes
// through the provider's own web pages, as a browser would.
package ssotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// User is a person known to the provider.
type User struct {
	Name, Password, Email string
}

// Provider is a running OpenID provider with one confidential client,
// allowed the device grant.
type Provider struct {
	Issuer       string
	ClientID     string
	ClientSecret string
}

type users map[string]*storage.User

func (u users) GetUserByID(id string) *storage.User { return u[id] }
func (u users) GetUserByUsername(name string) *storage.User {
	return u[name]
}
func (u users) ExampleClientID() string { return "" }

// Start serves a provider for ppl until the test ends.
func Start(t testing.TB, ppl ...User) *Provider {
	t.Helper()
	return start(t, "", ppl)
}

// StartWeb serves a provider for ppl until the test ends whose client
// signs people in in the browser (authorization code with PKCE) and may
// be sent back to redirectURI alone. A person's part goes through the
// provider's own login page; see SignIn.
func StartWeb(t testing.TB, redirectURI string, ppl ...User) *Provider {
	t.Helper()
	return start(t, redirectURI, ppl)
}

func start(t testing.TB, redirectURI string, ppl []User) *Provider {
	known := users{}
	for _, p := range ppl {
		// The provider's device pages make the user name the subject.
		known[p.Name] = &storage.User{ID: p.Name, Username: p.Name, Password: p.Password, Email: p.Email,
			EmailVerified: true, FirstName: p.Name, LastName: "Test"}
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	p := &Provider{ClientID: "keygate-test", ClientSecret: "client-secret-" + hex.EncodeToString(raw[:])}
	client := storage.DeviceClient(p.ClientID, p.ClientSecret)
	if redirectURI != "" {
		client = storage.WebClient(p.ClientID, p.ClientSecret, redirectURI)
	}
	st := storage.NewStorageWithClients(known, map[string]*storage.Client{p.ClientID: client})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Issuer = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: exampleop.SetupServer(p.Issuer, st, nil, false), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return p
}

// Approve is a person answering a device sign-in in a browser: they open
// the provider's device page, enter userCode, sign in as name with
// password, and allow it.
func (p *Provider) Approve(userCode, name, password string) error {
	return p.answer(userCode, name, password, "allowed")
}

// Deny is a person signing in and refusing a device sign-in.
func (p *Provider) Deny(userCode, name, password string) error {
	return p.answer(userCode, name, password, "denied")
}

func (p *Provider) answer(userCode, name, password, action string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	page := func(path string, form url.Values) (string, error) {
		resp, err := c.PostForm(p.Issuer+path, form)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("prompt") != "" {
			return "", fmt.Errorf("provider page %s: %d %s %s", path, resp.StatusCode, resp.Request.URL.Query().Get("prompt"), body)
		}
		return string(body), nil
	}
	if _, err := page("/device/", url.Values{"user_code": {userCode}}); err != nil {
		return err
	}
	if _, err := page("/device/login", url.Values{"user_code": {userCode}, "username": {name}, "password": {password}}); err != nil {
		return err
	}
	body, err := page("/device/confirm", url.Values{"action": {action}})
	if err != nil {
		return err
	}
	if !strings.Contains(body, "authorization "+action) {
		return errors.New("the provider did not confirm the answer: " + body)
	}
	return nil
}

// SignIn is a person answering the provider's login page in a browser:
// page is the answer that showed it (after the browser followed keygate's
// redirect to the provider), c the browser, which follows the redirects
// back to the client. It returns the browser's last answer.
func (p *Provider) SignIn(c *http.Client, page *http.Response, name, password string) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, page.Body)
	page.Body.Close()
	u := page.Request.URL
	if !strings.HasPrefix(u.String(), p.Issuer+"/login/username") {
		return nil, fmt.Errorf("the browser is at %s, not the provider's login page", u.Redacted())
	}
	id := u.Query().Get("authRequestID")
	if id == "" {
		return nil, errors.New("the provider's login page names no authorization request")
	}
	return c.PostForm(p.Issuer+"/login/username", url.Values{"id": {id}, "username": {name}, "password": {password}})
}
