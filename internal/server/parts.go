package server

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/approvalhook"
	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gatewaystore"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/lastused"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/metrics"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/routing"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/tracing"
	"github.com/keygate/keygate/internal/vault"
)

// buildParts makes the data plane and the admin plane over the opened
// core: limits, routing, tokens, risk, metrics, the audit trail,
// detection, step-up, the gateway, the admin API and the revocation
// follower. Each part that holds something open is recorded on the node
// as soon as it exists, so a failure here closes it again.
func (n *Node) buildParts(ctx context.Context) (err error) {
	cfg, p, log := n.cfg, n.plan, n.log
	st, v, hasher := n.core.st, n.core.vault, n.core.hasher

	if n.lim, err = newLimits(ctx, p, st, log); err != nil {
		return err
	}
	if n.src, err = newSourceParts(cfg, n.o.getenv, st, v, log); err != nil {
		return err
	}
	// The one way the routing table is built, at start and on every
	// reload: providers from the store (keys kept in a source served only
	// while keygate can vouch for them, cloud-identity upstreams with their
	// Authorizer), routing and services from the file merged with the
	// database's (internal/routing).
	n.routing = newRoutingFollower(st, routing.File{Routing: cfg.Routing, Services: cfg.Services}, log)
	loadTable := func(ctx context.Context) (*route.Table, error) {
		set, done, err := n.routing.load(ctx)
		if err != nil {
			return nil, err
		}
		t, err := route.Load(ctx, st, n.src.guard, n.src.loadOptions()...)
		if err != nil {
			return nil, err
		}
		parsed, err := route.ParseServices(set.Services)
		if err != nil {
			return nil, err
		}
		svcs, err := route.OpenServices(ctx, parsed, set.Services, st, n.src.guard)
		if err != nil {
			return nil, err
		}
		defer done()
		return t.WithRouting(set.Routing, n.lim.gateway.Prices).WithServices(svcs), nil
	}
	table, err := loadTable(ctx)
	if err != nil {
		return err
	}
	for name := range p.services {
		if svc, _ := table.Service(name); svc.Unavailable != "" {
			log.Warn("a passthrough service cannot be used until its credential is stored", "service", name, "reason", svc.Unavailable)
		}
	}
	for _, a := range table.Aliases() {
		if len(a.Unavailable) > 0 {
			log.Warn("a model alias has deployments whose provider is not registered; they are left out until it is", "alias", a.Name, "unavailable", a.Unavailable)
		}
	}
	n.providers = len(table.Upstreams())
	n.used = lastused.New(st, log)
	// Bedrock clients that sign with SigV4 use an access key pair derived
	// from a key sealed in the vault: the gateway verifies with it, the
	// admin API issues with it.
	sigv4, err := newSigV4Deriver(ctx, v)
	if err != nil {
		return err
	}
	if n.tok, err = newTokens(ctx, cfg, st, v); err != nil {
		return err
	}
	risk := &gateway.RiskOptions{Rules: p.risk, History: gatewaystore.New(st)}
	if p.geoip != nil {
		risk.GeoIP = p.geoip
	}
	n.met = metrics.New(metrics.Options{KeyLabels: cfg.Metrics.KeyLabels})
	if n.trail, err = newAudit(ctx, p, st, v, log); err != nil {
		return err
	}
	// One service suspends, resumes, revokes and rotates keys for the admin
	// API, alert actions, leak reports and /oauth/revoke. A key it changes
	// is forgotten at once by this node's gateway, which is built after
	// detection (the gateway observes through it).
	n.keys = keylife.New(keylife.Options{Store: st, Hasher: hasher, Forget: func(id string) { n.gw.ForgetKey(id) },
		Audit: n.trail.w.Record, Log: log})
	n.tok.gateway.Revocations = gatewaystore.New(st).WithKeys(n.keys)
	if n.det, err = newDetection(ctx, p, v, n.trail, n.met, n.keys, log); err != nil {
		return err
	}
	n.src.raiseTo(n.det.engine)
	n.mint = newMinting(st, v, n.src.cloudOpts.HTTP, log)
	n.mint.audit, n.mint.alert = n.trail.w.Record, n.det.engine.Raise
	// After a rotation this node serves the new key and looks for it, not
	// the old one, at once; other nodes follow the vault's change.
	n.mint.reload = func(ctx context.Context) { n.refreshProviders(ctx); n.refreshLeakMatcher(ctx) }
	verifyTOTP, stepUp, err := newStepUp(cfg, st, v, n.det, n.trail, log)
	if err != nil {
		return err
	}
	n.stepUp = stepUp
	n.tok.gateway.VerifyTOTP = verifyTOTP
	if n.tok.gateway.Workloads, err = newWorkloadTrust(p.workloads, st, log); err != nil {
		return err
	}
	n.ready = n.newReadiness()
	var secrets gateway.SecretReader
	if len(cfg.Workloads.SecretGrants) > 0 {
		secrets = gatewaystore.NewSecrets(st, guardedVault{v, n.src.guard}, hasher)
	}
	// One cache of compiled principals for the whole data plane. A key's
	// group limits are compiled into its principal, so a change to any
	// group drops them all.
	keys := keysource.New(hasher, st, keysource.WithTTL(cfg.KeyCacheTTL), keysource.WithOutageGrace(cfg.KeyOutageGrace),
		keysource.WithGroups(n.lim.groups.limits), keysource.WithLocation(cfg.Limits.Location()),
		keysource.WithSecretGrants(func(id string) []string { return cfg.Workloads.SecretGrants[id] }))
	n.lim.groups.onChange = keys.InvalidateAll
	argsKey := hasher.Hash("mcp-arguments-hmac")
	leaks := leakOptions(cfg.Leaks)
	var mcpLeaks *mcpgate.LeakCheck
	if leaks != nil {
		// Tool calls share the gateway's matcher (rebuilt as the vault
		// changes) and policy; the gateway is built just below.
		mcpLeaks = &mcpgate.LeakCheck{Matcher: func() *leak.Matcher { return n.gw.LeakMatcher() }, Action: leaks.Action,
			Found: func(keyID, client, server string) {
				n.det.engine.Observe(detect.Observation{At: time.Now(), KeyID: keyID, Client: client, Provider: server,
					Path: mcpgate.Path, Risk: gateway.RuleCredentialLeak})
			}}
	}
	// Users' grants at MCP servers that act for a person, sealed in the
	// vault: the gateway refreshes and uses them, the admin plane makes
	// and revokes them.
	mcpGrants := gatewaystore.NewMCPGrants(v, st, time.Now)
	n.mcp = mcpgate.New(mcpgate.Options{
		Source: gatewaystore.NewMCPServers(st, v), Grants: mcpGrants, Log: log, Audit: n.trail.w,
		Limiter: n.lim.gateway.Shared, Location: cfg.Limits.Location(), ArgsKey: argsKey[:],
		Egress: cfg.EgressPolicy(), Version: n.o.version, Leaks: mcpLeaks,
		Approvals: gatewaystore.NewMCPApprovals(st),
		// A server's approval webhook is asked beside the queue, signed
		// with the approvals webhook key (made on first use).
		AskWebhook: &approvalhook.Client{HTTP: cfg.EgressPolicy().Client(0), Key: func(ctx context.Context) (secret.String, error) {
			if _, err := v.Ensure(ctx, admin.ApprovalWebhookKeyRecord, admin.WebhookKeySize); err != nil {
				return secret.String{}, err
			}
			k, _, err := v.GetCached(ctx, admin.ApprovalWebhookKeyRecord)
			return k, err
		}},
		Observe: func(keyID, client, server, tool string, denied bool, hints mcpgate.ToolHints) {
			// Tool calls pass the same detectors as model calls: a burst
			// of calls is a rate spike, a change in the tools used a
			// resource shift; a tool the key never used is its own rule.
			n.det.engine.Observe(detect.Observation{At: time.Now(), KeyID: keyID, Client: client,
				Provider: server, Model: tool, Path: mcpgate.Path, Tool: server + "/" + tool, ToolDenied: denied,
				ToolOpenWorld: hints.OpenWorld, ToolDestructive: hints.Destructive})
		},
	})
	if err := n.mcp.Reload(ctx); err != nil {
		return fmt.Errorf("read the MCP servers: %w", err)
	}
	var tracer trace.Tracer
	if t := cfg.Tracing; t.Endpoint != "" {
		if n.traces, err = tracing.New(ctx, tracing.Options{Endpoint: t.Endpoint, SampleRatio: t.SampleRatio, ServiceName: t.ServiceName, Version: n.o.version}); err != nil {
			return err
		}
		tracer = n.traces.Tracer()
	}
	n.gw = gateway.New(gateway.Options{
		Keys:         keys,
		Log:          log,
		MaxBodyBytes: int64(cfg.MaxBodyBytes),
		Transport: gateway.NewTransport(gateway.TransportOptions{
			DialTimeout:           cfg.Upstream.DialTimeout,
			ResponseHeaderTimeout: cfg.Upstream.ResponseHeaderTimeout,
			MaxIdleConnsPerHost:   cfg.Upstream.MaxIdleConnsPerHost,
		}),
		TrustedProxies: cfg.TrustedProxyPrefixes(),
		PublicURL:      cfg.PublicOrigin(),
		AccessLog:      cfg.Log.Requests,
		LoadTable:      loadTable,
		PassthroughTransport: passthrough.NewTransport(passthrough.TransportOptions{
			DialTimeout: cfg.Upstream.DialTimeout, ResponseHeaderTimeout: cfg.Upstream.ResponseHeaderTimeout, MaxIdleConnsPerHost: cfg.Upstream.MaxIdleConnsPerHost,
		}),
		Breaker:         balance.BreakerConfig{Failures: cfg.Routing.Breaker.Failures, Cooldown: cfg.Routing.Breaker.Cooldown},
		KeyUsed:         n.used.Seen,
		Limits:          n.lim.gateway,
		Tokens:          n.tok.gateway,
		Risk:            risk,
		Metrics:         n.met,
		Audit:           leakWatch{n.trail.w, n.mint}, // a minted provider's key found leaked is rotated
		AuditFailClosed: cfg.Audit.FailClosed,
		Detect:          n.det.engine,
		Secrets:         secrets,
		Leaks:           leaks,
		MCP:             n.mcp,
		Ready:           n.ready,
		Tracer:          tracer,
		OverheadHeader:  cfg.Metrics.OverheadHeader,
		// Who created each response, for every node (pruned by the janitor).
		ResponseOwners: gatewaystore.NewResponseOwners(st, time.Now),
		SigV4:          sigv4,

		MaxInflightBodyBytes: int64(cfg.Client.MaxInflightBodyBytes),
		ResponsesWS: gateway.ResponsesWSOptions{
			IdleTimeout:        cfg.Client.WebSocket.IdleTimeout,
			MaxLifetime:        cfg.Client.WebSocket.MaxLifetime,
			MaxPerKey:          cfg.Client.WebSocket.MaxPerKey,
			DisableCompression: cfg.Client.WebSocket.DisableCompression,
		},
	}, table)
	n.routing.reload = n.gw.Reload
	n.refreshLeakMatcher(ctx)
	roles, err := cfg.RoleTable()
	if err != nil {
		return err
	}
	signIn, err := newSignIn(ctx, cfg, roles, st, hasher, stepUp)
	if err != nil {
		return err
	}
	n.src.refresher.Changed = func(ctx context.Context) { n.refreshProviders(ctx) }
	n.adm = admin.New(admin.Options{
		SignIn: signIn,
		Store:  st, Vault: guardedVault{v, n.src.guard}, Hasher: hasher, Log: log,
		Sources: admin.SourceOptions{Refs: st, Refresh: n.src.refresher.Refresh, DefaultRefresh: cfg.Sources.Refresh, DefaultGrace: cfg.Sources.Grace},
		People:  st, Credentials: st, Approvals: st, Invitations: st, InvitationTTL: cfg.SignIn.InvitationTTL,
		Roles:            roles,
		Approval:         admin.ApprovalPolicy{RequiredFor: cfg.ApprovalPermissions(), TTL: cfg.Approvals.TTL},
		TrustedProxies:   cfg.TrustedProxyPrefixes(),
		AuthFailures:     &admin.AuthFailureLimits{Limiter: limit.NewMemory(), Max: cfg.Limits.AuthFailures, Window: cfg.Limits.AuthFailureWindow},
		ProvidersChanged: n.gw.Reload,
		Routing:          st,
		RoutingFile:      n.routing.file,
		RoutingHealth:    func() []adminapi.AliasHealth { return routingHealth(n.gw.RoutingHealth()) },
		Node:             n.trail.node,
		Keys:             n.keys,
		UpstreamLeak:     n.upstreamLeak,
		GroupsChanged:    n.lim.groupsChanged,
		MCP:              st,
		MCPChanged:       n.refreshMCP,
		MCPGrants:        mcpGrants,
		MCPGrantChanged:  n.mcp.GrantChanged,
		Metrics:          n.met.Handler(),
		Audit:            n.trail.w,
		AuditStore:       st,
		Insights:         st,
		AuditKey:         n.trail.pub,
		AuditFailClosed:  cfg.Audit.FailClosed,
		UsageLocation:    cfg.Limits.Location(),
		Rotator:          n.core.rot,
		OpenKEK: func(ctx context.Context, url string) (vault.KEK, error) {
			return n.core.openKEK(ctx, url, true)
		},
		Backup: func(ctx context.Context, w io.Writer) error {
			snap, err := st.ExportSnapshot(ctx)
			if err != nil {
				return err
			}
			return vault.WriteBackup(ctx, w, v.Current(), snap, time.Now())
		},
		Egress:               cfg.EgressPolicy(),
		Version:              n.o.version,
		GatewayURL:           n.addrs.Gateway,
		ProviderKeyGrace:     cfg.Vault.ProviderKeyGrace,
		SecretRecoveryWindow: cfg.Vault.SecretRecoveryWindow,
		AWSCredentials:       sigv4,
	})
	if signIn != nil {
		// People sign MCP clients in through keygate: the gateway serves the
		// metadata, registration and token endpoints, the admin listener
		// the consent page (mcpauth.go).
		adminURL := n.addrs.Admin
		if cfg.SignIn.AdminURL != "" {
			adminURL = cfg.SignIn.AdminURL
		}
		if n.mcpAuth, err = newMCPAuth(ctx, st, v, n.adm, adminURL, cfg.PublicOrigin(), cfg.TrustedProxyPrefixes(), cfg.EgressPolicy(), n.trail.w, log); err != nil {
			return err
		}
		n.tok.gateway.Authorization = n.mcpAuth
	}
	n.revs = newRevocationFollower(ctx, st, func(r store.Revocation) {
		// A person's authorization at an MCP server made again or
		// revoked on any node: the grant held here is dropped.
		if r.Kind == token.RevokedMCPGrant {
			if i := strings.LastIndexByte(r.Subject, '/'); i > 0 {
				n.mcp.GrantChanged(r.Subject[:i], r.Subject[i+1:])
			}
			return
		}
		n.gw.Revoked(gatewaystore.Revocation(r))
	}, log)
	n.revs.warm = func(ctx context.Context, id string) { _, _ = keys.ByID(ctx, id, time.Now()) }
	n.chg = newChangeFollower(ctx, st, []changeTopic{
		// (Revocations, suspensions and changes to keys are followed by a
		// task of their own, n.revs, which every notification wakes too.)
		// Providers and passthrough services added, changed or removed reach routing.
		{store.TopicProviders, n.refreshProviders},
		// Key groups' limits apply here.
		{store.TopicKeyGroups, n.refreshGroups},
		// A token signing key exists ahead of need (the safety net makes it
		// in time), and keys other nodes made are published and accepted.
		{store.TopicSigningKeys, n.rotateSigningKeys},
		// A key-encryption key rotation started on another node is followed.
		{store.TopicKEKs, n.followKEK},
		// The outbound credential check looks for the vault's current values.
		{store.TopicSecrets, n.refreshLeakMatcher},
		// MCP servers added, changed or removed are served (or disconnected) here.
		{store.TopicMCPServers, n.refreshMCP},
	}, cfg.ProviderRefresh, log)
	n.chg.notified = n.revs.kick
	return nil
}
