package adminapi

// ReportLeakRequest is the body of POST /api/v1/leaks: a keygate
// credential, or a provider key keygate holds, that someone found where it
// should not be.
type ReportLeakRequest struct {
	// Key is the credential found: a keygate key (kg_...), checked and
	// looked up by its HMAC, or a provider's key, compared with the
	// vault's current values. It is never stored or echoed.
	Key string `json:"key"`
	// Where says where it was found, such as a URL or file:line.
	Where string `json:"where,omitempty"`
}

// ReportLeakResult answers POST /api/v1/leaks.
type ReportLeakResult struct {
	// TruePositive is true when the credential is one this keygate issued
	// or a provider key it holds.
	TruePositive bool   `json:"true_positive"`
	KeyID        string `json:"key_id,omitempty"`
	// KeyName is the key's name, or "provider:NAME" for a provider's key.
	KeyName string `json:"key_name,omitempty"`
	Prefix  string `json:"prefix,omitempty"`
	// Action is "revoked", "suspended", "already revoked" or "already
	// suspended" for a keygate key; for a provider's key "rotating" (a
	// minted key), "disabling" (an Anthropic key keygate holds the admin
	// key of) or "alerted" (a person must rotate it); empty when the
	// credential is not this keygate's.
	Action string `json:"action,omitempty"`
}
