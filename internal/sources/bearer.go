package sources

import (
	"net/http"

	"golang.org/x/oauth2"
)

// bearer adds an OAuth access token to each request.
type bearer struct {
	ts   oauth2.TokenSource
	base http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := b.ts.Token()
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	tok.SetAuthHeader(r)
	base := b.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
