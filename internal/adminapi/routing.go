package adminapi

import (
	"time"

	"github.com/keygate/keygate/internal/config"
)

// Routing managed live (docs/routing.md):
//
//	GET    /api/v1/routing                       -> RoutingList
//	GET    /api/v1/routing/{kinds}/{name...}      -> RoutingEntry   (kinds: deployments, aliases, services)
//	POST   /api/v1/routing/{kinds}                RoutingEntry -> 201 RoutingPlan (?force=true)
//	PUT    /api/v1/routing/{kinds}/{name...}      RoutingEntry -> RoutingPlan     (create or replace; ?force=true)
//	DELETE /api/v1/routing/{kinds}/{name...}      -> RoutingPlan                  (?force=true)
//	POST   /api/v1/routing/apply                 ApplyRoutingRequest -> RoutingPlan
//	GET    /api/v1/routing/health                -> RoutingHealth  (this node's breakers and upstream errors)
//
// A change that would leave a key with nothing to reach is refused with
// 409 and code would_break, naming each key, unless force is set.

// RoutingEntry is a deployment, a model alias or a passthrough service:
// Kind says which of Deployment, Alias and Service is set.
type RoutingEntry struct {
	Kind string `json:"kind"` // deployment, alias or service
	Name string `json:"name"`
	// Source is where the entry is defined: file (the configuration
	// file, read-only here) or database. Set in answers only.
	Source     string             `json:"source,omitempty"`
	Deployment *config.Deployment `json:"deployment,omitempty"`
	Alias      *config.Alias      `json:"alias,omitempty"`
	Service    *config.Service    `json:"service,omitempty"`
	// UpdatedAt and UpdatedBy say when and by whom a database entry last changed.
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

// RoutingList is every routing entry, from the file and the database, and
// the database's routing generation.
type RoutingList struct {
	Generation int64          `json:"generation"`
	Entries    []RoutingEntry `json:"entries"`
}

// RoutingDocument is the routing a `keygate apply -f` file declares: the
// routing and services sections of a configuration file, as the whole of
// what the database should hold.
type RoutingDocument struct {
	Routing  DocumentRouting           `yaml:"routing" json:"routing"`
	Services map[string]config.Service `yaml:"services" json:"services"`
}

// DocumentRouting is a RoutingDocument's deployments and aliases.
type DocumentRouting struct {
	Deployments []config.Deployment     `yaml:"deployments" json:"deployments"`
	Aliases     map[string]config.Alias `yaml:"aliases" json:"aliases"`
}

// ApplyRoutingRequest makes the database's routing what Document
// declares: entries it lacks are created, those that differ updated, and
// database entries it does not list deleted. DryRun only plans; Force
// applies a plan that leaves keys with nothing to reach.
type ApplyRoutingRequest struct {
	Document RoutingDocument `json:"document"`
	DryRun   bool            `json:"dry_run,omitempty"`
	Force    bool            `json:"force,omitempty"`
}

// RoutingPlan is what a change does, or (dry run) would do.
type RoutingPlan struct {
	Changes []RoutingChange `json:"changes"`
	// Breaks names each key the plan would leave with no model, or none of
	// its services, to reach; a plan with breaks is applied only by force.
	Breaks []string `json:"breaks,omitempty"`
	// Warnings are what does not stop the plan but will not work yet, such
	// as a service whose vault secret is not stored.
	Warnings   []string `json:"warnings,omitempty"`
	Applied    bool     `json:"applied"`
	Generation int64    `json:"generation"` // the routing generation after the change
}

// RoutingChange is one step of a plan: create, update or delete.
type RoutingChange struct {
	Op     string        `json:"op"`
	Kind   string        `json:"kind"`
	Name   string        `json:"name"`
	Before *RoutingEntry `json:"before,omitempty"`
	After  *RoutingEntry `json:"after,omitempty"`
}

// RoutingHealth is GET /routing/health: the model aliases as the node that
// answered routes them, with the health of each deployment. Breakers and
// errors are each node's own (every node learns of a failing deployment
// from its own requests), so Node names the node this is from.
type RoutingHealth struct {
	Node        string        `json:"node"`
	GeneratedAt time.Time     `json:"generated_at"`
	Aliases     []AliasHealth `json:"aliases"`
}

// AliasHealth is one model alias and its deployments' health.
type AliasHealth struct {
	Name        string             `json:"name"`
	Strategy    string             `json:"strategy"`
	Deployments []DeploymentHealth `json:"deployments"`
	// Unavailable names configured deployments left out, with why (their
	// provider is not registered, or its key cannot be served).
	Unavailable []string `json:"unavailable,omitempty"`
}

// DeploymentHealth is one deployment as the node sees it.
type DeploymentHealth struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Breaker is closed (requests go), open (skipped until its cool-down
	// passes) or half-open (one probe request decides).
	Breaker string `json:"breaker"`
	// Failures is the failures in a row since its last success.
	Failures int `json:"failures"`
	// CoolingUntil is when the wait a 429 asked for ends.
	CoolingUntil *time.Time `json:"cooling_until,omitempty"`
	InFlight     int64      `json:"in_flight"`
	// LatencyMS is the moving average time to response headers; 0 unknown.
	LatencyMS int64 `json:"latency_ms"`
	// Errors are its last upstream errors, newest first.
	Errors []UpstreamError `json:"errors"`
}

// UpstreamError is one failed attempt at a deployment: when, the
// provider's HTTP status (0 when it never answered) and what went wrong.
// It never carries the request, the answer's body or a credential.
type UpstreamError struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Reason string    `json:"reason"`
}
