package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/egress"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
	"github.com/keygate/keygate/internal/web"
)

// newMCPAuth builds keygate's authorization server for MCP clients: codes
// hashed under a pepper of their own, the consent form signed with a key
// every node shares, people's sessions read by the admin API, client ID
// metadata documents fetched under the egress policy, the issuer at
// publicURL (or as the request or a trusted proxy names it), and the
// authorization endpoint on the admin listener at adminURL.
func newMCPAuth(ctx context.Context, st *store.Store, v *vault.Vault, adm *admin.API, adminURL, publicURL string, proxies []netip.Prefix,
	egressPolicy egress.Policy, trail interface{ Record(audit.Event) error }, log *slog.Logger) (*mcpauth.Server, error) {
	pepper, err := v.Ensure(ctx, "system/oauth-code-pepper", 32)
	if err != nil {
		return nil, fmt.Errorf("authorization code pepper: %w", err)
	}
	codes, err := apikey.NewHasher([]byte(pepper.Reveal()))
	if err != nil {
		return nil, err
	}
	csrf, err := v.Ensure(ctx, "system/oauth-consent-key", 32)
	if err != nil {
		return nil, fmt.Errorf("consent form key: %w", err)
	}
	return mcpauth.New(mcpauth.Options{
		Store: st, People: signedIn(adm.SignedInPerson), Keys: ownedKeys{st},
		Codes: codes, CSRFKey: []byte(csrf.Reveal()),
		AuthorizeURL: strings.TrimSuffix(adminURL, "/") + mcpauth.AuthorizePath,
		// Client ID metadata documents are fetched under the egress guard
		// (public addresses only, no redirects), briefly.
		Documents:  egressPolicy.Client(5 * time.Second),
		Limiter:    limit.NewMemory(),
		Origin:     func(r *http.Request) string { return web.PublicOrigin(r, publicURL, proxies) },
		ClientAddr: func(r *http.Request) string { return web.ClientAddr(r, proxies).String() },
		Audit:      trail, Log: log,
	})
}

// signedIn adapts the admin API's session check to mcpauth.People.
type signedIn func(r *http.Request) (mcpauth.Person, error)

// SignedIn returns the person r's session belongs to.
func (f signedIn) SignedIn(r *http.Request) (mcpauth.Person, error) { return f(r) }

// ownedKeys lists a person's own usable keys with tools, for the consent page.
type ownedKeys struct{ st *store.Store }

// OwnedKeys returns the keys userID owns that are live and allow a tool;
// none when the user is disabled or gone.
func (o ownedKeys) OwnedKeys(ctx context.Context, userID string, now time.Time) ([]mcpauth.Key, error) {
	u, err := o.st.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if u.DisabledAt != nil {
		return nil, nil
	}
	ks, err := o.st.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []mcpauth.Key
	for _, k := range ks {
		if k.Owner != userID || userID == "" || k.RevokedAt != nil || k.SuspendedAt != nil || len(k.AllowTools) == 0 ||
			(k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) {
			continue
		}
		out = append(out, mcpauth.Key{ID: k.ID, Name: k.Name, Tools: k.AllowTools})
	}
	return out, nil
}

// withAuthorize serves keygate's authorization endpoint for MCP clients
// on the admin listener, beside the console. It is public like the
// sign-in page, deliberately outside the admin API's route table: it acts
// only for the person whose session it reads, and its form is refused
// from other sites (CrossOriginProtection) and bound to that session.
func withAuthorize(next http.Handler, as *mcpauth.Server) http.Handler {
	if as == nil {
		return next
	}
	csrf := http.NewCrossOriginProtection()
	authorize := csrf.Handler(http.HandlerFunc(as.ServeAuthorize))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == mcpauth.AuthorizePath {
			authorize.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
