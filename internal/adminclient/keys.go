package adminclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/adminapi"
)

// SuspendKey suspends the key whose id or name is ref: keygate refuses it
// until ResumeKey, without revoking it. It returns the key as suspended.
func (c *Client) SuspendKey(ctx context.Context, ref string) (adminapi.Key, error) {
	return c.keyAction(ctx, ref, "suspend")
}

// ResumeKey lifts the suspension of the key whose id or name is ref and
// returns the key as resumed.
func (c *Client) ResumeKey(ctx context.Context, ref string) (adminapi.Key, error) {
	return c.keyAction(ctx, ref, "resume")
}

// keyAction posts an empty request to /keys/{ref}/action and decodes the key answered.
func (c *Client) keyAction(ctx context.Context, ref, action string) (adminapi.Key, error) {
	var out adminapi.Key
	p, err := segment("/keys/", "key id or name", ref)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/"+action, nil, &out)
	return out, err
}

// RotateKey issues a successor to the key whose id or name is ref, with the
// same scopes, limits and group. The old key keeps working for grace (a
// duration such as "24h" or "7d"; empty means the admin API's default of 24h),
// never past its own expiry. The answer carries the successor's secret, which
// the admin API shows only this once, and the old key with its new expiry.
func (c *Client) RotateKey(ctx context.Context, ref, grace string) (adminapi.RotatedKey, error) {
	var out adminapi.RotatedKey
	p, err := segment("/keys/", "key id or name", ref)
	if err != nil {
		return out, err
	}
	grace = strings.TrimSpace(grace)
	if grace != "" {
		if _, err := adminapi.ParseDuration(grace); err != nil {
			return out, fmt.Errorf("keygate admin client: rotate key %s: grace: %w", ref, err)
		}
	}
	err = c.do(ctx, http.MethodPost, p+"/rotate", adminapi.RotateKeyRequest{Grace: grace}, &out)
	return out, err
}

// ListKeysUnused returns the live keys that have gone unused for at least d
// (a duration such as "30d" or "12h"): never used since they were created
// that long ago, or last used before then. Revoked and expired keys are left
// out.
func (c *Client) ListKeysUnused(ctx context.Context, d string) ([]adminapi.Key, error) {
	d = strings.TrimSpace(d)
	if _, err := adminapi.ParseDuration(d); err != nil {
		return nil, fmt.Errorf("keygate admin client: list unused keys: %w", err)
	}
	var out adminapi.KeyList
	err := c.do(ctx, http.MethodGet, "/keys?"+url.Values{"unused": {d}}.Encode(), nil, &out)
	return out.Keys, err
}

// EnrollTOTP gives a key a new one-time-password secret for step-up and
// returns it (shown once).
func (c *Client) EnrollTOTP(ctx context.Context, ref string) (adminapi.TOTPEnrollment, error) {
	p, err := segment("/keys/", "key", ref)
	if err != nil {
		return adminapi.TOTPEnrollment{}, err
	}
	var out adminapi.TOTPEnrollment
	err = c.do(ctx, http.MethodPost, p+"/totp", nil, &out)
	return out, err
}

// AWSCredentials returns the AWS access key pair bound to the key whose id
// or name is ref, for Bedrock clients that sign with SigV4. The pair works
// only while the key does; keygate derives it rather than storing it, so
// asking again returns the same pair.
func (c *Client) AWSCredentials(ctx context.Context, ref string) (adminapi.AWSCredentials, error) {
	var out adminapi.AWSCredentials
	p, err := segment("/keys/", "key id or name", ref)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, p+"/aws-credentials", nil, &out)
	return out, err
}
