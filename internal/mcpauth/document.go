package mcpauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/store"
)

// maxDocument bounds a client ID metadata document, in bytes.
const maxDocument = 5 << 10

// isDocumentID reports whether a client_id is a client ID metadata
// document's URL: https, with a path, and no fragment or user info.
func isDocumentID(id string) bool {
	if len(id) > maxURI || !strings.HasPrefix(id, "https://") {
		return false
	}
	u, err := url.Parse(id)
	return err == nil && u.Host != "" && u.Path != "" && u.Path != "/" && u.Fragment == "" && u.User == nil
}

// document is the part of a client ID metadata document keygate reads.
type document struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// clientDocument fetches and checks the client ID metadata document at
// id: a 200 JSON answer of at most 5 KiB whose client_id is id exactly,
// with redirect URIs and the rest held to the rules of registration.
func (s *Server) clientDocument(ctx context.Context, id string) (store.OAuthClient, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("the client_id is not a URL keygate can fetch")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.o.Documents.Do(req)
	if err != nil {
		return store.OAuthClient{}, fmt.Errorf("keygate could not fetch it (%v)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return store.OAuthClient{}, fmt.Errorf("it answered %d, not 200 with the document", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil || len(body) > maxDocument {
		return store.OAuthClient{}, fmt.Errorf("it could not be read whole, or is over %d bytes", maxDocument)
	}
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		return store.OAuthClient{}, fmt.Errorf("it is not a JSON object of client metadata")
	}
	if d.ClientID != id {
		return store.OAuthClient{}, fmt.Errorf("its client_id is not its own URL")
	}
	reg := registration{RedirectURIs: d.RedirectURIs, ClientName: d.ClientName, ClientURI: d.ClientURI, GrantTypes: d.GrantTypes,
		ResponseTypes: d.ResponseTypes, TokenEndpointAuthMethod: d.TokenEndpointAuthMethod}
	if err := validRegistration(&reg); err != nil {
		return store.OAuthClient{}, err
	}
	return store.OAuthClient{ID: id, Name: reg.ClientName, RedirectURIs: reg.RedirectURIs, ClientURI: reg.ClientURI}, nil
}
