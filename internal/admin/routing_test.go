package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/routing"
	"github.com/keygate/keygate/internal/store"
)

// routingHarness is an admin API that keeps routing in its database, with
// a configuration file defining deployment "claude", alias "smart" and
// service "github", and provider "openai" registered.
func routingHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, func(o *admin.Options) {
		o.Routing = o.Store.(admin.RoutingStore)
		o.RoutingFile = routing.File{
			Routing: config.Routing{
				Deployments: []config.Deployment{{Name: "claude", Provider: "openai", Model: "gpt-4o"}},
				Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"claude"}}},
			},
			Services: map[string]config.Service{"github": {BaseURL: "https://api.github.com", Secret: "gh", Auth: "bearer"}},
		}
	})
	if w := h.do("POST", "/api/v1/providers", `{"name":"openai","base_url":"https://api.openai.com/v1","api_key":"test-upstream-key-not-real","models":["gpt-*"]}`); w.Code != http.StatusCreated {
		t.Fatalf("add provider: %d %s", w.Code, w.Body)
	}
	return h
}

// TestRoutingAPI: entries are created, shown beside the file's, replaced
// and removed; bad input, names the file holds and unregistered providers
// are refused with a message saying what to do, and change nothing.
func TestRoutingAPI(t *testing.T) {
	h := routingHarness(t)
	if w := h.do("POST", "/api/v1/routing/deployments", `{"name":"mini","deployment":{"provider":"openai","model":"gpt-4o-mini"}}`); w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	w := h.do("POST", "/api/v1/routing/aliases", `{"name":"fast","alias":{"deployments":["mini","claude"],"strategy":"weighted","timeout":"20s"}}`)
	var plan adminapi.RoutingPlan
	decode(t, w, &plan)
	if w.Code != http.StatusCreated || !plan.Applied || len(plan.Changes) != 1 || plan.Changes[0].Op != "create" || plan.Generation != 2 {
		t.Fatalf("create alias: %d %+v", w.Code, plan)
	}
	changes := h.changes()

	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
		words              []string
	}{
		{"POST", "/api/v1/routing/aliases", `{"name":"smart","alias":{"deployments":["mini"]}}`, 409, "defined_in_file", []string{`alias "smart" is defined in keygate's configuration file`}},
		{"DELETE", "/api/v1/routing/services/github", "", 409, "defined_in_file", []string{"configuration file"}},
		{"POST", "/api/v1/routing/aliases", `{"name":"fast","alias":{"deployments":["mini"]}}`, 409, "conflict", []string{"already exists", "--replace"}},
		{"POST", "/api/v1/routing/aliases", `{"name":"broken","alias":{"deployments":["nope"]}}`, 400, "bad_request", []string{`names deployment "nope", which is not declared`}},
		{"POST", "/api/v1/routing/aliases", `{"name":"odd","alias":{"deployments":["mini"],"strategy":"random"}}`, 400, "bad_request", []string{"random"}},
		{"POST", "/api/v1/routing/deployments", `{"name":"elsewhere","deployment":{"provider":"mistral","model":"m"}}`, 400, "bad_request", []string{`provider "mistral", which is not registered`, "keygate provider add"}},
		{"POST", "/api/v1/routing/deployments", `{"name":"a/b","deployment":{"provider":"openai","model":"m"}}`, 400, "bad_request", []string{"deployment name"}},
		{"POST", "/api/v1/routing/deployments", `{"name":"two","deployment":{"provider":"openai","model":"m"},"alias":{"deployments":["x"]}}`, 400, "bad_request", []string{"exactly one"}},
		{"POST", "/api/v1/routing/services", `{"name":"s","service":{"base_url":"ftp://x","secret":"s","auth":"bearer"}}`, 400, "bad_request", []string{"base_url"}},
		{"POST", "/api/v1/routing/things", `{}`, 404, "not_found", []string{"deployments, aliases or services"}},
		{"DELETE", "/api/v1/routing/deployments/mini", "", 400, "bad_request", []string{`alias "fast" names deployment "mini"`}},
		{"DELETE", "/api/v1/routing/aliases/nothing", "", 404, "not_found", []string{"nothing"}},
		{"PUT", "/api/v1/routing/aliases/fast", `{"name":"other","alias":{"deployments":["mini"]}}`, 400, "bad_request", []string{"does not match"}},
	} {
		w := h.do(c.method, c.path, c.body)
		wantError(t, w, c.status, c.code, c.words...)
	}
	if h.changes() != changes {
		t.Fatal("a refused change reloaded routing")
	}

	var list adminapi.RoutingList
	decode(t, h.do("GET", "/api/v1/routing", ""), &list)
	var got []string
	for _, e := range list.Entries {
		got = append(got, e.Kind+" "+e.Name+" "+e.Source)
	}
	want := "deployment claude file|deployment mini database|alias fast database|alias smart file|service github file"
	if strings.Join(got, "|") != want || list.Generation != 2 {
		t.Fatalf("list: %q at %d, want %q at 2", strings.Join(got, "|"), list.Generation, want)
	}
	var one adminapi.RoutingEntry
	decode(t, h.do("GET", "/api/v1/routing/aliases/fast", ""), &one)
	if one.Alias == nil || one.Alias.Timeout.String() != "20s" || one.Alias.Strategy != "weighted" || one.UpdatedBy == "" {
		t.Fatalf("show: %+v", one)
	}
	// Replace, then the same again changes nothing.
	w = h.do("PUT", "/api/v1/routing/aliases/fast", `{"alias":{"deployments":["mini"]}}`)
	decode(t, w, &plan)
	if w.Code != 200 || len(plan.Changes) != 1 || plan.Changes[0].Op != "update" || plan.Changes[0].Before == nil {
		t.Fatalf("replace: %d %+v", w.Code, plan)
	}
	w = h.do("PUT", "/api/v1/routing/aliases/fast", `{"alias":{"deployments":["mini"]}}`)
	decode(t, w, &plan)
	if len(plan.Changes) != 0 || plan.Applied {
		t.Fatalf("an unchanged replace: %+v", plan)
	}
	if w := h.do("DELETE", "/api/v1/routing/aliases/fast", ""); w.Code != 200 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := h.do("GET", "/api/v1/routing/aliases/fast", ""); w.Code != 404 {
		t.Fatalf("deleted entry: %d", w.Code)
	}
}

// TestRoutingApply: a document becomes the database's routing (create,
// update, delete what differs); a dry run shows the plan and the keys it
// would break and changes nothing; a breaking apply is refused naming the
// key; applying the same document again is no change.
func TestRoutingApply(t *testing.T) {
	h := routingHarness(t)
	sum := h.hasher.Hash("kg_test_alias_only")
	if err := h.st.CreateKey(t.Context(), store.Key{ID: "key_alias_only", Name: "alias-only", Env: "test", Prefix: "kg_test_y", Hash: sum[:], CreatedAt: h.now, AllowModels: []string{"fast"}}); err != nil {
		t.Fatal(err)
	}
	doc := `{"document":{"routing":{"deployments":[{"name":"mini","provider":"openai","model":"gpt-4o-mini"}],"aliases":{"fast":{"deployments":["mini"]}}},"services":{"stripe":{"base_url":"https://api.stripe.com","secret":"stripe","auth":"bearer"}}}}`
	w := h.do("POST", "/api/v1/routing/apply", doc)
	var plan adminapi.RoutingPlan
	decode(t, w, &plan)
	if w.Code != 200 || !plan.Applied || len(plan.Changes) != 3 || len(plan.Warnings) != 1 || !strings.Contains(plan.Warnings[0], "keygate secret put stripe") {
		t.Fatalf("apply: %d %+v", w.Code, plan)
	}
	decode(t, h.do("POST", "/api/v1/routing/apply", doc), &plan)
	if plan.Applied || len(plan.Changes) != 0 {
		t.Fatalf("applying the same document again: %+v", plan)
	}
	// Dropping the alias leaves key alias-only with no model.
	smaller := `{"document":{"routing":{"deployments":[{"name":"mini","provider":"openai","model":"gpt-4.1-mini"}]}},"dry_run":true}`
	w = h.do("POST", "/api/v1/routing/apply", smaller)
	decode(t, w, &plan)
	var ops []string
	for _, c := range plan.Changes {
		ops = append(ops, c.Op+" "+c.Kind+" "+c.Name)
	}
	if w.Code != 200 || plan.Applied || strings.Join(ops, ",") != "update deployment mini,delete alias fast,delete service stripe" ||
		len(plan.Breaks) != 1 || !strings.Contains(plan.Breaks[0], `key "alias-only"`) {
		t.Fatalf("dry run: %d %v %+v", w.Code, ops, plan)
	}
	var list adminapi.RoutingList
	decode(t, h.do("GET", "/api/v1/routing", ""), &list)
	if list.Generation != 1 {
		t.Fatalf("a dry run changed the routing: generation %d", list.Generation)
	}
	w = h.do("POST", "/api/v1/routing/apply", strings.Replace(smaller, `"dry_run":true`, `"dry_run":false`, 1))
	wantError(t, w, http.StatusConflict, "would_break", `key "alias-only"`, "would reach no model", "--force")
	w = h.do("POST", "/api/v1/routing/apply", strings.Replace(smaller, `"dry_run":true`, `"force":true`, 1))
	decode(t, w, &plan)
	if w.Code != 200 || !plan.Applied || plan.Generation != 2 {
		t.Fatalf("forced apply: %d %+v", w.Code, plan)
	}
	// A document naming what the file defines is refused.
	w = h.do("POST", "/api/v1/routing/apply", `{"document":{"services":{"github":{"base_url":"https://api.github.com","secret":"gh","auth":"bearer"}}}}`)
	wantError(t, w, http.StatusConflict, "conflict", `service "github" is defined in keygate's configuration file`)
}

// TestRoutingHealthAPI: GET /routing/health answers this node's breakers
// and upstream errors to a role that may read providers, names the node,
// and refuses a role that may not; without routing it says there is none.
func TestRoutingHealthAPI(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC)
	h := newHarness(t, func(o *admin.Options) {
		o.Node = "node_0123456789abcdef"
		o.RoutingHealth = func() []adminapi.AliasHealth {
			return []adminapi.AliasHealth{{Name: "smart", Strategy: "priority", Deployments: []adminapi.DeploymentHealth{
				{Name: "primary", Provider: "flaky", Model: "gpt-4o-mini", Breaker: "open", Failures: 2,
					Errors: []adminapi.UpstreamError{{At: at, Status: 503, Reason: "the provider answered Service Unavailable"}}},
				{Name: "backup", Provider: "steady", Model: "gpt-4o-mini", Breaker: "closed", Errors: []adminapi.UpstreamError{}},
			}}}
		}
	})
	var got adminapi.RoutingHealth
	decode(t, h.do("GET", "/api/v1/routing/health", ""), &got)
	if got.Node != "node_0123456789abcdef" || len(got.Aliases) != 1 || len(got.Aliases[0].Deployments) != 2 {
		t.Fatalf("routing health: %+v", got)
	}
	if d := got.Aliases[0].Deployments[0]; d.Breaker != "open" || len(d.Errors) != 1 || d.Errors[0].Status != 503 || !d.Errors[0].At.Equal(at) {
		t.Fatalf("the failing deployment: %+v", d)
	}

	h.addTeam("alpha", "")
	for _, role := range []string{rbac.Developer, rbac.Viewer, rbac.TeamAdmin} {
		p := h.addPerson("p-"+role, store.UserPerson, role, map[string]string{"alpha": role}, "")
		wantError(t, h.as(p, "GET", "/api/v1/routing/health", ""), http.StatusForbidden, "forbidden")
	}
	auditor := h.addPerson("audrey", store.UserPerson, rbac.Auditor, nil, "")
	h.asStatus(auditor, "GET", "/api/v1/routing/health", "", http.StatusOK)
	if w := h.call("GET", "/api/v1/routing/health", "", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("without a credential: %d %s", w.Code, w.Body)
	}

	none := newHarness(t)
	wantError(t, none.do("GET", "/api/v1/routing/health", ""), http.StatusNotImplemented, "not_implemented", "no model routing")
}
