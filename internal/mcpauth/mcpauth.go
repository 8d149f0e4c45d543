// Package mcpauth is keygate's OAuth authorization server for MCP clients
// (Claude Code, the MCP Go SDK's client, MCP Inspector): the metadata
// (RFC 8414), dynamic client registration (RFC 7591), the authorization
// endpoint with PKCE (S256 only) and resource indicators (RFC 8707), where
// a person signs in with keygate's own sign-in and consents, and the
// redemption of the authorization code at the gateway's /oauth/token.
//
// What a token issued here can reach: it stands for one keygate key the
// person owns (store.Key.Owner), chosen on the consent page, so
// revocation, limits, audit and the denylist work as for every other
// token of that key. Its tool scope is the tool: scopes the client asked
// for, each of which must lie within that key's tools, or, when it asked
// for none, the key's tools. It is bound to the one MCP resource the
// client named (/mcp or /mcp/{server} on the gateway): the gateway
// refuses it anywhere else, model endpoints included.
//
// The metadata, registration and token endpoints are on the gateway (the
// issuer is the gateway's origin); the authorization endpoint is on the
// admin listener, where people's sessions live.
package mcpauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/store"
)

// Lifetimes and bounds of what this server hands out and accepts.
const (
	// CodeLifetime is how long an authorization code can be exchanged.
	CodeLifetime = 60 * time.Second
	// MaxRedirectURIs is the most redirect URIs one client may register.
	MaxRedirectURIs = 5
	// maxURI bounds each URI a client sends, in bytes.
	maxURI = 512
	// maxName bounds a client's name, in bytes.
	maxName = 100
	// maxRegistration bounds a registration request's body, in bytes.
	maxRegistration = 16 << 10
	// DefaultRegistrationsPerHour is how many clients one address may
	// register in an hour when Options.RegistrationsPerHour is zero.
	DefaultRegistrationsPerHour = 20
)

// Store keeps registered clients and authorization codes; keygate's
// database store is one.
type Store interface {
	// CreateOAuthClient records a client; an ID taken is store.ErrConflict.
	CreateOAuthClient(ctx context.Context, c store.OAuthClient) error
	// GetOAuthClient returns a client, or store.ErrNotFound.
	GetOAuthClient(ctx context.Context, id string) (store.OAuthClient, error)
	// PutOAuthCode records an authorization code by its hash.
	PutOAuthCode(ctx context.Context, c store.OAuthCode) error
	// UseOAuthCode spends a code once; a second spend is store.ErrCodeReused
	// with the code as first spent.
	UseOAuthCode(ctx context.Context, hash []byte, familyID string, at time.Time) (store.OAuthCode, error)
}

// Person is someone signed in to keygate.
type Person struct {
	ID   string // the user id
	Name string
	// AMR says how the person signed in (RFC 8176): "pwd", "otp", ...
	AMR []string
	// Session identifies the session (its ID, never its secret); the
	// consent form is bound to it.
	Session string
}

// ErrNotSignedIn means a request carries no usable session: none, or an
// expired or revoked one.
var ErrNotSignedIn = errors.New("mcpauth: not signed in")

// ErrSecondFactorPending means the person signed in but must still enrol
// the second factor their role requires, which they do at the console.
var ErrSecondFactorPending = errors.New("mcpauth: second factor pending")

// People tells who a browser's request is signed in as; keygate's admin
// API, which keeps sessions, is one.
type People interface {
	// SignedIn returns the person r's session belongs to, ErrNotSignedIn
	// when there is none, ErrSecondFactorPending when it still owes its
	// second factor, or another error when sessions cannot be read.
	SignedIn(r *http.Request) (Person, error)
}

// Key is one keygate key a person may let an MCP client use.
type Key struct {
	ID    string
	Name  string
	Tools []string // the key's tool patterns (server/tool, !deny)
}

// Keys lists the keys a person owns that are usable now (not revoked,
// expired or suspended) and allow at least one tool; none when the person
// is disabled.
type Keys interface {
	OwnedKeys(ctx context.Context, userID string, now time.Time) ([]Key, error)
}

// Hasher computes the value stored for an authorization code: an HMAC
// under a secret pepper (*apikey.Hasher is one).
type Hasher interface {
	Hash(raw string) [32]byte
}

// Auditor records events on keygate's audit trail.
type Auditor interface {
	Record(ev audit.Event) error
}

// Options configures a Server.
type Options struct {
	Store  Store
	People People
	Keys   Keys
	// Codes hashes authorization codes; give it a pepper of its own.
	Codes Hasher
	// CSRFKey signs the consent form to the session that showed it (32
	// random bytes, the same on every node).
	CSRFKey []byte
	// AuthorizeURL is the authorization endpoint's absolute URL, on the
	// admin listener (such as http://127.0.0.1:8788/oauth/authorize).
	AuthorizeURL string
	// SignInURL is the sign-in page on the admin listener, relative to it
	// ("/signin"); the request to come back to is added as ?next=.
	SignInURL string
	// Documents, when set, fetches client ID metadata documents: a client
	// whose client_id is an https URL is described by the JSON document
	// there, and needs no registration. Give it keygate's egress guard
	// (no private addresses, no redirects) and a short timeout. nil: such
	// clients must register.
	Documents *http.Client
	// MaxDocuments bounds how many fetched client ID metadata documents
	// are kept (each until its Cache-Control max-age, within 1 minute and
	// 24 hours, ends); 0 is DefaultMaxDocuments.
	MaxDocuments int
	// Limiter throttles registrations per client address; nil: none.
	Limiter              limit.Limiter
	RegistrationsPerHour int64
	// Origin returns scheme://host as clients reach the gateway, the
	// issuer: a configured public URL or a trusted proxy's forwarded
	// scheme and host (web.PublicOrigin). nil: Origin, the request's own.
	Origin func(r *http.Request) string
	// ClientAddr returns a request's client address, as the audit trail
	// names it (trusted proxies honoured).
	ClientAddr func(r *http.Request) string
	Audit      Auditor
	Log        *slog.Logger
	Now        func() time.Time
}

// Server is keygate's OAuth authorization server for MCP clients. It is
// safe for concurrent use.
type Server struct {
	o    Options
	docs *documents
}

// New returns a Server, or an error naming the option that is missing.
func New(o Options) (*Server, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("mcpauth: a store for clients and codes is required")
	case o.People == nil || o.Keys == nil:
		return nil, errors.New("mcpauth: sign-in (People) and key lookup (Keys) are required")
	case o.Codes == nil:
		return nil, errors.New("mcpauth: a hasher for authorization codes is required")
	case len(o.CSRFKey) < 32:
		return nil, errors.New("mcpauth: the consent form's CSRF key must be at least 32 bytes")
	case o.AuthorizeURL == "":
		return nil, errors.New("mcpauth: the authorization endpoint's URL is required")
	}
	if o.SignInURL == "" {
		o.SignInURL = "/signin"
	}
	if o.RegistrationsPerHour == 0 {
		o.RegistrationsPerHour = DefaultRegistrationsPerHour
	}
	if o.Origin == nil {
		o.Origin = Origin
	}
	if o.ClientAddr == nil {
		o.ClientAddr = func(r *http.Request) string {
			h, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return h
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxDocuments <= 0 {
		o.MaxDocuments = DefaultMaxDocuments
	}
	return &Server{o: o, docs: &documents{max: o.MaxDocuments}}, nil
}

// audit records an event; a trail that cannot record is logged, never
// shown to the client.
func (s *Server) audit(r *http.Request, typ, keyID, decision string, fields map[string]string) {
	if s.o.Audit == nil {
		return
	}
	ev := audit.Event{Type: typ, KeyID: keyID, Client: s.o.ClientAddr(r), Resource: r.Method + " " + r.URL.Path, Decision: decision, Fields: fields}
	if err := s.o.Audit.Record(ev); err != nil {
		s.o.Log.Error("could not record an OAuth event in the audit trail", "type", typ, "err", err)
	}
}

// Origin is the scheme and host a request reached, as the gateway names
// itself to MCP clients when no public URL or trusted proxy says
// otherwise (Options.Origin).
func Origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// MCPResource reports whether raw is an MCP resource of a keygate gateway:
// an absolute http(s) URL whose path is /mcp or /mcp/{server}, with no
// query, fragment or user info. It returns the URL parsed.
func MCPResource(raw string) (*url.URL, bool) {
	if len(raw) > maxURI {
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, false
	}
	p := u.EscapedPath()
	if p == "/mcp" {
		return u, true
	}
	name, ok := strings.CutPrefix(p, "/mcp/")
	if !ok || name == "" || strings.ContainsAny(name, "/%") {
		return nil, false
	}
	return u, true
}

// randomToken returns n random bytes, base64url without padding, after prefix.
func randomToken(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}
