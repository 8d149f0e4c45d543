package mcpauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

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

// How long a client ID metadata document is kept: its Cache-Control
// max-age, held within these bounds, or documentTTL when it names none.
// no-store and no-cache keep it for the least time: a client cannot make
// keygate fetch its document more often than once a minute.
const (
	minDocumentTTL = time.Minute
	maxDocumentTTL = 24 * time.Hour
	documentTTL    = 5 * time.Minute
	// DefaultMaxDocuments is how many documents are kept when
	// Options.MaxDocuments is zero.
	DefaultMaxDocuments = 1000
)

// documents keeps fetched and checked client ID metadata documents until
// they expire, at most max of them. It is safe for concurrent use.
type documents struct {
	mu      sync.Mutex
	max     int
	entries map[string]cachedDocument
}

type cachedDocument struct {
	client  store.OAuthClient
	expires time.Time
}

func (d *documents) get(id string, now time.Time) (store.OAuthClient, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	if !ok || !now.Before(e.expires) {
		return store.OAuthClient{}, false
	}
	return e.client, true
}

// put keeps c until expires; when full, expired documents go first, then
// the one that would expire soonest.
func (d *documents) put(c store.OAuthClient, now, expires time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.entries == nil {
		d.entries = make(map[string]cachedDocument)
	}
	if _, ok := d.entries[c.ID]; !ok && len(d.entries) >= d.max {
		for id, e := range d.entries {
			if !now.Before(e.expires) {
				delete(d.entries, id)
			}
		}
		for len(d.entries) >= d.max {
			soonest := ""
			for id, e := range d.entries {
				if soonest == "" || e.expires.Before(d.entries[soonest].expires) {
					soonest = id
				}
			}
			delete(d.entries, soonest)
		}
	}
	d.entries[c.ID] = cachedDocument{client: c, expires: expires}
}

func (d *documents) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// documentLifetime is how long a document answered with header h is
// kept (see minDocumentTTL).
func documentLifetime(h http.Header) time.Duration {
	ttl := documentTTL
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			switch {
			case d == "no-store" || d == "no-cache":
				return minDocumentTTL
			case strings.HasPrefix(d, "max-age="):
				n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(d, "max-age="), `"`), 10, 64)
				if err != nil || n < 0 {
					return minDocumentTTL
				}
				ttl = time.Duration(min(n, int64(maxDocumentTTL/time.Second))) * time.Second
			}
		}
	}
	return min(max(ttl, minDocumentTTL), maxDocumentTTL)
}

// clientDocument returns the client ID metadata document at id, from the
// cache while it is fresh, else fetched (through Options.Documents, with
// its egress guard, every time) and checked.
func (s *Server) clientDocument(ctx context.Context, id string) (store.OAuthClient, error) {
	now := s.o.Now()
	if c, ok := s.docs.get(id, now); ok {
		return c, nil
	}
	c, ttl, err := s.fetchDocument(ctx, id)
	if err != nil {
		return store.OAuthClient{}, err
	}
	s.docs.put(c, now, now.Add(ttl))
	return c, nil
}

// fetchDocument fetches and checks the client ID metadata document at
// id: a 200 JSON answer of at most 5 KiB whose client_id is id exactly,
// with redirect URIs and the rest held to the rules of registration. It
// returns how long the document may be kept.
func (s *Server) fetchDocument(ctx context.Context, id string) (store.OAuthClient, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return store.OAuthClient{}, 0, fmt.Errorf("the client_id is not a URL keygate can fetch")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.o.Documents.Do(req)
	if err != nil {
		return store.OAuthClient{}, 0, fmt.Errorf("keygate could not fetch it (%v)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return store.OAuthClient{}, 0, fmt.Errorf("it answered %d, not 200 with the document", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil || len(body) > maxDocument {
		return store.OAuthClient{}, 0, fmt.Errorf("it could not be read whole, or is over %d bytes", maxDocument)
	}
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		return store.OAuthClient{}, 0, fmt.Errorf("it is not a JSON object of client metadata")
	}
	if d.ClientID != id {
		return store.OAuthClient{}, 0, fmt.Errorf("its client_id is not its own URL")
	}
	reg := registration{RedirectURIs: d.RedirectURIs, ClientName: d.ClientName, ClientURI: d.ClientURI, GrantTypes: d.GrantTypes,
		ResponseTypes: d.ResponseTypes, TokenEndpointAuthMethod: d.TokenEndpointAuthMethod}
	if err := validRegistration(&reg); err != nil {
		return store.OAuthClient{}, 0, err
	}
	return store.OAuthClient{ID: id, Name: reg.ClientName, RedirectURIs: reg.RedirectURIs, ClientURI: reg.ClientURI}, documentLifetime(resp.Header), nil
}
