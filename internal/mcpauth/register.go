package mcpauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// MetadataPath is where the authorization server metadata is served
// (RFC 8414 §3), on the gateway.
const MetadataPath = "/.well-known/oauth-authorization-server"

// RegisterPath is the dynamic client registration endpoint (RFC 7591), on
// the gateway.
const RegisterPath = "/oauth/register"

// AuthorizePath is the authorization endpoint, on the admin listener.
const AuthorizePath = "/oauth/authorize"

// ServeMetadata is GET /.well-known/oauth-authorization-server: the
// issuer is the gateway's origin as clients reach it (Options.Origin),
// and the token
// endpoint is the gateway's /oauth/token, shared with token exchange.
// Clients register (RFC 7591) or, when Options.Documents is set, are
// described by a client ID metadata document.
func (s *Server) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	if PublicCORS(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET")
		return
	}
	iss := s.o.Origin(r)
	w.Header().Set("Cache-Control", "max-age=300")
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         s.o.AuthorizeURL,
		"token_endpoint":                                 iss + "/oauth/token",
		"registration_endpoint":                          iss + RegisterPath,
		"revocation_endpoint":                            iss + "/oauth/revoke",
		"jwks_uri":                                       iss + "/.well-known/jwks.json",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"none"},
		"revocation_endpoint_auth_methods_supported":     []string{"none"},
		"authorization_response_iss_parameter_supported": true,
		"client_id_metadata_document_supported":          s.o.Documents != nil,
		"service_documentation":                          "https://github.com/keygate/keygate#sign-in-to-mcp-through-keygate",
	})
}

// PublicCORS lets MCP clients that run in a browser (MCP Inspector) read
// the answers of keygate's public OAuth endpoints: any origin may, and no
// cookie is ever sent or honoured, so it grants nothing a page could not
// get by asking from a server. It answers a CORS preflight itself and
// reports whether it did.
func PublicCORS(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, MCP-Protocol-Version")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// registration is the part of an RFC 7591 request keygate reads.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// ServeRegister is POST /oauth/register (RFC 7591). It is public, as the
// MCP authorization spec asks: anyone may register a client, and a client
// gets nothing until a person signs in and consents. Registrations are
// throttled per address; clients are public (no secret; PKCE protects the
// code), with redirect URIs that are https or http on a loopback address.
func (s *Server) ServeRegister(w http.ResponseWriter, r *http.Request) {
	if PublicCORS(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "register with POST and a JSON body (RFC 7591)")
		return
	}
	if !s.registrationAllowed(w, r) {
		return
	}
	// Metadata keygate does not use is ignored, as RFC 7591 §2 asks.
	var req registration
	r.Body = http.MaxBytesReader(w, r.Body, maxRegistration)
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body must be a JSON object of client metadata under 16 KiB")
		return
	}
	if err := validRegistration(&req); err != nil {
		code := "invalid_client_metadata"
		if errors.Is(err, errRedirect) {
			code = "invalid_redirect_uri"
		}
		s.audit(r, "oauth.client_registered", "", "deny", map[string]string{"reason": code})
		oauthError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	id, err := randomToken("mcp_", 16)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "keygate could not make a client ID; try again")
		return
	}
	now := s.o.Now().UTC()
	c := store.OAuthClient{ID: id, Name: req.ClientName, RedirectURIs: req.RedirectURIs, ClientURI: req.ClientURI, CreatedBy: s.o.ClientAddr(r), CreatedAt: now}
	if err := s.o.Store.CreateOAuthClient(r.Context(), c); err != nil {
		s.o.Log.Error("registering an OAuth client failed", "err", err)
		w.Header().Set("Retry-After", "1")
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "keygate could not record the registration; try again shortly")
		return
	}
	hosts := make([]string, len(req.RedirectURIs))
	for i, u := range req.RedirectURIs {
		pu, _ := url.Parse(u)
		hosts[i] = pu.Host
	}
	s.audit(r, "oauth.client_registered", "", "allow", map[string]string{"client_id": id, "client_name": req.ClientName, "redirect_hosts": strings.Join(hosts, " ")})
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"client_id":                  id,
		"client_id_issued_at":        now.Unix(),
		"client_name":                req.ClientName,
		"client_uri":                 req.ClientURI,
		"redirect_uris":              req.RedirectURIs,
		"grant_types":                req.GrantTypes,
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
}

// registrationAllowed counts a registration against its address's
// allowance, answering 429 with Retry-After past it.
func (s *Server) registrationAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.o.Limiter == nil || s.o.RegistrationsPerHour < 0 {
		return true
	}
	checks := []limit.Check{{Key: "oauth-register:addr:" + s.o.ClientAddr(r), Kind: limit.Rate, Limit: s.o.RegistrationsPerHour, Period: time.Hour, Cost: 1}}
	d, err := s.o.Limiter.Admit(r.Context(), checks)
	if err != nil {
		s.o.Log.Warn("the registration limiter did not answer; registering anyway", "err", err)
		return true
	}
	if d.Allowed {
		_ = s.o.Limiter.Settle(r.Context(), d.Reservation, []int64{1})
		return true
	}
	secs := int64(math.Ceil(max(d.RetryAfter, time.Second).Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.audit(r, "oauth.client_registered", "", "deny", map[string]string{"reason": "throttled"})
	oauthError(w, http.StatusTooManyRequests, "slow_down", fmt.Sprintf("too many client registrations from this address; retry in %ds", secs))
	return false
}

var errRedirect = errors.New("redirect URI refused")

// validRegistration checks and completes a registration: 1 to 5 redirect
// URIs, each https or http on a loopback address, with no fragment; a
// printable name; grant types authorization_code and refresh_token only;
// a public client.
func validRegistration(req *registration) error {
	if len(req.RedirectURIs) == 0 || len(req.RedirectURIs) > MaxRedirectURIs {
		return fmt.Errorf("%w: register 1 to %d redirect_uris", errRedirect, MaxRedirectURIs)
	}
	for _, u := range req.RedirectURIs {
		if err := validRedirect(u); err != nil {
			return err
		}
	}
	req.ClientName = strings.TrimSpace(req.ClientName)
	if req.ClientName == "" {
		req.ClientName = "unnamed MCP client"
	}
	if len(req.ClientName) > maxName || strings.IndexFunc(req.ClientName, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		return fmt.Errorf("client_name must be printable and at most %d bytes", maxName)
	}
	if req.ClientURI != "" {
		if u, err := url.Parse(req.ClientURI); err != nil || len(req.ClientURI) > maxURI || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("client_uri must be an http(s) URL of at most %d bytes", maxURI)
		}
	}
	if len(req.GrantTypes) == 0 {
		req.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	for _, g := range req.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return fmt.Errorf("grant_types may be authorization_code and refresh_token, not %.50q", g)
		}
	}
	for _, t := range req.ResponseTypes {
		if t != "code" {
			return fmt.Errorf("response_types may be code alone, not %.50q", t)
		}
	}
	switch req.TokenEndpointAuthMethod {
	case "", "none":
	default:
		return fmt.Errorf("token_endpoint_auth_method must be none: keygate registers public clients, which prove themselves with PKCE")
	}
	return nil
}

// validRedirect accepts https URLs and http URLs on a loopback address
// (127.0.0.0/8, [::1], localhost), without fragment or user info.
func validRedirect(raw string) error {
	if len(raw) > maxURI {
		return fmt.Errorf("%w: a redirect URI is at most %d bytes", errRedirect, maxURI)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%w: %.100q must be an absolute URL without a fragment or user info", errRedirect, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); (ip != nil && ip.IsLoopback()) || h == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("%w: %.100q must be https, or http on a loopback address (127.0.0.1, [::1], localhost)", errRedirect, raw)
}

// registeredRedirect reports whether uri is one of c's redirect URIs,
// exactly.
func registeredRedirect(c store.OAuthClient, uri string) bool {
	return slices.Contains(c.RedirectURIs, uri)
}

// oauthError answers in RFC 6749's error shape, never cached.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
