package admin

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/web"
)

// The vault records of the keys webhook bodies are signed with
// (X-Keygate-Signature), and their size in bytes.
const (
	AuditWebhookKeyRecord = "system/audit-webhook-key"
	AlertWebhookKeyRecord = "system/alert-webhook-key"
	// ApprovalWebhookKeyRecord signs the questions MCP approval webhooks
	// are asked.
	ApprovalWebhookKeyRecord = "system/approval-webhook-key"
	WebhookKeySize           = 32
)

// webhookRecord maps a WebhookKeyRequest.For to its vault record and to
// when a new key takes effect.
func webhookRecord(which string) (record, applies string, ok bool) {
	switch which {
	case adminapi.WebhookAudit:
		return AuditWebhookKeyRecord, "at once on this node, within vault.read_cache_ttl on the others", true
	case adminapi.WebhookAlerts:
		return AlertWebhookKeyRecord, "at each keygate node's next start", true
	case adminapi.WebhookApprovals:
		return ApprovalWebhookKeyRecord, "at once on this node, within vault.read_cache_ttl on the others", true
	}
	return "", "", false
}

// webhookKey shows the key a webhook's bodies are signed with, so its
// receiver can check X-Keygate-Signature: GET /audit/webhook-key?for=audit.
// Only an admin may read it, and every read is on the audit trail. The key
// is made here when the webhook has not been configured yet, so the
// receiver can be set up first.
func (a *API) webhookKey(w http.ResponseWriter, r *http.Request) {
	which := r.URL.Query().Get("for")
	record, applies, ok := webhookRecord(which)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", "for must be audit, alerts or approvals: the webhook whose signing key to show")
		return
	}
	if _, err := a.opts.Vault.Ensure(r.Context(), record, WebhookKeySize); err != nil {
		a.internal(w, "read the webhook signing key", err)
		return
	}
	key, version, err := a.opts.Vault.Get(r.Context(), record)
	if err != nil {
		a.internal(w, "read the webhook signing key", err)
		return
	}
	a.opts.Log.Info("webhook signing key read", "actor", principal(r).ID, "webhook", which, "version", version)
	a.auditSecretRead(r, record, version)
	web.WriteJSON(w, http.StatusOK, adminapi.WebhookKey{For: which, Key: hex.EncodeToString([]byte(key.Reveal())), Version: version, Applies: applies})
}

// rotateWebhookKey replaces a webhook's signing key with a new random one
// and returns it once: POST /audit/webhook-key/rotate {"for": "audit"}.
// Receivers should accept the old and the new key until the new one applies.
func (a *API) rotateWebhookKey(w http.ResponseWriter, r *http.Request) {
	var req adminapi.WebhookKeyRequest
	if err := web.DecodeJSON(w, r, maxAdminBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	record, applies, ok := webhookRecord(req.For)
	if !ok {
		writeError(w, http.StatusBadRequest, "bad_request", `for must be "audit", "alerts" or "approvals": the webhook whose signing key to rotate`)
		return
	}
	buf := make([]byte, WebhookKeySize)
	defer clear(buf)
	if _, err := rand.Read(buf); err != nil {
		a.internal(w, "generate a webhook signing key", err)
		return
	}
	version, err := a.opts.Vault.Put(r.Context(), record, secret.New(string(buf)))
	if err != nil {
		a.internal(w, "store the webhook signing key", err)
		return
	}
	a.opts.Log.Info("webhook signing key rotated", "actor", principal(r).ID, "webhook", req.For, "version", version)
	web.WriteJSON(w, http.StatusOK, adminapi.WebhookKey{For: req.For, Key: hex.EncodeToString(buf), Version: version, Applies: applies})
}
