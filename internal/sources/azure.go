package sources

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keygate/keygate/internal/secret"
)

// AzureConfig reaches Azure Key Vault.
type AzureConfig struct {
	// Credential is keygate's Entra ID identity; nil uses
	// azidentity.NewDefaultAzureCredential (environment, workload
	// identity, managed identity).
	Credential azcore.TokenCredential
	// VaultURL maps a key vault's name to its URL; nil gives
	// https://NAME.vault.azure.net.
	VaultURL func(name string) string
	// Transport carries the requests; nil uses the SDK's default.
	Transport policy.Transporter
	// AnyResourceDomain accepts a vault's authentication challenge for a
	// resource outside vault.azure.net (sovereign clouds, tests).
	AnyResourceDomain bool
}

type azureSource struct{ c *azsecrets.Client }

func (s *Sources) azureSource(vault string) (*azureSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src := s.azure[vault]; src != nil {
		return src, nil
	}
	cfg := s.cfg.Azure
	cred := cfg.Credential
	if cred == nil {
		var err error
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return nil, fmt.Errorf("azure: no Entra ID identity: %w", err)
		}
	}
	u := "https://" + vault + ".vault.azure.net"
	if cfg.VaultURL != nil {
		u = cfg.VaultURL(vault)
	}
	opts := &azsecrets.ClientOptions{DisableChallengeResourceVerification: cfg.AnyResourceDomain}
	opts.Transport = cfg.Transport
	opts.Retry.MaxRetries = 2
	c, err := azsecrets.NewClient(u, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("azure: key vault %s: %w", redactURL(u), err)
	}
	src := &azureSource{c: c}
	s.azure[vault] = src
	return src, nil
}

func (a *azureSource) read(ctx context.Context, name string) (Value, error) {
	resp, err := a.c.GetSecret(ctx, name, "", nil)
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return Value{}, ErrNotFound
		}
		return Value{}, azureErr(err)
	}
	if resp.Value == nil {
		return Value{}, errors.New("the secret has no value")
	}
	v := Value{Secret: secret.New(*resp.Value)}
	if resp.ID != nil {
		v.Version = resp.ID.Version()
	}
	return v, nil
}

func (a *azureSource) list(ctx context.Context) ([]string, error) {
	var names []string
	p := a.c.NewListSecretPropertiesPager(nil)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, azureErr(err)
		}
		for _, sp := range page.Value {
			if sp.ID != nil && (sp.Attributes == nil || sp.Attributes.Enabled == nil || *sp.Attributes.Enabled) {
				names = append(names, sp.ID.Name())
			}
		}
	}
	return names, nil
}

// azureErr keeps the first line of an Azure SDK error: the rest is the
// raw response, which is long and of no use to an operator.
func azureErr(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("key vault answered %d %s", re.StatusCode, re.ErrorCode)
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return errors.New(msg)
}
