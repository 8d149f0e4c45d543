package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/keygate/keygate/internal/secret"
)

// SignatureHeader carries the HMAC-SHA256 of a webhook body, as "sha256=<hex>".
const SignatureHeader = "X-Keygate-Signature"

// WebhookOptions configures a WebhookSink.
type WebhookOptions struct {
	URL    string        // where batches are POSTed
	Secret secret.String // key for the body signature; the receiver holds the same
	// KeySource, when set, is asked for the signing key at every post
	// instead of Secret, so a rotated key applies without a restart.
	KeySource func(ctx context.Context) (secret.String, error)
	Client    *http.Client // default: a client of its own, bounded by each write's deadline
}

// WebhookSink POSTs each batch as a JSON array of events, signed with
// HMAC-SHA256 in the X-Keygate-Signature header so the receiver can tell the
// batch came from keygate unaltered. Any status other than 2xx is an error
// and the batch is sent again later.
type WebhookSink struct {
	opts WebhookOptions
	own  bool
	mu   sync.Mutex
	buf  bytes.Buffer
}

// NewWebhookSink returns a sink posting to opts.URL.
func NewWebhookSink(opts WebhookOptions) (*WebhookSink, error) {
	if opts.URL == "" {
		return nil, errors.New("audit: webhook sink needs a URL; set the audit webhook URL in keygate's config")
	}
	if opts.Secret.IsZero() && opts.KeySource == nil {
		return nil, errors.New("audit: webhook sink needs a signing secret so receivers can authenticate batches; set one in keygate's config")
	}
	s := &WebhookSink{opts: opts}
	if s.opts.Client == nil {
		s.opts.Client, s.own = &http.Client{}, true
	}
	return s, nil
}

// SignBody returns the X-Keygate-Signature value for body under key: receivers
// compute it the same way and compare with hmac.Equal.
func SignBody(key []byte, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Write POSTs the batch and waits for a 2xx answer.
func (s *WebhookSink) Write(ctx context.Context, batch []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if err := json.NewEncoder(&s.buf).Encode(batch); err != nil {
		return fmt.Errorf("audit: encoding %d events for the webhook: %w", len(batch), err)
	}
	return s.post(ctx, fmt.Sprintf("%d events", len(batch)))
}

// WriteCheckpoint POSTs cp as a one-element array, [{"checkpoint":{...}}],
// signed like every batch, so the receiver keeps the checkpoints beside the
// events.
func (s *WebhookSink) WriteCheckpoint(ctx context.Context, cp Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	b := append(s.buf.AvailableBuffer(), '[')
	b = AppendCheckpointLine(b, cp)
	s.buf.Write(append(b, ']', '\n'))
	return s.post(ctx, fmt.Sprintf("checkpoint %d", cp.Seq))
}

// post sends s.buf, signed. The caller holds s.mu.
func (s *WebhookSink) post(ctx context.Context, what string) error {
	body := s.buf.Bytes()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("audit: building the webhook request: %w; check the webhook URL", err)
	}
	key, err := s.key(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, SignBody([]byte(key.Reveal()), body))
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("audit: posting %s to the webhook: %w", what, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("audit: webhook answered %s to %s; check the receiver's logs and its copy of the signing secret", resp.Status, what)
	}
	return nil
}

// key returns the signing key: the one a KeySource gives now, or Secret.
func (s *WebhookSink) key(ctx context.Context) (secret.String, error) {
	if s.opts.KeySource == nil {
		return s.opts.Secret, nil
	}
	k, err := s.opts.KeySource(ctx)
	if err != nil {
		return secret.String{}, fmt.Errorf("audit: reading the webhook signing key: %w", err)
	}
	if k.IsZero() {
		return secret.String{}, errors.New("audit: the webhook signing key is empty; rotate it with keygate audit webhook-key rotate")
	}
	return k, nil
}

// Close releases idle connections of the sink's own client.
func (s *WebhookSink) Close() error {
	if s.own {
		s.opts.Client.CloseIdleConnections()
	}
	return nil
}
