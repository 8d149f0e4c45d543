package adminclient

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/keygate/keygate/internal/adminapi"
)

// UpdateKey changes the live key whose id or name is ref and returns it as
// changed. Fields of req left nil are not touched; Limits, AllowPaths and
// AllowIPs, when given, replace the key's own entirely, and an empty list or
// Hours of "" lifts that restriction.
func (c *Client) UpdateKey(ctx context.Context, ref string, req adminapi.UpdateKeyRequest) (adminapi.Key, error) {
	var out adminapi.Key
	p, err := segment("/keys/", "key id or name", ref)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPatch, p, req, &out)
	return out, err
}

// KeyUsage returns what the key whose id or name is ref consumed on each of
// the last days days, newest day first. days 0 asks for the admin API's
// default (30 days).
func (c *Client) KeyUsage(ctx context.Context, ref string, days int) (adminapi.KeyUsage, error) {
	var out adminapi.KeyUsage
	p, err := segment("/keys/", "key id or name", ref)
	if err != nil {
		return out, err
	}
	if days < 0 {
		return out, fmt.Errorf("keygate admin client: usage of key %s: days must be positive, got %d", ref, days)
	}
	p += "/usage"
	if days > 0 {
		p += "?days=" + strconv.Itoa(days)
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// CreateGroup creates a group of keys that share req.Limits.
func (c *Client) CreateGroup(ctx context.Context, req adminapi.GroupRequest) (adminapi.Group, error) {
	var out adminapi.Group
	if _, err := segment("/groups/", "group name", req.Name); err != nil {
		return out, err
	}
	err := c.do(ctx, http.MethodPost, "/groups", req, &out)
	return out, err
}

// ListGroups returns every group.
func (c *Client) ListGroups(ctx context.Context) ([]adminapi.Group, error) {
	var out adminapi.GroupList
	err := c.do(ctx, http.MethodGet, "/groups", nil, &out)
	return out.Groups, err
}

// GetGroup returns the group called name.
func (c *Client) GetGroup(ctx context.Context, name string) (adminapi.Group, error) {
	var out adminapi.Group
	p, err := segment("/groups/", "group name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// UpdateGroup replaces the limits of the group called name and returns the
// group as changed.
func (c *Client) UpdateGroup(ctx context.Context, name string, limits adminapi.Limits) (adminapi.Group, error) {
	var out adminapi.Group
	p, err := segment("/groups/", "group name", name)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPatch, p, adminapi.GroupRequest{Limits: limits}, &out)
	return out, err
}

// DeleteGroup removes the group called name. The admin API refuses while
// keys are still in it.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	p, err := segment("/groups/", "group name", name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}
