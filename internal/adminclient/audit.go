package adminclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/keygate/keygate/internal/adminapi"
)

// AuditEvents searches the audit trail: key (id or name), type and since
// (a duration such as 1h) filter when set; limit 0 means the server's.
func (c *Client) AuditEvents(ctx context.Context, key, typ, since string, limit int) (adminapi.AuditEvents, error) {
	q := url.Values{}
	if key != "" {
		q.Set("key", key)
	}
	if typ != "" {
		q.Set("type", typ)
	}
	if since != "" {
		q.Set("since", since)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/audit/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out adminapi.AuditEvents
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// AuditVerify checks every node's audit chain against its signed checkpoints.
func (c *Client) AuditVerify(ctx context.Context) (adminapi.AuditVerification, error) {
	var out adminapi.AuditVerification
	err := c.do(ctx, http.MethodGet, "/audit/verify", nil, &out)
	return out, err
}

// AuditRef returns the reference a secret's name is recorded under in
// keygate's logs and audit trail ("ref:..."), to search for it.
func (c *Client) AuditRef(ctx context.Context, value string) (string, error) {
	var out struct {
		Ref string `json:"ref"`
	}
	err := c.do(ctx, http.MethodPost, "/audit/ref", map[string]string{"value": value}, &out)
	return out.Ref, err
}
