package mint

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/keygate/keygate/internal/secret"
)

// OpenRouter mints API keys with an OpenRouter provisioning key, through
// its key management API (POST and DELETE /api/v1/keys). A minted key is
// named by its hash, which is what keygate keeps.
type OpenRouter struct {
	BaseURL         string // default https://openrouter.ai
	ProvisioningKey secret.String
	HTTP            *http.Client
}

const openRouterAPI = "openrouter key management API"

func (o *OpenRouter) do(ctx context.Context, method, path string, in, out any) error {
	return callJSON(ctx, o.HTTP, openRouterAPI, orDefault(o.BaseURL, "https://openrouter.ai"), bearerAuth(o.ProvisioningKey), method, path, in, out)
}

// Create makes an API key called name and returns it with its hash.
func (o *OpenRouter) Create(ctx context.Context, name string) (Minted, error) {
	var out struct {
		Data struct {
			Hash string `json:"hash"`
		} `json:"data"`
		Key string `json:"key"`
	}
	if err := o.do(ctx, http.MethodPost, "/api/v1/keys", map[string]string{"name": name}, &out); err != nil {
		return Minted{}, err
	}
	if out.Data.Hash == "" || out.Key == "" {
		return Minted{}, errors.New(openRouterAPI + ": the new key came without its value or hash")
	}
	return Minted{ID: out.Data.Hash, Key: secret.New(out.Key)}, nil
}

// Delete removes the key whose hash is id.
func (o *OpenRouter) Delete(ctx context.Context, id string) error {
	return o.do(ctx, http.MethodDelete, "/api/v1/keys/"+url.PathEscape(id), nil, nil)
}
