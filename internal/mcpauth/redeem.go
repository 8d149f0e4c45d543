package mcpauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
)

// Grant is what a redeemed authorization code grants: a token for a key,
// with a scope bound to one MCP resource, starting the refresh family
// FamilyID (which the caller creates with that ID).
type Grant struct {
	KeyID    string
	UserID   string
	ClientID string
	FamilyID string
	Scope    token.Scope
	AMR      []string
}

// TokenError is a refused code redemption, in RFC 6749 §5.2's terms.
// Replayed, when set, is the refresh family the code's first exchange
// started: the code was presented twice, so that family must be revoked.
type TokenError struct {
	Status   int
	Code     string
	Desc     string
	Replayed string
	KeyID    string
}

func (e *TokenError) Error() string { return e.Code + ": " + e.Desc }

func invalidGrant(desc string) *TokenError {
	return &TokenError{Status: http.StatusBadRequest, Code: "invalid_grant", Desc: desc}
}

// Redeem spends the authorization code of a token request (grant_type
// authorization_code; form already parsed) made at origin, the gateway's
// scheme and host. The code must be unspent and unexpired, issued to the
// client_id, for the redirect_uri, with a code_verifier whose S256 is its
// challenge, and for a resource on origin (and equal to resource, when the
// request names one). A code is spent by its first presentation, right or
// wrong: a second one is a replay, refused with TokenError.Replayed set.
// A refusal is a *TokenError; any other error means the store failed.
func (s *Server) Redeem(ctx context.Context, form url.Values, origin string) (Grant, error) {
	raw, clientID, verifier := form.Get("code"), form.Get("client_id"), form.Get("code_verifier")
	if raw == "" || clientID == "" {
		return Grant{}, &TokenError{Status: http.StatusBadRequest, Code: "invalid_request", Desc: "send code, client_id, redirect_uri and code_verifier"}
	}
	if verifier == "" {
		return Grant{}, &TokenError{Status: http.StatusBadRequest, Code: "invalid_request", Desc: "code_verifier is required (PKCE)"}
	}
	if len(raw) > 128 || len(clientID) > maxURI {
		return Grant{}, invalidGrant("the authorization code is invalid, expired or already used")
	}
	// A client described by a metadata document was checked when its code
	// was made; the code is bound to its client_id.
	if !(s.o.Documents != nil && isDocumentID(clientID)) {
		if _, err := s.o.Store.GetOAuthClient(ctx, clientID); errors.Is(err, store.ErrNotFound) {
			return Grant{}, &TokenError{Status: http.StatusUnauthorized, Code: "invalid_client", Desc: "no client is registered with this client_id; register again"}
		} else if err != nil {
			return Grant{}, err
		}
	}
	fam, err := randomToken("fam_", 16)
	if err != nil {
		return Grant{}, fmt.Errorf("mcpauth: family id: %w", err)
	}
	now := s.o.Now()
	h := s.o.Codes.Hash(raw)
	c, err := s.o.Store.UseOAuthCode(ctx, h[:], fam, now)
	switch {
	case errors.Is(err, store.ErrCodeReused):
		e := invalidGrant("the authorization code was already used; every token it granted is revoked")
		if c.ClientID == clientID {
			e.Replayed, e.KeyID = c.FamilyID, c.KeyID
		}
		return Grant{}, e
	case errors.Is(err, store.ErrNotFound):
		return Grant{}, invalidGrant("the authorization code is invalid, expired or already used")
	case err != nil:
		return Grant{}, err
	}
	switch {
	case !now.Before(c.ExpiresAt):
		return Grant{}, invalidGrant("the authorization code has expired; codes live 60 seconds")
	case subtle.ConstantTimeCompare([]byte(c.ClientID), []byte(clientID)) != 1:
		return Grant{}, invalidGrant("the authorization code was issued to another client")
	case form.Get("redirect_uri") != c.RedirectURI:
		return Grant{}, invalidGrant("redirect_uri differs from the one the code was issued for")
	case !verifierMatches(verifier, c.Challenge):
		return Grant{}, invalidGrant("code_verifier does not match the code_challenge (PKCE S256)")
	}
	if res := form.Get("resource"); res != "" && res != c.Resource {
		return Grant{}, &TokenError{Status: http.StatusBadRequest, Code: "invalid_target", Desc: "resource differs from the one the code was issued for"}
	}
	if u, ok := MCPResource(c.Resource); !ok || u.Scheme+"://"+u.Host != origin {
		return Grant{}, &TokenError{Status: http.StatusBadRequest, Code: "invalid_target", Desc: "the code is for a resource of another server than this keygate gateway"}
	}
	var sc token.Scope
	if err := json.Unmarshal(c.Scope, &sc); err != nil {
		return Grant{}, fmt.Errorf("mcpauth: read the scope of an authorization code: %w", err)
	}
	sc.Resource = c.Resource
	return Grant{KeyID: c.KeyID, UserID: c.UserID, ClientID: c.ClientID, FamilyID: fam, Scope: sc, AMR: c.AMR}, nil
}

// verifierMatches checks a PKCE code verifier (RFC 7636 §4.1: 43 to 128
// unreserved characters) against an S256 challenge, in constant time.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// StillGranted checks that the person who authorized a refresh family may
// still use its key: they are enabled and still own it, and it is usable
// and allows tools. A refusal is a *TokenError (invalid_grant); any other
// error means the store failed.
func (s *Server) StillGranted(ctx context.Context, userID, keyID string) error {
	ks, err := s.o.Keys.OwnedKeys(ctx, userID, s.o.Now())
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.ID == keyID {
			return nil
		}
	}
	return invalidGrant("the person who signed this client in can no longer use its key (disabled, or no longer its owner); sign in again")
}
