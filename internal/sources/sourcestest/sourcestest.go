// Package sourcestest points sources at the local fakes of
// internal/fakecloud, for tests. No real cloud is called.
package sourcestest

import (
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/sources"
)

// Config returns a sources.Config whose every source is one of c's fakes,
// reached through the official SDKs with endpoint overrides and
// authenticated with the fakes' run-time credentials.
func Config(c *fakecloud.Clouds) sources.Config {
	cred, err := azidentity.NewClientSecretCredential(c.Entra.TenantID, c.Entra.ClientID, c.Entra.ClientSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: c.EntraURL + "/"}, Transport: c.Client},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		panic(err)
	}
	return sources.Config{
		AWS: sources.AWSConfig{
			Identity: cloudauth.AWSIdentity{Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: secret.New(c.AWSKey.SecretAccessKey), STSEndpoint: c.STSURL},
			Endpoint: c.SMURL, HTTP: c.Client,
		},
		Azure: sources.AzureConfig{
			Credential: cred, Transport: c.Client, AnyResourceDomain: true,
			VaultURL: func(string) string { return c.KVURL },
		},
		GCP:   sources.GCPConfig{Identity: cloudauth.GoogleIdentity{ServiceAccountJSON: secret.New(string(c.SAJSON))}, Endpoint: c.GCPSMURL, HTTP: c.Client},
		Vault: sources.VaultConfig{Address: c.VaultURL, Token: secret.New(c.Vault.Token), HTTP: c.Client},
	}
}

// Redacted reports whether s contains none of vals.
func Redacted(s string, vals ...string) bool {
	for _, v := range vals {
		if strings.Contains(s, v) {
			return false
		}
	}
	return true
}
