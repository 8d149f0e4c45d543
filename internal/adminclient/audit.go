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

// AuditPublicKey returns the Ed25519 key audit checkpoints are signed with.
func (c *Client) AuditPublicKey(ctx context.Context) (adminapi.AuditPublicKey, error) {
	var out adminapi.AuditPublicKey
	err := c.do(ctx, http.MethodGet, "/audit/public-key", nil, &out)
	return out, err
}

// AuditNodes lists every node with stored audit events or checkpoints.
func (c *Client) AuditNodes(ctx context.Context) ([]string, error) {
	var out adminapi.AuditNodes
	err := c.do(ctx, http.MethodGet, "/audit/nodes", nil, &out)
	return out.Nodes, err
}

// AuditRows returns one page of a node's stored events (checkpoints false)
// or checkpoints after seq after, oldest first, as stored; limit 0 means
// the server's.
func (c *Client) AuditRows(ctx context.Context, checkpoints bool, node string, after uint64, limit int) ([]adminapi.AuditRow, error) {
	q := url.Values{"node": {node}, "after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/audit/trail?"
	if checkpoints {
		path = "/audit/checkpoints?"
	}
	var out adminapi.AuditRows
	err := c.do(ctx, http.MethodGet, path+q.Encode(), nil, &out)
	return out.Rows, err
}

// WebhookKey returns the key the audit or alert webhook (which is
// adminapi.WebhookAudit or WebhookAlerts) signs its bodies with.
func (c *Client) WebhookKey(ctx context.Context, which string) (adminapi.WebhookKey, error) {
	var out adminapi.WebhookKey
	err := c.do(ctx, http.MethodGet, "/audit/webhook-key?"+url.Values{"for": {which}}.Encode(), nil, &out)
	return out, err
}

// RotateWebhookKey replaces a webhook's signing key and returns the new one.
func (c *Client) RotateWebhookKey(ctx context.Context, which string) (adminapi.WebhookKey, error) {
	var out adminapi.WebhookKey
	err := c.do(ctx, http.MethodPost, "/audit/webhook-key/rotate", adminapi.WebhookKeyRequest{For: which}, &out)
	return out, err
}
