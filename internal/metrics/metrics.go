// Package metrics exposes keygate's Prometheus metrics: requests, latency,
// upstream latency, denials by reason, tokens and spend, alerts and audit
// lag. Labels stay low-cardinality: dialect, status class, provider, reason;
// never key ids, addresses or model names a client could vary at will.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is keygate's registry and instruments. It is safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	upstream *prometheus.HistogramVec
	denials  *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	spend    *prometheus.CounterVec
	alerts   *prometheus.CounterVec
	auditLag prometheus.Gauge
	sharedUp prometheus.Gauge
	nodes    prometheus.Gauge
	leases   prometheus.Gauge
	overhead prometheus.Histogram
	limits   map[string]prometheus.Observer // by kind of limit, made once
	// Per-key series, only when New was asked for them.
	keyRequests *prometheus.CounterVec
	keySpend    *prometheus.CounterVec
}

// Options configures the instruments.
type Options struct {
	// KeyLabels adds keygate_key_requests_total and keygate_key_spend_usd_total
	// labelled by key id. Off by default: one series per key.
	KeyLabels bool
}

// latencyBuckets span a cached denial (tens of µs) to a long stream.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// overheadBuckets span a cached key check (tens of µs) to a slow shared
// limiter or a large translated body (tens of ms).
var overheadBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25}

// utilizationBuckets are fractions of a limit in use after an admission.
var utilizationBuckets = []float64{0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1}

// New builds the registry with Go runtime and process collectors.
func New(o Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_requests_total", Help: "Gateway requests by API dialect, status class and outcome (proxied or denied).",
		}, []string{"dialect", "code", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keygate_request_duration_seconds", Help: "Time from a request's arrival to the end of its answer.", Buckets: latencyBuckets,
		}, []string{"dialect"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keygate_upstream_duration_seconds", Help: "Time from sending a request upstream to the provider's response headers.", Buckets: latencyBuckets,
		}, []string{"provider"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_denials_total", Help: "Requests keygate refused before anything went upstream, by reason.",
		}, []string{"reason"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_tokens_total", Help: "Tokens consumed, by provider and direction (input or output).",
		}, []string{"provider", "direction"}),
		spend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_spend_usd_total", Help: "Spend in US dollars at keygate's prices, by provider.",
		}, []string{"provider"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_alerts_total", Help: "Alerts raised, by rule.",
		}, []string{"rule"}),
		auditLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_audit_lag_events", Help: "Audit events recorded but not yet written by every sink.",
		}),
		sharedUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_limits_redis_up", Help: "1 while Redis for limits answers; 0 while this node decides alone from its leases and shares.",
		}),
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_limits_nodes", Help: "Nodes sharing Redis for limits at the last heartbeat; rate limits are divided by it while Redis is down.",
		}),
		leases: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_limits_leases", Help: "Quotas and budgets of which this node holds a lease to spend from while Redis is down.",
		}),
	}
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "keygate_overhead_seconds", Buckets: overheadBuckets,
		Help: "What keygate itself added to a forwarded request before the answer's headers: its arrival to its answer's headers, less the time spent waiting on upstream attempts.",
	})
	limits := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "keygate_limit_utilization_ratio", Buckets: utilizationBuckets,
		Help: "How much of a limit was in use once a request was admitted (reservations included), by kind of limit.",
	}, []string{"limit"})
	m.limits = map[string]prometheus.Observer{}
	for _, kind := range LimitKinds() {
		m.limits[kind] = limits.WithLabelValues(kind)
	}
	m.reg.MustRegister(m.requests, m.latency, m.overhead, m.upstream, m.denials, m.tokens, m.spend, m.alerts, m.auditLag, m.sharedUp, m.nodes, m.leases, limits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if o.KeyLabels {
		m.keyRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_key_requests_total", Help: "Gateway requests by key id and outcome (proxied or denied).",
		}, []string{"key_id", "outcome"})
		m.keySpend = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_key_spend_usd_total", Help: "Spend in US dollars at keygate's prices, by key id.",
		}, []string{"key_id"})
		m.reg.MustRegister(m.keyRequests, m.keySpend)
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request records one gateway request: its dialect ("" for endpoints
// without one), final status, the denial reason if keygate refused it, and
// how long it took.
func (m *Metrics) Request(dialect, keyID string, status int, denied string, d time.Duration) {
	if dialect == "" {
		dialect = "none"
	}
	outcome := "proxied"
	if denied != "" {
		outcome = "denied"
		m.denials.WithLabelValues(denied).Inc()
	}
	m.requests.WithLabelValues(dialect, statusClass(status), outcome).Inc()
	if m.keyRequests != nil && keyID != "" {
		m.keyRequests.WithLabelValues(keyID, outcome).Inc()
	}
	m.latency.WithLabelValues(dialect).Observe(d.Seconds())
}

// Upstream records the time a provider took to answer with headers.
func (m *Metrics) Upstream(provider string, d time.Duration) {
	m.upstream.WithLabelValues(provider).Observe(d.Seconds())
}

// Usage records the tokens and spend of one request.
func (m *Metrics) Usage(provider, keyID string, in, out, microUSD int64) {
	if in > 0 {
		m.tokens.WithLabelValues(provider, "input").Add(float64(in))
	}
	if out > 0 {
		m.tokens.WithLabelValues(provider, "output").Add(float64(out))
	}
	if microUSD > 0 {
		m.spend.WithLabelValues(provider).Add(float64(microUSD) / 1e6)
		if m.keySpend != nil && keyID != "" {
			m.keySpend.WithLabelValues(keyID).Add(float64(microUSD) / 1e6)
		}
	}
}

// LimitUsage records the fraction of one limit in use after an admission;
// limit names the kind ("requests_per_period", "tokens_per_period",
// "concurrency", "requests_quota", "tokens_quota", "budget").
func (m *Metrics) LimitUsage(limit string, fraction float64) {
	if o, ok := m.limits[limit]; ok {
		o.Observe(fraction)
	}
}

// LimitKinds are the kinds of limit LimitUsage takes.
func LimitKinds() []string {
	return []string{"requests_per_period", "tokens_per_period", "concurrency", "requests_quota", "tokens_quota", "budget"}
}

// Overhead records what keygate added to one forwarded request.
func (m *Metrics) Overhead(d time.Duration) { m.overhead.Observe(d.Seconds()) }

// Alert counts one alert.
func (m *Metrics) Alert(rule string) { m.alerts.WithLabelValues(rule).Inc() }

// SharedLimits records the state of Redis for limits: whether it answers,
// the nodes sharing it and the leases this node holds.
func (m *Metrics) SharedLimits(up bool, nodes int64, leases int) {
	v := 0.0
	if up {
		v = 1
	}
	m.sharedUp.Set(v)
	m.nodes.Set(float64(nodes))
	m.leases.Set(float64(leases))
}

// AuditLag sets how many audit events await writing.
func (m *Metrics) AuditLag(n int) { m.auditLag.Set(float64(n)) }

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}
