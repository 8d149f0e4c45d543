package adminapi

// ReportLeakRequest is the body of POST /api/v1/leaks: a keygate
// credential someone found where it should not be.
type ReportLeakRequest struct {
	// Key is the credential found (kg_...). It is checked, looked up by
	// its HMAC and never stored or echoed.
	Key string `json:"key"`
	// Where says where it was found, such as a URL or file:line.
	Where string `json:"where,omitempty"`
}

// ReportLeakResult answers POST /api/v1/leaks.
type ReportLeakResult struct {
	// TruePositive is true when the credential is one this keygate issued.
	TruePositive bool   `json:"true_positive"`
	KeyID        string `json:"key_id,omitempty"`
	KeyName      string `json:"key_name,omitempty"`
	Prefix       string `json:"prefix,omitempty"`
	// Action is "revoked", "suspended", "already revoked" or "already
	// suspended"; empty when the credential is not this keygate's.
	Action string `json:"action,omitempty"`
}
