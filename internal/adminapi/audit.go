package adminapi

// AuditPublicKey answers GET /api/v1/audit/public-key: the Ed25519 key
// audit checkpoints are signed with, to pin for `keygate audit verify
// --public-key`.
type AuditPublicKey struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"` // hex
}

// AuditNodes answers GET /api/v1/audit/nodes: every node with stored audit
// events or checkpoints.
type AuditNodes struct {
	Nodes []string `json:"nodes"`
}

// AuditRows answers GET /api/v1/audit/trail and /api/v1/audit/checkpoints
// (?node=NODE&after=SEQ&limit=N): one page of a node's stored events or
// checkpoints, oldest first, each with the seq it is stored under and its
// JSON exactly as stored (a string, so a damaged row still arrives whole).
type AuditRows struct {
	Rows []AuditRow `json:"rows"`
}

// AuditRow is one stored audit event or checkpoint.
type AuditRow struct {
	Seq  uint64 `json:"seq"`
	Data string `json:"data"`
}

// Webhook signing keys named by WebhookKeyRequest.For.
const (
	WebhookAudit  = "audit"
	WebhookAlerts = "alerts"
	// WebhookApprovals signs what an MCP server's approval webhook is
	// asked (options.approval_webhook).
	WebhookApprovals = "approvals"
)

// WebhookKeyRequest asks POST /api/v1/audit/webhook-key/rotate for a new
// signing key of the audit or the alert webhook.
type WebhookKeyRequest struct {
	For string `json:"for"` // WebhookAudit or WebhookAlerts
}

// WebhookKey answers GET /api/v1/audit/webhook-key?for=audit|alerts and a
// rotation: the key webhook bodies are signed with. A receiver computes
// HMAC-SHA256 over the raw body with the bytes Key decodes to (hex) and
// compares it, in constant time, with the X-Keygate-Signature header's
// "sha256=<hex>".
type WebhookKey struct {
	For     string `json:"for"`
	Key     string `json:"key"` // hex
	Version int    `json:"version"`
	// Applies says when keygate signs with this key.
	Applies string `json:"applies"`
}
