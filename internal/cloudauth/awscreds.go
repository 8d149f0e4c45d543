package cloudauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keygate/keygate/internal/secret"
)

// ExpiryWindow is how long before temporary credentials or access tokens
// expire that keygate fetches new ones: a request never starts with a
// credential about to lapse.
const ExpiryWindow = 5 * time.Minute

// AWSIdentity says where keygate's AWS credentials come from, in the order
// AWS itself applies them:
//   - AccessKeyID and SecretAccessKey: static keys, sealed in keygate's vault;
//   - WebIdentityTokenFile with RoleARN: the workload's web identity (IRSA on
//     EKS, or any OIDC token file) exchanged at STS;
//   - neither: the SDK's default chain (environment, shared config, instance
//     or task role).
//
// RoleARN with static keys or the default chain assumes that role on top.
type AWSIdentity struct {
	Region               string
	AccessKeyID          string
	SecretAccessKey      secret.String
	SessionToken         secret.String
	RoleARN              string
	ExternalID           string
	WebIdentityTokenFile string
	// STSEndpoint overrides the STS endpoint (tests, private endpoints).
	STSEndpoint string
}

// sessionName names keygate's role sessions in CloudTrail.
const sessionName = "keygate"

// Credentials returns a cached credentials provider for the identity:
// temporary credentials are reused until ExpiryWindow before they expire.
// hc carries the STS calls (nil: a client with a 15 s timeout).
func (id AWSIdentity) Credentials(ctx context.Context, hc *http.Client) (aws.CredentialsProvider, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	if id.Region == "" {
		return nil, errors.New("aws: region is required, as in us-east-1")
	}
	var base aws.CredentialsProvider
	switch {
	case id.AccessKeyID != "" || !id.SecretAccessKey.IsZero():
		if id.AccessKeyID == "" || id.SecretAccessKey.IsZero() {
			return nil, errors.New("aws: static credentials need both access_key_id and secret_access_key")
		}
		base = credentials.NewStaticCredentialsProvider(id.AccessKeyID, id.SecretAccessKey.Reveal(), id.SessionToken.Reveal())
	case id.WebIdentityTokenFile != "":
		if id.RoleARN == "" {
			return nil, errors.New("aws: web_identity_token_file needs role_arn, the role the workload's token may assume")
		}
		p := stscreds.NewWebIdentityRoleProvider(id.sts(aws.AnonymousCredentials{}, hc), id.RoleARN, stscreds.IdentityTokenFile(id.WebIdentityTokenFile),
			func(o *stscreds.WebIdentityRoleOptions) { o.RoleSessionName = sessionName })
		return cache(p), nil
	default:
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(id.Region), config.WithHTTPClient(hc))
		if err != nil {
			return nil, fmt.Errorf("aws: load the default credential chain: %w", err)
		}
		base = cfg.Credentials
	}
	if id.RoleARN == "" {
		return cache(base), nil
	}
	p := stscreds.NewAssumeRoleProvider(id.sts(cache(base), hc), id.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = sessionName
		if id.ExternalID != "" {
			o.ExternalID = aws.String(id.ExternalID)
		}
	})
	return cache(p), nil
}

func (id AWSIdentity) sts(creds aws.CredentialsProvider, hc *http.Client) *sts.Client {
	return sts.New(sts.Options{Region: id.Region, Credentials: creds, HTTPClient: hc, RetryMaxAttempts: 3}, func(o *sts.Options) {
		if id.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(id.STSEndpoint)
		}
	})
}

func cache(p aws.CredentialsProvider) aws.CredentialsProvider {
	if c, ok := p.(*aws.CredentialsCache); ok {
		return c
	}
	return aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = ExpiryWindow })
}
