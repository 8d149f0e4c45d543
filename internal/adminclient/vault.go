package adminclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// Status describes the running keygate: its version, gateway URL and the
// key-encryption key new secrets are sealed under.
func (c *Client) Status(ctx context.Context) (adminapi.Status, error) {
	var out adminapi.Status
	err := c.do(ctx, http.MethodGet, "/status", nil, &out)
	return out, err
}

// secretPath checks name and builds /secrets/NAME followed by suffix (such as
// ":value"). The name goes into the path unescaped: a valid name holds only
// letters, digits, '.', '_', '-' and '/', none of which need escaping.
func secretPath(name, suffix string) (string, error) {
	if err := adminapi.ValidSecretName(name); err != nil {
		return "", fmt.Errorf("keygate admin client: %w", err)
	}
	return "/secrets/" + name + suffix, nil
}

// PutSecret stores value as a new version of the secret called name,
// creating the secret if it does not exist, and returns its metadata.
func (c *Client) PutSecret(ctx context.Context, name string, value secret.String) (adminapi.Secret, error) {
	var out adminapi.Secret
	p, err := secretPath(name, "")
	if err != nil {
		return out, err
	}
	if value.IsZero() {
		return out, fmt.Errorf("keygate admin client: the value for secret %s is empty", name)
	}
	err = c.do(ctx, http.MethodPut, p, adminapi.PutSecretRequest{Value: value.Reveal()}, &out)
	return out, err
}

// GetSecret returns the metadata of the secret called name, never its value.
func (c *Client) GetSecret(ctx context.Context, name string) (adminapi.Secret, error) {
	var out adminapi.Secret
	p, err := secretPath(name, "")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// ListSecrets returns the metadata of every secret; includeDeleted adds the
// soft-deleted ones that have not been purged yet.
func (c *Client) ListSecrets(ctx context.Context, includeDeleted bool) ([]adminapi.Secret, error) {
	var out adminapi.SecretList
	p := "/secrets"
	if includeDeleted {
		p += "?deleted=true"
	}
	err := c.do(ctx, http.MethodGet, p, nil, &out)
	return out.Secrets, err
}

// SecretVersions lists the stored versions of the secret called name.
func (c *Client) SecretVersions(ctx context.Context, name string) ([]adminapi.SecretVersion, error) {
	var out adminapi.SecretVersionList
	p, err := secretPath(name, ":versions")
	if err != nil {
		return nil, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out.Versions, err
}

// SecretValue reads the value of the secret called name at version, or at
// its current version when version is 0, and returns it with the version
// read. Only admin credentials may read values; an operator's request fails
// with an *APIError whose Code is "forbidden".
func (c *Client) SecretValue(ctx context.Context, name string, version int) (secret.String, int, error) {
	p, err := secretPath(name, ":value")
	if err != nil {
		return secret.String{}, 0, err
	}
	if version < 0 {
		return secret.String{}, 0, fmt.Errorf("keygate admin client: secret version %d is not valid: versions start at 1 (0 means the current one)", version)
	}
	if version > 0 {
		p += "?version=" + strconv.Itoa(version)
	}
	var out adminapi.SecretValue
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return secret.String{}, 0, err
	}
	return secret.New(out.Value), out.Version, nil
}

// RollbackSecret makes version the current value of the secret called name
// again, by storing it as a new version, and returns the secret's metadata.
func (c *Client) RollbackSecret(ctx context.Context, name string, version int) (adminapi.Secret, error) {
	var out adminapi.Secret
	p, err := secretPath(name, ":rollback")
	if err != nil {
		return out, err
	}
	if version < 1 {
		return out, fmt.Errorf("keygate admin client: secret version %d is not valid: versions start at 1", version)
	}
	err = c.do(ctx, http.MethodPost, p, adminapi.RollbackSecretRequest{Version: version}, &out)
	return out, err
}

// DeleteSecret deletes the secret called name. Without purge the secret is
// soft-deleted: it can be restored until the returned PurgeAt. With purge
// every version is destroyed at once and the returned Secret is empty.
func (c *Client) DeleteSecret(ctx context.Context, name string, purge bool) (adminapi.Secret, error) {
	var out adminapi.Secret
	p, err := secretPath(name, "")
	if err != nil {
		return out, err
	}
	if purge {
		return out, c.do(ctx, http.MethodDelete, p+"?purge=true", nil, nil)
	}
	err = c.do(ctx, http.MethodDelete, p, nil, &out)
	return out, err
}

// RestoreSecret brings back a soft-deleted secret called name.
func (c *Client) RestoreSecret(ctx context.Context, name string) (adminapi.Secret, error) {
	var out adminapi.Secret
	p, err := secretPath(name, ":restore")
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p, nil, &out)
	return out, err
}

// RotateProvider replaces the upstream API key of the provider called name
// with key. The previous key is kept for grace (such as "24h" or "7d"; empty
// means the server's default of 24h) and then destroyed.
func (c *Client) RotateProvider(ctx context.Context, name string, key secret.String, grace string) (adminapi.ProviderRotation, error) {
	var out adminapi.ProviderRotation
	p, err := segment("/providers/", "provider name", name)
	if err != nil {
		return out, err
	}
	if key.IsZero() {
		return out, fmt.Errorf("keygate admin client: the new API key for provider %s is empty", name)
	}
	err = c.do(ctx, http.MethodPost, p+"/rotate", adminapi.RotateProviderRequest{APIKey: key.Reveal(), Grace: grace}, &out)
	return out, err
}

// RotateKEK starts rewrapping every data key under the key-encryption key at
// req.To and returns the rotation, which runs on the server. req.To may embed
// key material (base64key://...), so no error this method returns repeats it.
func (c *Client) RotateKEK(ctx context.Context, req adminapi.RotateKEKRequest) (adminapi.KEKRotation, error) {
	var out adminapi.KEKRotation
	if strings.TrimSpace(req.To) == "" {
		return out, errors.New("keygate admin client: the URL of the new key-encryption key is empty")
	}
	err := c.do(ctx, http.MethodPost, "/vault/rotate-kek", req, &out)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		apiErr.Message = redact(apiErr.Message, req.To)
	}
	return out, err
}

// redact replaces every occurrence of s, and of the part of s after its
// scheme, in msg.
func redact(msg, s string) string {
	if s == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, s, "[the new KEK URL]")
	if _, rest, ok := strings.Cut(s, "://"); ok && len(rest) >= 8 {
		msg = strings.ReplaceAll(msg, rest, "[redacted]")
	}
	return msg
}

// VaultStatus describes the vault: the current key-encryption key, how many
// stored versions each KEK wraps, and the latest KEK rotation.
func (c *Client) VaultStatus(ctx context.Context) (adminapi.VaultStatus, error) {
	var out adminapi.VaultStatus
	err := c.do(ctx, http.MethodGet, "/vault/status", nil, &out)
	return out, err
}

// Backup streams an encrypted backup of the vault into w. The backup can be
// restored only with the same key-encryption key. Only admin credentials may
// take one; an operator's request fails with an *APIError whose Code is
// "forbidden". When Backup fails, w may hold a partial backup.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	_, err := c.stream(ctx, http.MethodGet, "/vault/backup", "application/octet-stream", w)
	return err
}
