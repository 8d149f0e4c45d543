package sources

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/secret"
)

// AWSConfig reaches AWS Secrets Manager.
type AWSConfig struct {
	Identity cloudauth.AWSIdentity // Region is required
	Endpoint string                // overrides the Secrets Manager endpoint
	HTTP     *http.Client          // nil: a client with the read timeout
}

type awsSource struct{ c *secretsmanager.Client }

func (s *Sources) awsSource(ctx context.Context) (*awsSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aws != nil {
		return s.aws, nil
	}
	hc := httpClient(s.cfg.AWS.HTTP, s.cfg.Timeout)
	creds, err := s.cfg.AWS.Identity.Credentials(ctx, hc)
	if err != nil {
		return nil, err
	}
	c := secretsmanager.New(secretsmanager.Options{
		Region: s.cfg.AWS.Identity.Region, Credentials: creds, HTTPClient: hc, RetryMaxAttempts: 3,
	}, func(o *secretsmanager.Options) {
		if s.cfg.AWS.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.cfg.AWS.Endpoint)
		}
	})
	s.aws = &awsSource{c: c}
	return s.aws, nil
}

func (a *awsSource) read(ctx context.Context, name string) (Value, error) {
	out, err := a.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return Value{}, ErrNotFound
		}
		return Value{}, err
	}
	if out.SecretString == nil {
		return Value{}, errors.New("the secret holds binary data; keygate reads SecretString only")
	}
	return Value{Secret: secret.New(*out.SecretString), Version: aws.ToString(out.VersionId)}, nil
}

func (a *awsSource) list(ctx context.Context, prefix string) ([]string, error) {
	in := &secretsmanager.ListSecretsInput{}
	if prefix != "" {
		in.Filters = []smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{prefix}}}
	}
	var names []string
	p := secretsmanager.NewListSecretsPaginator(a.c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range page.SecretList {
			if n := aws.ToString(e.Name); strings.HasPrefix(n, prefix) {
				names = append(names, n)
			}
		}
	}
	return names, nil
}
