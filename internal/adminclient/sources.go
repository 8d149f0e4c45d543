package adminclient

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
)

// PutSecretRef makes the secret called name a reference to its source
// (awssm://, azkv://, gcpsm://, vault://): keygate reads it now and follows
// it every refresh ("" for the server's default), serving the last value
// read for grace once the source fails. The value never passes through
// this client.
func (c *Client) PutSecretRef(ctx context.Context, name, ref, refresh, grace string) (adminapi.Secret, error) {
	var out adminapi.Secret
	p, err := secretPath(name, "")
	if err != nil {
		return out, err
	}
	if strings.TrimSpace(ref) == "" {
		return out, fmt.Errorf("keygate admin client: the reference for secret %s is empty", name)
	}
	err = c.do(ctx, http.MethodPut, p, adminapi.PutSecretRequest{Ref: ref, RefRefresh: refresh, RefGrace: grace}, &out)
	return out, err
}

// ListSourceRefs lists the provider keys and secrets keygate follows in
// their sources, with how reading each goes.
func (c *Client) ListSourceRefs(ctx context.Context) ([]adminapi.SourceRef, error) {
	var out adminapi.SourceRefList
	err := c.do(ctx, http.MethodGet, "/sources", nil, &out)
	return out.Refs, err
}

// RefreshSource reads the source of target ("provider:NAME" or
// "secret:NAME") now, and returns the reference after the read.
func (c *Client) RefreshSource(ctx context.Context, target string) (adminapi.SourceRef, error) {
	var out adminapi.SourceRef
	kind, name, _ := strings.Cut(target, ":")
	var p string
	var err error
	switch kind {
	case "provider":
		p, err = segment("/providers/", "provider name", name)
		p += "/refresh"
	case "secret":
		p, err = secretPath(name, ":refresh")
	default:
		return out, fmt.Errorf("keygate admin client: %q names no reference; write provider:NAME or secret:NAME", target)
	}
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p, nil, &out)
	return out, err
}
