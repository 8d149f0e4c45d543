package config

import (
	"net/url"
	"strings"
	"time"
)

// Sources configures how keygate follows provider keys and secrets kept in
// a cloud secret manager or Vault (references: awssm://, azkv://, gcpsm://,
// vault://), and how it reaches the clouds whose identity serves
// cloud-identity upstreams (Bedrock, Vertex AI, Azure OpenAI with Entra
// ID). keygate's own identity comes from the environment, as each cloud's
// SDK reads it (AWS_*, AZURE_*, GOOGLE_APPLICATION_CREDENTIALS, VAULT_*).
type Sources struct {
	// Refresh is how often a reference is re-read from its source unless
	// the reference sets its own (default 5m, at least 10s).
	Refresh time.Duration `yaml:"refresh"`
	// Grace is how long a reference's cached value is served once its
	// source cannot be read, unless the reference sets its own (default 1h).
	Grace time.Duration `yaml:"grace"`
	// Poll is how often a node looks for references due to be read (default 10s).
	Poll time.Duration `yaml:"poll"`
	// CAFile is a PEM file of certificate authorities trusted, besides the
	// system's, for the sources, STS and the clouds' token endpoints.
	CAFile string `yaml:"ca_file"`
	// AWSEndpoint overrides the Secrets Manager endpoint (a VPC endpoint).
	AWSEndpoint string `yaml:"aws_endpoint"`
	// AzureVaultURL is the URL of a key vault, with {vault} standing for
	// its name (default https://{vault}.vault.azure.net); without {vault}
	// every azkv:// reference is read from that one URL.
	AzureVaultURL string `yaml:"azure_vault_url"`
	// GCPEndpoint overrides the Secret Manager endpoint (a private endpoint).
	GCPEndpoint string `yaml:"gcp_endpoint"`
}

// defaultSources are the reference schedule's defaults.
var defaultSources = Sources{Refresh: 5 * time.Minute, Grace: time.Hour, Poll: 10 * time.Second}

// validateSources checks sources:, naming the field at fault.
func (c Config) validateSources(bad func(field, format string, args ...any)) {
	s := c.Sources
	if s.Refresh < 10*time.Second {
		bad("sources.refresh", "%v is too often: read a source at most every 10s, to keep within its API quotas", s.Refresh)
	}
	if s.Grace < 0 {
		bad("sources.grace", "must not be negative (0 refuses a provider as soon as its source cannot be read)")
	}
	if s.Poll <= 0 {
		bad("sources.poll", "must be a positive duration such as 10s")
	}
	for _, e := range []struct{ field, v string }{{"sources.aws_endpoint", s.AWSEndpoint}, {"sources.gcp_endpoint", s.GCPEndpoint},
		{"sources.azure_vault_url", strings.ReplaceAll(s.AzureVaultURL, "{vault}", "v")}} {
		if e.v == "" {
			continue
		}
		if u, err := url.Parse(e.v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			bad(e.field, "must be an https:// URL without credentials, as in https://secretsmanager.eu-west-1.amazonaws.com")
		}
	}
}
