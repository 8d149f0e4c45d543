package adminapi

import "time"

// SourceRef is a provider key or secret keygate follows in a cloud secret
// manager or Vault, and how reading it goes. It never carries the value.
type SourceRef struct {
	Target  string `json:"target"`  // "provider:NAME" or "secret:NAME"
	Ref     string `json:"ref"`     // awssm://..., azkv://..., gcpsm://..., vault://...
	Refresh string `json:"refresh"` // how often the source is read, such as 5m0s
	Grace   string `json:"grace"`   // how long the last value read is served once the source fails
	// State is "ok" (read at its last attempt), "stale" (the source
	// fails; the last value read is served until ServeUntil) or
	// "unavailable" (never read, or failing past its grace: refused).
	State         string     `json:"state"`
	VerifiedAt    *time.Time `json:"verified_at,omitempty"`
	FailingSince  *time.Time `json:"failing_since,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	ServeUntil    *time.Time `json:"serve_until,omitempty"`
	NextRefreshAt time.Time  `json:"next_refresh_at"`
}

// SourceRefList answers GET /api/v1/sources.
type SourceRefList struct {
	Refs []SourceRef `json:"refs"`
}
