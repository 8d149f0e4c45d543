// Package approvalhook asks an MCP server's approval webhook to decide a
// tool call that waits for approval: keygate POSTs the call, signed, and
// the webhook answers with its decision, or leaves the call to a person in
// keygate's approval queue.
//
// The request is a JSON body,
//
//	{"type":"mcp.tool_call.approval","approval":"apr_...","server":"github","tool":"delete_repo",
//	 "key_id":"key_...","args_hmac":"...","expires_at":"...","sent_at":"..."}
//
// with X-Keygate-Signature: sha256=<hex HMAC-SHA256 of the raw body>, keyed
// with the approvals webhook key (keygate audit webhook-key show --for
// approvals). The arguments are never sent, only their keyed hash, which
// the queue shows too. The answer that decides is 200 with
//
//	{"approval":"apr_...","decision":"approve"|"deny","by":"NAME"}
//
// naming the same approval (an answer about another is refused, so a
// replayed or misrouted answer cannot approve this call). Any other 2xx
// leaves the call in the queue; anything else is a failure, logged, and
// the call stays in the queue too. The question is asked once and may be
// answered as late as the call's wait allows.
package approvalhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/secret"
)

// SignatureHeader carries the body's signature.
const SignatureHeader = detect.SignatureHeader

// maxAnswer bounds the answer read.
const maxAnswer = 64 << 10

// Client asks approval webhooks; it implements mcpgate.WebhookAsker.
type Client struct {
	// HTTP posts the questions: an egress-guarded client, so a webhook
	// URL cannot point keygate at an internal service.
	HTTP *http.Client
	// Key returns the approvals webhook signing key, read at each
	// question so a rotated key applies without a restart.
	Key func(ctx context.Context) (secret.String, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// question is the body sent.
type question struct {
	Type string `json:"type"`
	mcpgate.WebhookQuestion
	SentAt time.Time `json:"sent_at"`
}

// answer is the body read back.
type answer struct {
	Approval string `json:"approval"`
	Decision string `json:"decision"`
	By       string `json:"by"`
}

// Ask implements mcpgate.WebhookAsker. Errors name the webhook's host,
// never its whole URL, which may carry a token.
func (c *Client) Ask(ctx context.Context, target string, q mcpgate.WebhookQuestion) (approve bool, by string, ok bool, err error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false, "", false, errors.New("approvalhook: the webhook URL is not an http(s) URL")
	}
	host := u.Host
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	key, err := c.Key(ctx)
	if err != nil {
		return false, "", false, fmt.Errorf("approvalhook: read the signing key: %w", err)
	}
	body, err := json.Marshal(question{Type: "mcp.tool_call.approval", WebhookQuestion: q, SentAt: now().UTC()})
	if err != nil {
		return false, "", false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, "", false, fmt.Errorf("approvalhook: ask %s: %w", host, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Keygate-Approval-Id", q.Approval)
	req.Header.Set(SignatureHeader, detect.Sign(key, body))
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL
		}
		return false, "", false, fmt.Errorf("approvalhook: ask %s: %w", host, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	switch {
	case err != nil:
		return false, "", false, fmt.Errorf("approvalhook: read the answer of %s: %w", host, err)
	case resp.StatusCode/100 != 2:
		return false, "", false, fmt.Errorf("approvalhook: %s answered HTTP %d", host, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return false, "", false, nil // accepted, undecided: a person decides in the queue
	case len(raw) > maxAnswer:
		return false, "", false, fmt.Errorf("approvalhook: the answer of %s is over %d bytes", host, maxAnswer)
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return false, "", false, fmt.Errorf("approvalhook: the answer of %s is not JSON {\"approval\",\"decision\",\"by\"}: %w", host, err)
	}
	if a.Approval != q.Approval {
		return false, "", false, fmt.Errorf("approvalhook: %s answered about approval %q, not %s; its answer is ignored", host, clean(a.Approval), q.Approval)
	}
	by = clean(a.By)
	if by == "" {
		by = host
	}
	switch a.Decision {
	case "approve":
		return true, by, true, nil
	case "deny":
		return false, by, true, nil
	case "":
		return false, "", false, nil
	}
	return false, "", false, fmt.Errorf("approvalhook: %s answered decision %q; want approve or deny", host, clean(a.Decision))
}

// clean keeps a name from an answer fit for the audit trail and a
// message: printable, one line, at most 64 characters.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > 64 {
		s = string(r[:64])
	}
	return s
}
