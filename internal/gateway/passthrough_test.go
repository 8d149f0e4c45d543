package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// recordingAPI is a plain HTTP API that records what reaches it.
type recordingAPI struct {
	mu   sync.Mutex
	seen []*http.Request
	body []string
	// answer writes the response; nil answers 200 {"ok":true}.
	answer func(w http.ResponseWriter, r *http.Request)
}

func (a *recordingAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.seen = append(a.seen, r.Clone(r.Context()))
	a.body = append(a.body, string(b))
	a.mu.Unlock()
	if a.answer != nil {
		a.answer(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok":true}`))
}

func (a *recordingAPI) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

// passthroughGateway serves a gateway with one passthrough service "svc"
// whose credential is cred, in front of api.
func passthroughGateway(t *testing.T, l *limited, api http.Handler, c config.Service, cred string) (*gw, *route.Service) {
	t.Helper()
	srv := serve(t, api)
	if c.BaseURL == "" {
		c.BaseURL = srv.URL + "/api"
	}
	svcs, err := route.ParseServices(map[string]config.Service{"svc": c})
	if err != nil {
		t.Fatal(err)
	}
	svcs["svc"].Key = secret.New(cred)
	l.SetTable(route.NewTable([]*route.Upstream{l.up.upstream("openai", "openai", "gpt-*")}).WithServices(svcs))
	return l.gw, svcs["svc"]
}

// serviceKey issues a key with limits lim that may reach the service svc.
func (l *limited) serviceKey(t *testing.T, name string, lim adminapi.Limits) string {
	return l.keys.issue(name, func(k *store.Key) { k.Limits = limitsJSON(t, lim); k.AllowServices = []string{"svc"} })
}

// TestPassthroughInjectsTheServiceCredential: /proxy/svc/... reaches the
// service's base URL with its credential where it wants it, and without
// the client's keygate key; the answer comes back as sent.
func TestPassthroughInjectsTheServiceCredential(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	api := &recordingAPI{}
	cred := upstreamKey(t, "svc")
	g, _ := passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "header", AuthName: "X-Service-Key", AllowPrivate: true,
		Headers: map[string]string{"Api-Version": "2026-01-01"}}, cred)
	key := l.serviceKey(t, "caller", adminapi.Limits{})
	a := send(t, "PUT", g.url+"/proxy/svc/v1/items/42?expand=all", `{"name":"x"}`, "Authorization", "Bearer "+key, "X-Service-Key", "client-chosen")
	if a.status != 200 || string(a.body) != `{"ok":true}` {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	r := api.seen[0]
	if len(r.TransferEncoding) > 0 {
		t.Fatalf("a body of known length went upstream as %v", r.TransferEncoding)
	}
	if r.Method != "PUT" || r.URL.Path != "/api/v1/items/42" || r.URL.RawQuery != "expand=all" || api.body[0] != `{"name":"x"}` {
		t.Fatalf("upstream saw %s %s?%s %q", r.Method, r.URL.Path, r.URL.RawQuery, api.body[0])
	}
	if r.Header.Get("X-Service-Key") != cred || r.Header.Get("Api-Version") != "2026-01-01" {
		t.Fatalf("upstream credential %q, version %q", r.Header.Get("X-Service-Key"), r.Header.Get("Api-Version"))
	}
	for name, vals := range r.Header {
		if strings.Contains(strings.Join(vals, " "), key) {
			t.Fatalf("the keygate key reached the service in %s", name)
		}
	}
}

// TestPassthroughScopesAndLimits: services are deny-by-default (a key
// made for models, with any model allowance, reaches none); a key's path
// and method rules and request limits hold for services as for model APIs;
// every refusal happens before anything reaches the service.
func TestPassthroughScopesAndLimits(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	api := &recordingAPI{}
	g, _ := passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "bearer", AllowPrivate: true}, upstreamKey(t, "svc"))
	readOnly := l.keys.issue("reader", func(k *store.Key) { k.AllowPaths = []string{"GET /proxy/svc/v1/*"}; k.AllowServices = []string{"svc"} })
	if a := send(t, "GET", g.url+"/proxy/svc/v1/items", "", "Authorization", "Bearer "+readOnly); a.status != 200 {
		t.Fatalf("an allowed GET: %d %s", a.status, a.body)
	}
	if r := api.seen[0]; r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		t.Fatalf("a GET without a body went upstream with length %d, encoding %v", r.ContentLength, r.TransferEncoding)
	}
	if _, code := openAIError(t, send(t, "DELETE", g.url+"/proxy/svc/v1/items/1", "", "Authorization", "Bearer "+readOnly), 403); code != "path_not_allowed" {
		t.Fatalf("a DELETE by a read-only key: %q", code)
	}
	for name, edit := range map[string]func(*store.Key){
		"llm-only":     func(k *store.Key) { k.AllowProviders = []string{"openai"} },
		"model-scoped": func(k *store.Key) { k.AllowModels = []string{"gpt-4o*"} }, // the README's example key
		"unscoped":     nil,
		"other-svc":    func(k *store.Key) { k.AllowServices = []string{"github"} },
	} {
		other := l.keys.issue(name, edit)
		if _, code := openAIError(t, send(t, "GET", g.url+"/proxy/svc/v1/items", "", "Authorization", "Bearer "+other), 403); code != "service_not_allowed" {
			t.Fatalf("key %s, which names no service svc: %q", name, code)
		}
	}
	limited := l.serviceKey(t, "rpm2", adminapi.Limits{RPM: 2})
	for range 2 {
		if a := send(t, "GET", g.url+"/proxy/svc/v1/items", "", "Authorization", "Bearer "+limited); a.status != 200 {
			t.Fatalf("within the limit: %d", a.status)
		}
	}
	if _, code := openAIError(t, send(t, "GET", g.url+"/proxy/svc/v1/items", "", "Authorization", "Bearer "+limited), 429); code != "rate_limit_exceeded" {
		t.Fatalf("over the limit: %q", code)
	}
	if _, code := openAIError(t, send(t, "GET", g.url+"/proxy/svc/v1/items", ""), 401); code != "missing_api_key" {
		t.Fatalf("without a key: %q", code)
	}
	if _, code := openAIError(t, send(t, "GET", g.url+"/proxy/nope/v1/items", "", "Authorization", "Bearer "+readOnly), 404); code != "unknown_service" {
		t.Fatalf("an unknown service: %q", code)
	}
	if api.count() != 3 {
		t.Fatalf("the service saw %d requests, want the 3 allowed", api.count())
	}
}

// TestPassthroughRefusesEscapesAndPrivateAddresses: a path that would
// leave the service's base path is refused; a service on a private
// address is not contacted unless it allows it.
func TestPassthroughRefusesEscapesAndPrivateAddresses(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	api := &recordingAPI{}
	g, _ := passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "bearer", AllowPrivate: true}, upstreamKey(t, "svc"))
	key := l.serviceKey(t, "caller", adminapi.Limits{})
	for _, p := range []string{"/proxy/svc/v1/%2e%2e/%2e%2e/admin", "/proxy/svc/v1%2f..%2fadmin", "/proxy/svc/v1/..%5cadmin"} {
		if _, code := openAIError(t, send(t, "GET", g.url+p, "", "Authorization", "Bearer "+key), 400); code != "invalid_path" {
			t.Errorf("%s: %q", p, code)
		}
	}
	// The same service without allow_private: loopback is refused at dial time.
	g, _ = passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "bearer"}, upstreamKey(t, "svc"))
	msg, code := openAIError(t, send(t, "GET", g.url+"/proxy/svc/v1/items", "", "Authorization", "Bearer "+key), 502)
	if code != "upstream_blocked" || strings.Contains(msg, "127.0.0.1") {
		t.Fatalf("a private service: %q %q", code, msg)
	}
	if api.count() != 0 {
		t.Fatalf("the service saw %d requests", api.count())
	}
}

// TestPassthroughScrubsEchoedCredential: a service that echoes the
// credential in an error body, a header or a redirect does not hand it to
// the client.
func TestPassthroughScrubsEchoedCredential(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	api := &recordingAPI{answer: func(w http.ResponseWriter, r *http.Request) {
		cred := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("X-Debug", "you sent "+cred)
		w.Header().Set("Location", "https://elsewhere.example/?token="+cred)
		w.WriteHeader(401)
		w.Write([]byte(`{"error":"bad key ` + cred + `"}`))
	}}
	cred := upstreamKey(t, "svc")
	g, _ := passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "bearer", AllowPrivate: true}, cred)
	key := l.serviceKey(t, "caller", adminapi.Limits{})
	a := send(t, "GET", g.url+"/proxy/svc/v1/me", "", "Authorization", "Bearer "+key)
	if a.status != 401 {
		t.Fatalf("status %d", a.status)
	}
	all := string(a.body)
	for _, v := range a.header {
		all += strings.Join(v, " ")
	}
	if strings.Contains(all, cred) {
		t.Fatalf("the service credential reached the client: %s", all)
	}
}

// TestPassthroughUnavailableService: a service whose credential is not in
// the vault answers 503 with Retry-After, and names neither the vault
// secret nor how to store it: that is for the operator's log.
func TestPassthroughUnavailableService(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	api := &recordingAPI{}
	_, svc := passthroughGateway(t, l, api, config.Service{Secret: "payments/stripe", Auth: "basic", AllowPrivate: true}, "")
	svc.Unavailable = `its credential, vault secret "payments/stripe", does not exist; store it with keygate secret put payments/stripe`
	key := l.serviceKey(t, "caller", adminapi.Limits{})
	a := send(t, "GET", l.url+"/proxy/svc/v1/charges", "", "Authorization", "Bearer "+key)
	msg, code := openAIError(t, a, 503)
	if code != "service_unavailable" || strings.Contains(msg, "payments/stripe") || a.header.Get("Retry-After") == "" || api.count() != 0 {
		t.Fatalf("%q %q, %d requests upstream", code, msg, api.count())
	}
}

// TestPassthroughRefusesEchoAndTunnelMethods: TRACE and TRACK would have
// the service echo the injected credential back; CONNECT would make keygate
// a tunnel. None of them reaches the service.
func TestPassthroughRefusesEchoAndTunnelMethods(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	api := &recordingAPI{answer: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "message/http")
		r.Write(w) // a TRACE answer: the request as received
	}}
	g, _ := passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "bearer", AllowPrivate: true}, upstreamKey(t, "svc"))
	key := l.serviceKey(t, "caller", adminapi.Limits{})
	for _, m := range []string{"TRACE", "TRACK", "CONNECT"} {
		if _, code := openAIError(t, send(t, m, g.url+"/proxy/svc/v1/items", "", "Authorization", "Bearer "+key), http.StatusMethodNotAllowed); code != "method_not_allowed" {
			t.Fatalf("%s: %q", m, code)
		}
	}
	if api.count() != 0 {
		t.Fatalf("the service saw %d requests", api.count())
	}
}
