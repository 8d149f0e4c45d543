package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrCodeReused is returned by UseOAuthCode for an authorization code that
// was already spent: someone replayed it.
var ErrCodeReused = errors.New("authorization code already used")

// OAuthClient is an OAuth client that registered itself with keygate's
// authorization server (RFC 7591), such as an MCP client.
type OAuthClient struct {
	ID           string // the client_id: "mcp_" + random
	Name         string // client_name, shown on the consent page
	RedirectURIs []string
	ClientURI    string
	CreatedBy    string // the address the registration came from
	CreatedAt    time.Time
}

// OAuthCode is an authorization code as keygate keeps it: its HMAC, and
// everything the code is bound to.
type OAuthCode struct {
	Hash        []byte
	ClientID    string
	RedirectURI string
	Challenge   string // PKCE S256 code challenge
	Resource    string // the RFC 8707 resource the token is bound to
	UserID      string // the person who granted it
	KeyID       string // the key the token stands for
	Scope       []byte // JSON of the granted token scope
	AMR         []string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      *time.Time
	FamilyID    string // the refresh family its exchange started; "" until spent
}

// CreateOAuthClient records a registered client; an ID taken is ErrConflict.
func (s *Store) CreateOAuthClient(ctx context.Context, c OAuthClient) error {
	uris, err := json.Marshal(c.RedirectURIs)
	if err != nil {
		return fmt.Errorf("store: register an OAuth client: %w", err)
	}
	_, err = s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO oauth_clients (id, name, redirect_uris, client_uri, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`), c.ID, c.Name, string(uris), c.ClientURI, c.CreatedBy, s.timeArg(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: register an OAuth client: %w", mapErr(err))
	}
	return nil
}

// GetOAuthClient returns a registered client, or ErrNotFound.
func (s *Store) GetOAuthClient(ctx context.Context, id string) (OAuthClient, error) {
	c := OAuthClient{ID: id}
	var uris string
	err := s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT name, redirect_uris, client_uri, created_by, created_at FROM oauth_clients WHERE id = ?`), id).
		Scan(&c.Name, &uris, &c.ClientURI, &c.CreatedBy, timeCol{&c.CreatedAt})
	if err != nil {
		return OAuthClient{}, fmt.Errorf("store: read an OAuth client: %w", mapErr(err))
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return OAuthClient{}, fmt.Errorf("store: read the redirect URIs of OAuth client %q: %w", id, err)
	}
	return c, nil
}

const oauthCodeCols = `hash, client_id, redirect_uri, challenge, resource, user_id, key_id, scope, amr, created_at, expires_at, used_at, family_id`

// PutOAuthCode records an authorization code (by its HMAC), and forgets
// codes that expired more than a day before it was made.
func (s *Store) PutOAuthCode(ctx context.Context, c OAuthCode) error {
	if _, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM oauth_codes WHERE expires_at < ?`), s.timeArg(c.CreatedAt.Add(-24*time.Hour))); err != nil {
		return fmt.Errorf("store: forget expired authorization codes: %w", mapErr(err))
	}
	amr, err := json.Marshal(c.AMR)
	if err != nil {
		return fmt.Errorf("store: record an authorization code: %w", err)
	}
	_, err = s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO oauth_codes (`+oauthCodeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		bytesArg(c.Hash), c.ClientID, c.RedirectURI, c.Challenge, c.Resource, c.UserID, c.KeyID, string(c.Scope), string(amr),
		s.timeArg(c.CreatedAt), s.timeArg(c.ExpiresAt), s.nullTimeArg(c.UsedAt), c.FamilyID)
	if err != nil {
		return fmt.Errorf("store: record an authorization code: %w", mapErr(err))
	}
	return nil
}

// UseOAuthCode spends the code with the given hash, naming the refresh
// family its exchange starts, and returns it. Of concurrent calls with one
// code, on any node, exactly one succeeds; the others, and any later call,
// get the code as first spent (its FamilyID set) with an error wrapping
// ErrCodeReused. An unknown code is ErrNotFound. Expiry is the caller's
// to check.
func (s *Store) UseOAuthCode(ctx context.Context, hash []byte, familyID string, at time.Time) (OAuthCode, error) {
	c, err := scanOAuthCode(s.w.QueryRowContext(ctx, rebind(s.dialect, `UPDATE oauth_codes SET used_at = ?, family_id = ?
		WHERE hash = ? AND used_at IS NULL RETURNING `+oauthCodeCols), s.timeArg(at), familyID, bytesArg(hash)))
	if err == nil {
		return c, nil
	}
	if err = mapErr(err); !errors.Is(err, ErrNotFound) {
		return OAuthCode{}, fmt.Errorf("store: spend an authorization code: %w", err)
	}
	c, err = scanOAuthCode(s.w.QueryRowContext(ctx, rebind(s.dialect, `SELECT `+oauthCodeCols+` FROM oauth_codes WHERE hash = ?`), bytesArg(hash)))
	if err != nil {
		return OAuthCode{}, fmt.Errorf("store: spend an authorization code: %w", mapErr(err))
	}
	return c, fmt.Errorf("store: spend an authorization code of family %q: %w", c.FamilyID, ErrCodeReused)
}

func scanOAuthCode(row rowScanner) (OAuthCode, error) {
	var c OAuthCode
	var scope, amr string
	err := row.Scan(&c.Hash, &c.ClientID, &c.RedirectURI, &c.Challenge, &c.Resource, &c.UserID, &c.KeyID, &scope, &amr,
		timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt}, nullTimeCol{&c.UsedAt}, &c.FamilyID)
	if err != nil {
		return OAuthCode{}, err
	}
	c.Scope = []byte(scope)
	if amr != "" && amr != "null" {
		if err := json.Unmarshal([]byte(amr), &c.AMR); err != nil {
			return OAuthCode{}, fmt.Errorf("store: read the amr of an authorization code: %w", err)
		}
	}
	return c, nil
}
