package admin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// minRotateEvery bounds automatic rotation from below: more often than this
// is a misconfiguration, not a policy.
const minRotateEvery = time.Hour

// parseRotation validates a rotation policy. every "" (or a nil policy)
// turns rotation off.
func parseRotation(p *adminapi.Rotation) (every, grace time.Duration, deliverTo string, err error) {
	if p == nil || p.Every == "" {
		return 0, 0, "", nil
	}
	if every, err = adminapi.ParseDuration(p.Every); err != nil {
		return 0, 0, "", fmt.Errorf("rotation.every: %w", err)
	}
	if every < minRotateEvery {
		return 0, 0, "", fmt.Errorf("rotation.every must be at least %s", minRotateEvery)
	}
	grace = 24 * time.Hour
	if p.Grace != "" {
		if grace, err = adminapi.ParseDuration(p.Grace); err != nil {
			return 0, 0, "", fmt.Errorf("rotation.grace: %w", err)
		}
	}
	if grace >= every {
		return 0, 0, "", errors.New("rotation.grace must be shorter than rotation.every, or two rotated-out keys would work at once")
	}
	deliverTo = strings.TrimSpace(p.DeliverTo)
	switch kind, target, _ := strings.Cut(deliverTo, ":"); kind {
	case "secret":
		if err := adminapi.ValidSecretName(target); err != nil {
			return 0, 0, "", fmt.Errorf("rotation.deliver_to: %w", err)
		}
	case "webhook":
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return 0, 0, "", fmt.Errorf("rotation.deliver_to: webhook:URL needs an http or https URL")
		}
	default:
		return 0, 0, "", errors.New(`rotation.deliver_to must be "secret:NAME" (a vault secret the app reads with keygate run) or "webhook:https://..."; without a destination nobody would receive the new key`)
	}
	return every, grace, deliverTo, nil
}

// rotationOwner names what owns a secret a key's rotations deliver into:
// the key's base name, which its successors share.
func rotationOwner(keyName string) string {
	base, _, _ := strings.Cut(keyName, ".rot-")
	return "rotation:" + base
}

// checkDelivery refuses, when a rotation policy is set, a destination the
// rotation could not deliver to: a secret that exists and was not created
// by this key's rotation, or a webhook on an address keygate may not
// reach.
func (a *API) checkDelivery(ctx context.Context, keyName, deliverTo string) error {
	kind, target, _ := strings.Cut(deliverTo, ":")
	switch kind {
	case "secret":
		m, err := a.opts.Store.GetSecretMeta(ctx, target)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("rotation.deliver_to: could not check secret %q: %w", target, err)
		}
		if m.Owner != rotationOwner(keyName) {
			return fmt.Errorf("rotation.deliver_to: %w", notOwner{name: target, owner: m.Owner})
		}
	case "webhook":
		u, err := url.Parse(target)
		if err != nil {
			return fmt.Errorf("rotation.deliver_to: webhook:URL is not a valid URL")
		}
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
			if err := a.opts.Egress.Check(ip); err != nil {
				return fmt.Errorf("rotation.deliver_to: %w", err)
			}
		}
	}
	return nil
}

func keyRotationView(k store.Key) *adminapi.Rotation {
	if k.RotateEvery <= 0 {
		return nil
	}
	return &adminapi.Rotation{Every: formatDuration(k.RotateEvery), Grace: formatDuration(k.RotateGrace), DeliverTo: k.DeliverTo, Next: k.NextRotationAt}
}

// formatDuration writes whole days as "30d", anything else as Go does.
func formatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// RunRotations rotates every key whose automatic rotation is due and
// delivers each successor. keygate calls it periodically; several nodes
// calling it at once rotate each key once (each due rotation is claimed).
// A delivery that fails is retried at the next run, with the same successor.
func (a *API) RunRotations(ctx context.Context) {
	now := a.opts.Now().UTC()
	a.warnExpiring(ctx, now)
	due, err := a.opts.Store.DueRotations(ctx, now)
	if err != nil {
		a.opts.Log.Error("could not look for keys due for rotation; will retry", "err", err)
		return
	}
	for _, old := range due {
		claimed, err := a.opts.Store.ClaimRotation(ctx, old.ID, *old.NextRotationAt)
		if err != nil || !claimed {
			continue
		}
		if old.ExpiresAt != nil && !now.Before(*old.ExpiresAt) {
			continue
		}
		by := keylife.Schedule()
		by.Fields = map[string]string{"deliver_to": redactDestination(old.DeliverTo)}
		rot, err := a.opts.Keys.Rotate(ctx, old.ID, old.RotateGrace, by)
		if err != nil {
			a.opts.Log.Error("automatic key rotation failed; will retry", "key_id", old.ID, "err", err)
			retry := now.Add(time.Minute)
			_, _ = a.opts.Store.SetKeyRotation(ctx, old.ID, old.RotateEvery, old.RotateGrace, old.DeliverTo, &retry)
			continue
		}
		next, prev := rot.Key, rot.Previous
		if err := a.deliver(ctx, next, rot.Secret, prev); err != nil {
			// The successor exists; its first use is what matters. Tell the
			// operator loudly: the app still has the old key, which stops
			// working when the grace ends.
			a.opts.Log.Error("key rotated but the new key could not be delivered; deliver it by hand (keygate key rotate prints one) before the old key stops working",
				"key_id", prev.ID, "successor", next.ID, "deliver_to", redactDestination(next.DeliverTo), "old_expires_at", prev.ExpiresAt, "err", err)
			continue
		}
		a.opts.Log.Info("key rotated automatically", "key_id", prev.ID, "successor", next.ID, "deliver_to", redactDestination(next.DeliverTo), "old_expires_at", prev.ExpiresAt)
	}
}

// redactDestination names a delivery destination without a webhook's query
// (which may carry a token).
func redactDestination(d string) string {
	kind, target, _ := strings.Cut(d, ":")
	if kind == "webhook" {
		if u, err := url.Parse(target); err == nil {
			u.RawQuery, u.User = "", nil
			return kind + ":" + u.String()
		}
	}
	return d
}

// deliver hands the successor's secret to its destination (the successor
// inherited the policy; the old key's is cleared).
func (a *API) deliver(ctx context.Context, next store.Key, raw secret.String, prev store.Key) error {
	kind, target, _ := strings.Cut(next.DeliverTo, ":")
	switch kind {
	case "secret":
		_, err := a.storeSecretAs(ctx, target, rotationOwner(next.Name), raw)
		return err
	case "webhook":
		return a.deliverWebhook(ctx, target, next, raw, prev)
	}
	return fmt.Errorf("unknown destination %q", kind)
}

// webhookSigningRecord holds the key that signs rotation webhooks.
const webhookSigningRecord = "system/webhook-signing-key"

// deliverWebhook POSTs the new key as JSON, signed with HMAC-SHA256 under
// keygate's webhook signing key (header X-Keygate-Signature: sha256=<hex>),
// so the receiver can check it came from this keygate.
func (a *API) deliverWebhook(ctx context.Context, target string, next store.Key, raw secret.String, prev store.Key) error {
	body, err := json.Marshal(map[string]any{
		"event": "key.rotated", "key_id": next.ID, "key_name": next.Name, "key": raw.Reveal(),
		"previous_key_id": prev.ID, "previous_expires_at": prev.ExpiresAt,
	})
	if err != nil {
		return err
	}
	defer clear(body)
	signing, err := a.opts.Vault.Ensure(ctx, webhookSigningRecord, 32)
	if err != nil {
		return fmt.Errorf("webhook signing key: %w", err)
	}
	m := hmac.New(sha256.New, []byte(signing.Reveal()))
	m.Write(body)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Keygate-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	// The destination was set through the admin API: keygate connects only
	// where its egress policy allows (never to a metadata endpoint or a
	// private address unless listed), follows no redirect, uses no proxy.
	resp, err := a.opts.Egress.Client(10 * time.Second).Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %s", redactErr(err, raw))
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

// redactErr renders an error without a secret it might quote.
func redactErr(err error, s secret.String) string {
	return strings.ReplaceAll(err.Error(), s.Reveal(), "[REDACTED]")
}

// expiryWarning is how long before a key that is still in use stops working
// keygate warns about it.
const expiryWarning = 24 * time.Hour

// warnExpiring logs, once per key, a key that stops working within a day
// while callers still use it: most often a rotated-out key whose successor
// has not reached everyone.
func (a *API) warnExpiring(ctx context.Context, now time.Time) {
	keys, err := a.opts.Store.KeysExpiringInUse(ctx, now, expiryWarning)
	if err != nil {
		a.opts.Log.Warn("could not look for keys about to expire; will retry", "err", err)
		return
	}
	for _, k := range keys {
		if _, done := a.warned.LoadOrStore(k.ID, struct{}{}); done {
			continue
		}
		a.opts.Log.Warn("a key still in use stops working soon; deliver its successor to its callers (keygate key rotate, or its rotation policy)",
			"key_id", k.ID, "name", k.Name, "expires_at", k.ExpiresAt, "last_used_at", k.LastUsedAt)
	}
}
