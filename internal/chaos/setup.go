package chaos

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/secret"
)

// cluster is everything the suite runs: servers, links and the balancer.
type cluster struct {
	o       Options
	dir     string
	db      *database
	redis   *redisServer
	transit *transit
	audit   *auditReceiver
	echo    *echoService
	ups     []*upstream // openai-a, openai-b, anthropic-a, anthropic-b
	nodes   []*node
	lb      *haproxy
	cred    secret.String // the admin credential
	keys    *keyring
	holders []*tokenHolder
	probe   *http.Client // direct probes of one node, never pooled
	noDisk  error        // why node-3's audit file has no file system of its own
}

// progress prints one line of progress.
func (c *cluster) progress(format string, args ...any) {
	fmt.Fprintf(c.o.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// build starts the cluster and configures it through the admin API. On
// error the returned cluster (when not nil) still needs teardown.
func build(ctx context.Context, o Options, dir string) (*cluster, error) {
	c := &cluster{o: o, dir: dir, keys: newKeyring(),
		probe: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	var err error
	c.progress("creating a database of the suite's own on %s", redactURL(o.Postgres))
	if c.db, err = createDatabase(ctx, o.Postgres); err != nil {
		return nil, err
	}
	c.progress("starting Redis, the fake providers, the fake Vault transit and the audit webhook")
	if c.redis, err = startRedis(dir); err != nil {
		return c, err
	}
	if c.transit, err = startTransit(); err != nil {
		return c, err
	}
	if c.audit, err = startAuditReceiver(); err != nil {
		return c, err
	}
	echoToken := "chaos-fake-service-token-" + rand.Text()
	if c.echo, err = startEcho(echoToken); err != nil {
		return c, err
	}
	for _, p := range []struct{ name, dialect string }{
		{"openai-a", "openai"}, {"openai-b", "openai"}, {"anthropic-a", "anthropic"}, {"anthropic-b", "anthropic"},
	} {
		u, err := startUpstream(p.name, p.dialect, "chaos-fake-"+p.name+"-key-"+rand.Text())
		if err != nil {
			return c, err
		}
		c.ups = append(c.ups, u)
	}
	for i := range 3 {
		n, err := c.newNode(i)
		if err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, n)
	}
	c.progress("starting 3 keygate nodes")
	for i, n := range c.nodes {
		if i > 0 {
			n.env = append(n.env, "KEYGATE_BOOTSTRAP_CREDENTIAL=none")
		}
		if err := n.start(ctx); err != nil {
			return c, err
		}
		if i == 0 {
			n.mu.Lock()
			cred := n.credential
			n.env = append(n.env, "KEYGATE_BOOTSTRAP_CREDENTIAL=none")
			n.mu.Unlock()
			if cred == "" {
				return c, fmt.Errorf("the first node printed no admin credential; its log is %s", n.logPath)
			}
			c.cred = secret.New(cred)
		}
	}
	for _, n := range c.nodes {
		if err := n.waitReady(ctx, 30*time.Second); err != nil {
			return c, err
		}
		n.learnPrefix(c.probe)
	}
	if err := c.configure(ctx, echoToken); err != nil {
		return c, err
	}
	c.progress("starting HAProxy in front of the nodes")
	if c.lb, err = startHAProxy(dir, c.nodes); err != nil {
		return c, err
	}
	if err := c.waitServing(ctx); err != nil {
		return c, err
	}
	return c, c.spendSmallKeys(ctx)
}

// newNode prepares node i: its data directory, links and environment.
func (c *cluster) newNode(i int) (*node, error) {
	gw, err := freePort()
	if err != nil {
		return nil, err
	}
	ad, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &node{idx: i, name: fmt.Sprintf("node-%d", i+1), bin: c.o.Binary,
		dir:     filepath.Join(c.dir, fmt.Sprintf("node-%d", i+1)),
		gateway: "127.0.0.1:" + strconv.Itoa(gw), admin: "127.0.0.1:" + strconv.Itoa(ad),
		logPath: filepath.Join(c.dir, fmt.Sprintf("node-%d.log", i+1))}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, err
	}
	if n.redisLink, err = newLink(c.redis.addr()); err != nil {
		return nil, err
	}
	if n.pgLink, err = newLink(c.db.host); err != nil {
		return nil, err
	}
	n.env = []string{
		"HOME=" + n.dir,
		"KEYGATE_DATABASE=" + c.db.urlVia(n.pgLink.Addr()),
		"KEYGATE_LIMITS_REDIS=redis://" + n.redisLink.Addr() + "/0",
		"KEYGATE_KEK=hashivault://chaos-kek",
		"VAULT_SERVER_URL=" + c.transit.url,
		"VAULT_SERVER_TOKEN=" + c.transit.token,
		"KEYGATE_AUDIT_WEBHOOK=http://" + c.audit.addr + "/audit",
		"KEYGATE_EGRESS_ALLOW=127.0.0.1/32",
		"KEYGATE_TRUSTED_PROXIES=127.0.0.1/32", // HAProxy, which sets X-Forwarded-For
		"KEYGATE_LOG_REQUESTS=false",
		"KEYGATE_SHUTDOWN_GRACE=10s",
	}
	if i == 2 {
		// node-3 also keeps its trail in a file, on a file system of its
		// own that the full-disk fault fills.
		if d, err := mountAuditDisk(filepath.Join(n.dir, "audit-disk")); err != nil {
			c.noDisk = err
		} else {
			n.disk = d
			n.env = append(n.env, "KEYGATE_AUDIT_FILE="+d.file())
		}
	}
	return n, nil
}

// adminClient talks to the admin API of node i.
func (c *cluster) adminClient(i int) (*adminclient.Client, error) {
	return adminclient.New("http://"+c.nodes[i].admin, c.cred)
}

// configure registers the providers, the routing, the passthrough service
// and the keys, through the first node.
func (c *cluster) configure(ctx context.Context, echoToken string) error {
	c.progress("registering providers, routing and keys through node-1")
	ac, err := c.adminClient(0)
	if err != nil {
		return err
	}
	for _, u := range c.ups {
		req := adminapi.CreateProviderRequest{Name: u.name, BaseURL: u.url, APIKey: u.key, Dialect: u.dialect}
		if u.dialect == "openai" {
			req.Models = []string{"gpt-*", "text-embedding-*"}
		} else {
			req.Models = []string{"claude-*"}
		}
		if _, err := ac.CreateProvider(ctx, req); err != nil {
			return fmt.Errorf("register provider %s: %w", u.name, err)
		}
	}
	if _, err := ac.PutSecret(ctx, "chaos/echo", secret.New(echoToken)); err != nil {
		return fmt.Errorf("store the passthrough service's credential: %w", err)
	}
	price := &config.ModelPrice{Input: priceInput, Output: priceOutput}
	embedPrice := &config.ModelPrice{Input: priceInput, Output: priceOutput}
	dep := func(name, provider, model string, p *config.ModelPrice) config.Deployment {
		return config.Deployment{Name: name, Provider: provider, Model: model, Price: p}
	}
	alias := func(deps ...string) config.Alias {
		return config.Alias{Strategy: "priority", Deployments: deps, AttemptTimeout: 2 * time.Second, Timeout: 20 * time.Second}
	}
	doc := adminapi.RoutingDocument{
		Routing: adminapi.DocumentRouting{
			Deployments: []config.Deployment{
				dep("chat-a", "openai-a", "gpt-4o-mini", price), dep("chat-b", "openai-b", "gpt-4o-mini", price),
				dep("claude-a", "anthropic-a", "claude-haiku-4-5", price), dep("claude-b", "anthropic-b", "claude-haiku-4-5", price),
				dep("embed-a", "openai-a", "text-embedding-3-small", embedPrice), dep("embed-b", "openai-b", "text-embedding-3-small", embedPrice),
			},
			Aliases: map[string]config.Alias{
				"chat": alias("chat-a", "chat-b"), "claude": alias("claude-a", "claude-b"), "embed": alias("embed-a", "embed-b"),
			},
		},
		Services: map[string]config.Service{
			"echo": {BaseURL: c.echo.url, Secret: "chaos/echo", Auth: "bearer", AllowPrivate: true},
		},
	}
	if _, err := ac.ApplyRouting(ctx, adminapi.ApplyRoutingRequest{Document: doc}); err != nil {
		return fmt.Errorf("apply the routing: %w", err)
	}
	short := c.o.Short
	// Half the limited keys are small, sized to run out in the steady
	// state before the first fault and refuse from then on (429, whatever
	// the faults: a node that saw a quota spent refuses it as spent while
	// Redis is away); the other half are ample, so the faults meet them
	// with room left: through a Redis outage they must be served from the
	// nodes' leases. (A small key with room left when Redis goes can only
	// be served what the leases hold, at most half of what is left: by
	// design, and not what this suite measures.)
	quota, budget := int64(12), int64(2_000)
	bigQuota, bigBudget := int64(100_000), int64(10_000_000)
	if short {
		quota, budget = 5, 600
	}
	quotaLimits := func(n int64) adminapi.Limits {
		return adminapi.Limits{Quotas: []adminapi.Quota{{Limit: n, Unit: adminapi.UnitRequests, Period: adminapi.PeriodTotal}}}
	}
	budgetLimits := func(n int64) adminapi.Limits {
		return adminapi.Limits{Budgets: []adminapi.Budget{{MicroUSD: n, Period: adminapi.PeriodTotal}}}
	}
	classes := []struct {
		class keyClass
		n     int
		lim   adminapi.Limits
		limit int64
	}{
		{plainKey, 8, adminapi.Limits{}, 0},
		{ratedKey, 4, adminapi.Limits{RPM: 30}, 0},
		{quotaKey, 2, quotaLimits(quota), quota},
		{quotaKey, 2, quotaLimits(bigQuota), bigQuota},
		{budgetKey, 2, budgetLimits(budget), budget},
		{budgetKey, 2, budgetLimits(bigBudget), bigBudget},
	}
	small := map[int64]bool{quota: true, budget: true}
	for _, cl := range classes {
		for i := range cl.n {
			name := fmt.Sprintf("chaos-%s-%d-%d", cl.class, cl.limit, i+1)
			k, err := ac.CreateKey(ctx, adminapi.CreateKeyRequest{Name: name, AllowServices: []string{"echo"}, Limits: cl.lim, ExpiresIn: "2d"})
			if err != nil {
				return fmt.Errorf("create key %s: %w", name, err)
			}
			c.keys.add(&apiKey{id: k.Key.ID, name: name, secret: k.Secret, class: cl.class, limit: cl.limit,
				small: (cl.class == quotaKey || cl.class == budgetKey) && small[cl.limit]})
		}
	}
	for _, k := range c.keys.snapshot()[:2] {
		c.holders = append(c.holders, &tokenHolder{key: k})
	}
	return nil
}

// spendSmallKeys spends the small quota and budget keys to their limit
// before the load starts, on every node directly until each refuses them:
// a node refused by Redis spends the lease it holds of the quota first, so
// one node's refusal does not mean the others have nothing left. From then
// on every node has seen them spent, and a refusal is the right answer for
// them whatever the faults.
func (c *cluster) spendSmallKeys(ctx context.Context) error {
	for _, k := range c.keys.snapshot() {
		if !k.small {
			continue
		}
		for round, tries := 0, 0; ; round++ {
			refused := 0
			for _, n := range c.nodes {
				code, body := c.chatAt(ctx, n.gateway, k.secret)
				switch code {
				case http.StatusOK:
					k.admitted.Add(1)
					k.spent.Add(costOf([]byte(body)))
				case http.StatusTooManyRequests:
					refused++
				default:
					if tries++; tries > 50 || ctx.Err() != nil {
						return fmt.Errorf("spending key %s to its limit: %d from %s: %s", k.name, code, n.name, body)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			if refused == len(c.nodes) {
				break
			}
			if round > int(k.limit)+50 {
				return fmt.Errorf("key %s with a limit of %d was still admitted after %d rounds", k.name, k.limit, round)
			}
		}
	}
	return nil
}

// waitServing waits until every node serves a plain key, directly and
// through the balancer (providers registered on one node reach the others
// through the change bus).
func (c *cluster) waitServing(ctx context.Context) error {
	k := c.keys.snapshot()[0]
	targets := []string{c.lb.addr}
	for _, n := range c.nodes {
		targets = append(targets, n.gateway)
	}
	for _, t := range targets {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := c.chatAt(ctx, t, k.secret)
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not serve a chat call after 30s: %d %s", t, code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// teardown stops everything the suite started and drops its database.
func (c *cluster) teardown() {
	c.lb.stop()
	for _, n := range c.nodes {
		if n.running() {
			_ = n.signal(sigterm, 20*time.Second)
		}
		n.redisLink.Close()
		n.pgLink.Close()
		if n.disk != nil {
			if err := n.disk.unmount(); err != nil {
				c.progress("could not unmount %s: %v; unmount it by hand", n.disk.dir, err)
			}
		}
	}
	if c.redis != nil {
		c.redis.stop()
	}
	for _, u := range c.ups {
		u.close()
	}
	if c.echo != nil {
		c.echo.close()
	}
	if c.audit != nil {
		c.audit.off()
	}
	if c.transit != nil {
		c.transit.close()
	}
	if c.db != nil {
		if err := c.db.drop(); err != nil {
			c.progress("could not drop database %s: %v; drop it by hand", c.db.name, err)
		}
	}
}
