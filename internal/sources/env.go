package sources

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/secret"
)

// ConfigFromEnv builds a Config from the variables each cloud's own tools
// read, so keygate uses the identity its environment gives it:
//   - AWS: AWS_REGION (or AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID,
//     AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ROLE_ARN,
//     AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ENDPOINT_URL_SECRETS_MANAGER,
//     AWS_ENDPOINT_URL_STS; else the SDK's default chain;
//   - Azure: AZURE_TENANT_ID, AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or
//     AZURE_FEDERATED_TOKEN_FILE (workload identity), AZURE_AUTHORITY_HOST;
//     else DefaultAzureCredential (managed identity);
//   - Google: GOOGLE_APPLICATION_CREDENTIALS naming a service-account key
//     file; else Application Default Credentials;
//   - Vault: VAULT_ADDR, VAULT_TOKEN or VAULT_ROLE_ID with VAULT_SECRET_ID,
//     VAULT_NAMESPACE.
//
// hc carries every call (nil: the SDK defaults); readFile reads key files.
func ConfigFromEnv(getenv func(string) string, hc *http.Client, readFile func(string) ([]byte, error)) (Config, error) {
	var cfg Config
	region := first(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	cfg.AWS = AWSConfig{HTTP: hc, Endpoint: first(getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER"), getenv("AWS_ENDPOINT_URL")),
		Identity: cloudauth.AWSIdentity{
			Region: region, AccessKeyID: getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: secret.New(getenv("AWS_SECRET_ACCESS_KEY")),
			SessionToken: secret.New(getenv("AWS_SESSION_TOKEN")), RoleARN: getenv("AWS_ROLE_ARN"),
			WebIdentityTokenFile: getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), STSEndpoint: first(getenv("AWS_ENDPOINT_URL_STS"), getenv("AWS_ENDPOINT_URL")),
		}}
	if cfg.AWS.Identity.Region == "" {
		cfg.AWS.Identity.Region = "us-east-1"
	}

	tenant, client := getenv("AZURE_TENANT_ID"), getenv("AZURE_CLIENT_ID")
	if tenant != "" && client != "" {
		opts := azcore.ClientOptions{}
		if hc != nil {
			opts.Transport = hc
		}
		if host := getenv("AZURE_AUTHORITY_HOST"); host != "" {
			opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimRight(host, "/") + "/"}
		}
		var err error
		switch {
		case getenv("AZURE_CLIENT_SECRET") != "":
			cfg.Azure.Credential, err = azidentity.NewClientSecretCredential(tenant, client, getenv("AZURE_CLIENT_SECRET"),
				&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: opts.Cloud.ActiveDirectoryAuthorityHost != ""})
		case getenv("AZURE_FEDERATED_TOKEN_FILE") != "":
			cfg.Azure.Credential, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
				ClientOptions: opts, TenantID: tenant, ClientID: client, TokenFilePath: getenv("AZURE_FEDERATED_TOKEN_FILE"),
				DisableInstanceDiscovery: opts.Cloud.ActiveDirectoryAuthorityHost != ""})
		}
		if err != nil {
			return Config{}, fmt.Errorf("azure identity: %w", err)
		}
	}
	if hc != nil {
		cfg.Azure.Transport = hc
	}

	if path := getenv("GOOGLE_APPLICATION_CREDENTIALS"); path != "" {
		b, err := readFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("google: GOOGLE_APPLICATION_CREDENTIALS: %w", err)
		}
		if strings.Contains(string(b), `"service_account"`) {
			cfg.GCP.Identity.ServiceAccountJSON = secret.New(string(b))
		}
		clear(b)
	}
	cfg.GCP.HTTP = hc
	cfg.GCP.Endpoint = getenv("GOOGLE_SECRET_MANAGER_ENDPOINT")

	cfg.Vault = VaultConfig{Address: getenv("VAULT_ADDR"), Token: secret.New(getenv("VAULT_TOKEN")), RoleID: getenv("VAULT_ROLE_ID"),
		SecretID: secret.New(getenv("VAULT_SECRET_ID")), Namespace: getenv("VAULT_NAMESPACE"), HTTP: hc}
	return cfg, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
