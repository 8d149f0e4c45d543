package detect

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
	"net/url"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// Notifier delivers one alert somewhere people or systems will see it.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// SignatureHeader carries the HMAC-SHA256 of a webhook body, as "sha256=<hex>".
const SignatureHeader = "X-Keygate-Signature"

// Retry is how a notifier retries a failed HTTP delivery: Attempts tries in all, waiting
// Backoff, then twice as long each time up to MaxBackoff, and giving up when the context ends.
type Retry struct {
	Attempts   int           // default 5
	Backoff    time.Duration // default 200 ms
	MaxBackoff time.Duration // default 10 s
	// Sleep waits d or until ctx ends; nil means a real timer. Tests pass a fake.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Backoff <= 0 {
		r.Backoff = 200 * time.Millisecond
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 10 * time.Second
	}
	if r.Sleep == nil {
		r.Sleep = sleepCtx
	}
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WebhookNotifier posts each alert as JSON to a URL, signed with an HMAC-SHA256 of the body
// under a shared secret in the X-Keygate-Signature header. A 2xx answer means delivered.
type WebhookNotifier struct {
	// URL is the receiver. It may itself carry a token, so errors name only its host.
	URL secret.String
	// Secret signs each body; receivers check it with VerifySignature.
	Secret secret.String
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Retry governs retries.
	Retry Retry
}

// Notify sends a, retrying 5xx answers, 408, 429 and network errors.
func (w *WebhookNotifier) Notify(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("detect: webhook: encode alert %s: %w", a.ID, err)
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Keygate-Alert-Id", a.ID)
	hdr.Set(SignatureHeader, Sign(w.Secret, body))
	return postWithRetry(ctx, w.Client, w.URL, hdr, body, w.Retry, "webhook")
}

// Sign returns the X-Keygate-Signature value for body: "sha256=" and the hex HMAC-SHA256.
func Sign(key secret.String, body []byte) string {
	m := hmac.New(sha256.New, []byte(key.Reveal()))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports, in constant time, whether header is the signature of body under key.
func VerifySignature(key secret.String, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(key, body)), []byte(header))
}

// postWithRetry posts body until a 2xx answer, a permanent failure, the attempt limit or the
// context's end. Errors name the receiver's host only.
func postWithRetry(ctx context.Context, c *http.Client, target secret.String, hdr http.Header, body []byte, r Retry, what string) error {
	if c == nil {
		c = http.DefaultClient
	}
	r = r.withDefaults()
	u, err := url.Parse(target.Reveal())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("detect: %s: the receiver URL is not an http(s) URL", what)
	}
	host := u.Host
	wait := r.Backoff
	var last error
	for attempt := 1; attempt <= r.Attempts; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("detect: %s to %s: build request: %w", what, host, err)
		}
		req.Header = hdr.Clone()
		resp, err := c.Do(req)
		retry := true
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the whole URL, which may carry a token
			}
			last = fmt.Errorf("detect: %s to %s: attempt %d of %d: %w", what, host, attempt, r.Attempts, err)
		} else {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = fmt.Errorf("detect: %s to %s: attempt %d of %d: status %d", what, host, attempt, r.Attempts, resp.StatusCode)
			retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests
		}
		if !retry || attempt == r.Attempts {
			break
		}
		if err := r.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w; giving up: %w", last, err)
		}
		wait = min(2*wait, r.MaxBackoff)
	}
	return last
}
