package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/balance"
)

// AliasHealth is one model alias as this node routes it now.
type AliasHealth struct {
	Name     string
	Strategy string
	// Deployments are the alias's deployments this node can send to, in
	// the configured order.
	Deployments []DeploymentHealth
	// Unavailable names configured deployments left out, with why.
	Unavailable []string
}

// DeploymentHealth is what this node knows of one deployment: its
// breaker, its cool-down after a 429, and its last upstream errors. It is
// this node's own view; another node keeps its own.
type DeploymentHealth struct {
	Name, Provider, Model string
	// Breaker is closed, open or half-open.
	Breaker string
	// Failures is the failures in a row since the last success.
	Failures int
	// CoolingUntil is when a 429's cool-down ends; zero when not cooling.
	CoolingUntil time.Time
	InFlight     int64
	// Latency is the moving average time to response headers; 0 unknown.
	Latency time.Duration
	// Errors are the last upstream errors, newest first.
	Errors []balance.UpstreamError
}

// RoutingHealth reports every alias of the current routing table with the
// health of its deployments on this node, aliases by name.
func (g *Gateway) RoutingHealth() []AliasHealth {
	now := time.Now() // the breakers' clock (failover.go), not opts.Now
	aliases := g.table.Load().Aliases()
	out := make([]AliasHealth, 0, len(aliases))
	for _, a := range aliases {
		ah := AliasHealth{Name: a.Name, Strategy: string(a.Strategy), Unavailable: append([]string(nil), a.Unavailable...)}
		if ah.Strategy == "" {
			ah.Strategy = string(balance.Priority)
		}
		for _, d := range a.Deployments {
			dh := DeploymentHealth{Name: d.Name, Provider: d.Upstream.Name, Model: d.Model, Breaker: balance.Closed}
			if st, ok := g.health.Lookup(d.Name); ok {
				dh.Breaker, dh.Failures, dh.CoolingUntil = st.Breaker(now), st.Failures(), st.CoolingUntil(now)
				dh.InFlight, dh.Latency, dh.Errors = st.InFlight(), st.Latency(), st.Errors()
			}
			ah.Deployments = append(ah.Deployments, dh)
		}
		out = append(out, ah)
	}
	return out
}

// upstreamError describes a failed attempt for the health report, in
// keygate's own words: the transport's error text is not kept, since it
// can name the upstream URL and with it a key sent in the query.
func upstreamError(at time.Time, status int, err error) balance.UpstreamError {
	e := balance.UpstreamError{At: at.UTC(), Status: status}
	switch {
	case status == http.StatusTooManyRequests:
		e.Reason = "rate limited by the provider; cooling down"
	case status != 0:
		e.Reason = "the provider answered " + http.StatusText(status)
	case errors.Is(err, context.DeadlineExceeded):
		e.Reason = "no answer in time"
	default:
		e.Reason = "no answer: the connection failed"
	}
	return e
}
