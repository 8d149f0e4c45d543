package cloudauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// AzureOpenAIScope is the Entra ID scope Azure OpenAI accepts.
const AzureOpenAIScope = "https://cognitiveservices.azure.com/.default"

// entra replaces the api-key Azure OpenAI requests would carry with an
// Entra ID access token.
type entra struct {
	cred azcore.TokenCredential
	now  func() time.Time

	mu  sync.Mutex
	tok azcore.AccessToken
}

func newEntra(c Credential, o Options) (*entra, error) {
	if c.TenantID == "" || c.ClientID == "" {
		return nil, errors.New("entra: tenant_id and client_id are required")
	}
	opts := azcore.ClientOptions{}
	if o.HTTP != nil {
		opts.Transport = o.HTTP
	}
	custom := c.AuthorityHost != ""
	if custom {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimRight(c.AuthorityHost, "/") + "/"}
	}
	var (
		cred azcore.TokenCredential
		err  error
	)
	switch {
	case c.ClientSecret != "":
		cred, err = azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: custom})
	case c.FederatedTokenFile != "":
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, TenantID: c.TenantID, ClientID: c.ClientID, TokenFilePath: c.FederatedTokenFile, DisableInstanceDiscovery: custom})
	default:
		return nil, errors.New("entra: give client_secret or federated_token_file (workload identity)")
	}
	if err != nil {
		return nil, fmt.Errorf("entra: %w", err)
	}
	return &entra{cred: cred, now: time.Now}, nil
}

// token returns a cached token, fetching a new one ExpiryWindow before
// the cached one expires.
func (e *entra) token(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tok.Token != "" && e.now().Add(ExpiryWindow).Before(e.tok.ExpiresOn) {
		return e.tok.Token, nil
	}
	tok, err := e.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{AzureOpenAIScope}})
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return "", fmt.Errorf("entra: get an access token: %s", msg)
	}
	e.tok = tok
	return tok.Token, nil
}

func (e *entra) RoundTrip(req *http.Request, next http.RoundTripper) (*http.Response, error) {
	tok, err := e.token(req.Context())
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	stripCredential(out.Header)
	out.Header.Set("Authorization", "Bearer "+tok)
	return next.RoundTrip(out)
}
