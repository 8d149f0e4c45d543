package sources

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/secret"
)

// GCPConfig reaches Google Secret Manager over its REST API.
type GCPConfig struct {
	Identity cloudauth.GoogleIdentity
	Endpoint string       // overrides https://secretmanager.googleapis.com
	HTTP     *http.Client // carries token and API requests; nil: the read timeout
}

type gcpSource struct{ c *secretmanager.Client }

func (s *Sources) gcpSource(ctx context.Context) (*gcpSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gcp != nil {
		return s.gcp, nil
	}
	hc := httpClient(s.cfg.GCP.HTTP, s.cfg.Timeout)
	ts, err := s.cfg.GCP.Identity.TokenSource(ctx, hc)
	if err != nil {
		return nil, err
	}
	opts := []option.ClientOption{option.WithTokenSource(ts)}
	if s.cfg.GCP.HTTP != nil {
		// The token source authenticates; the given client only carries.
		opts = []option.ClientOption{option.WithHTTPClient(&http.Client{Transport: &bearer{ts: ts, base: hc.Transport}, Timeout: hc.Timeout})}
	}
	if s.cfg.GCP.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(s.cfg.GCP.Endpoint))
	}
	c, err := secretmanager.NewRESTClient(context.WithoutCancel(ctx), opts...)
	if err != nil {
		return nil, fmt.Errorf("google: secret manager client: %w", err)
	}
	s.gcp = &gcpSource{c: c}
	return s.gcp, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (g *gcpSource) read(ctx context.Context, project, name string) (Value, error) {
	resp, err := g.c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{
		Name: "projects/" + project + "/secrets/" + name + "/versions/latest",
	})
	if err != nil {
		return Value{}, gcpErr(err)
	}
	data := resp.GetPayload().GetData()
	defer clear(data)
	// Secret Manager sends a CRC32C of the payload: a value whose checksum
	// does not match did not arrive as the source holds it, and is refused.
	if resp.GetPayload().DataCrc32C == nil {
		return Value{}, errors.New("the answer carries no data checksum; keygate does not trust an unverified payload")
	}
	if int64(crc32.Checksum(data, castagnoli)) != resp.GetPayload().GetDataCrc32C() {
		return Value{}, errors.New("the payload does not match its CRC32C checksum; refusing it")
	}
	version := resp.GetName()
	if i := strings.LastIndex(version, "/"); i >= 0 {
		version = version[i+1:]
	}
	return Value{Secret: secret.New(string(data)), Version: version}, nil
}

func (g *gcpSource) list(ctx context.Context, project string) ([]string, error) {
	it := g.c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: "projects/" + project})
	var names []string
	for {
		sec, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names, nil
		}
		if err != nil {
			return nil, gcpErr(err)
		}
		n := sec.GetName()
		names = append(names, n[strings.LastIndex(n, "/")+1:])
	}
}

func gcpErr(err error) error {
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		if ae.GRPCStatus().Code() == codes.NotFound || ae.HTTPCode() == http.StatusNotFound {
			return ErrNotFound
		}
		return fmt.Errorf("secret manager answered %d %s", ae.HTTPCode(), ae.Reason())
	}
	return err
}
