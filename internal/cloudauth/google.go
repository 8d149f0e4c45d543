package cloudauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/keygate/keygate/internal/secret"
)

// GoogleScope is the OAuth scope keygate asks for: the one Vertex AI and
// Secret Manager accept.
const GoogleScope = "https://www.googleapis.com/auth/cloud-platform"

// GoogleIdentity is keygate's Google Cloud identity: a service-account key
// sealed in keygate's vault, or, when empty, Application Default
// Credentials (GOOGLE_APPLICATION_CREDENTIALS, workload identity
// federation's external_account files, the metadata server).
type GoogleIdentity struct {
	ServiceAccountJSON secret.String
}

// TokenSource returns a source of access tokens for the cloud-platform
// scope, minted with the JWT bearer grant (service accounts) and reused
// until ExpiryWindow before they expire. hc carries the token requests
// (nil: a client with a 15 s timeout).
func (id GoogleIdentity) TokenSource(ctx context.Context, hc *http.Client) (oauth2.TokenSource, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	// The token source keeps this context for every refresh: it must
	// outlive the call, so only the HTTP client is taken from ctx's callers.
	tctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	var ts oauth2.TokenSource
	if id.ServiceAccountJSON.IsZero() {
		creds, err := google.FindDefaultCredentials(tctx, GoogleScope)
		if err != nil {
			return nil, fmt.Errorf("google: no service-account key given and no default credentials: %w", err)
		}
		ts = creds.TokenSource
	} else {
		cfg, err := google.JWTConfigFromJSON([]byte(id.ServiceAccountJSON.Reveal()), GoogleScope)
		if err != nil {
			// The parser's errors quote no key material, but say only what is safe.
			return nil, errors.New("google: the service-account key is not a valid service_account JSON key file")
		}
		ts = cfg.TokenSource(tctx)
	}
	_ = ctx
	return oauth2.ReuseTokenSourceWithExpiry(nil, ts, ExpiryWindow), nil
}
