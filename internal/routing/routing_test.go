package routing_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/routing"
	"github.com/keygate/keygate/internal/store"
)

func dep(name, provider, model string) routing.Entry {
	return routing.Entry{Kind: store.RoutingDeployment, Name: name, Source: routing.SourceDatabase, Deployment: &config.Deployment{Name: name, Provider: provider, Model: model}}
}

func alias(name string, deps ...string) routing.Entry {
	return routing.Entry{Kind: store.RoutingAlias, Name: name, Source: routing.SourceDatabase, Alias: &config.Alias{Deployments: deps}}
}

func service(name, secret string) routing.Entry {
	return routing.Entry{Kind: store.RoutingService, Name: name, Source: routing.SourceDatabase, Service: &config.Service{BaseURL: "https://api.example.com", Secret: secret, Auth: "bearer"}}
}

var file = routing.File{
	Routing: config.Routing{
		Deployments: []config.Deployment{{Name: "claude", Provider: "anthropic", Model: "claude-sonnet-4-5"}},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"claude"}}},
	},
	Services: map[string]config.Service{"github": {BaseURL: "https://api.github.com", Secret: "gh", Auth: "bearer"}},
}

// TestMerge: the file and the database combine; a database alias may use
// a file deployment; a name both define is refused, naming both places
// and how to resolve it.
func TestMerge(t *testing.T) {
	set, err := routing.Merge(file, []routing.Entry{dep("mini", "openai", "gpt-4o-mini"), alias("fast", "mini", "claude"), service("stripe", "stripe")})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Routing.Deployments) != 2 || len(set.Routing.Aliases) != 2 || len(set.Services) != 2 {
		t.Fatalf("merged: %+v", set)
	}
	if err := routing.Check(set); err != nil {
		t.Fatalf("check: %v", err)
	}
	_, err = routing.Merge(file, []routing.Entry{alias("smart", "claude")})
	var ce *routing.ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "routing.aliases") || !strings.Contains(err.Error(), "keygate route remove alias smart") {
		t.Fatalf("conflict: %v", err)
	}
	// An alias naming a deployment nobody declared is refused.
	set, _ = routing.Merge(file, []routing.Entry{alias("fast", "nope")})
	if err := routing.Check(set); err == nil || !strings.Contains(err.Error(), `names deployment "nope", which is not declared`) {
		t.Fatalf("dangling alias: %v", err)
	}
}

// TestDiffRoundTrip: a plan creates, updates and deletes exactly what
// differs, and stored specs read back as the same entries.
func TestDiffRoundTrip(t *testing.T) {
	current := []routing.Entry{dep("mini", "openai", "gpt-4o-mini"), alias("fast", "mini"), service("stripe", "stripe")}
	desired := []routing.Entry{dep("mini", "openai", "gpt-4.1-mini"), alias("fast", "mini"), service("slack", "slack")}
	plan := routing.Diff(current, desired)
	var got []string
	for _, c := range plan {
		got = append(got, c.Op+" "+c.Kind+" "+c.Name)
	}
	want := "update deployment mini|create service slack|delete service stripe"
	if strings.Join(got, "|") != want {
		t.Fatalf("plan %q, want %q", strings.Join(got, "|"), want)
	}
	after := routing.Apply(current, plan)
	if len(routing.Diff(after, desired)) != 0 {
		t.Fatalf("applying the plan leaves differences: %v", routing.Diff(after, desired))
	}
	for _, e := range desired {
		spec, err := e.Spec()
		if err != nil {
			t.Fatal(err)
		}
		back, err := routing.Decode(store.RoutingEntry{Kind: e.Kind, Name: e.Name, Spec: spec})
		if err != nil || !routing.Same(e, back) {
			t.Fatalf("%s: stored %s, read back %+v, %v", e.Key(), spec, back, err)
		}
	}
	a := alias("slow", "mini")
	a.Alias.Timeout = 90 * time.Second
	spec, _ := a.Spec()
	if !strings.Contains(string(spec), `"timeout":"1m30s"`) {
		t.Fatalf("alias spec %s: durations should read as the file writes them", spec)
	}
}

// TestBreaks: a change that leaves a key with no model it may reach, or
// none of the services it names, is found and names the key; a key that
// still reaches something, or reached nothing before, is not blamed.
func TestBreaks(t *testing.T) {
	providers := []store.Provider{{Name: "openai", Dialect: "openai", BaseURL: "https://api.openai.com/v1", Models: []string{"gpt-*"}}}
	before, err := routing.Merge(routing.File{}, []routing.Entry{dep("mini", "openai", "gpt-4o-mini"), alias("fast", "mini"), service("stripe", "stripe")})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := routing.Merge(routing.File{}, []routing.Entry{dep("mini", "openai", "gpt-4o-mini")})
	now := time.Now()
	past := now.Add(-time.Hour)
	keys := []store.Key{
		{ID: "key_alias", Name: "ci", Env: "live", AllowModels: []string{"fast"}},
		{ID: "key_any", Name: "laptop", Env: "live"},
		{ID: "key_gpt", Name: "gpt", Env: "live", AllowModels: []string{"gpt-4o"}},
		{ID: "key_prefixed", Name: "prefixed", Env: "live", AllowModels: []string{"openai/*"}},
		{ID: "key_revoked", Name: "old", Env: "live", AllowModels: []string{"fast"}, RevokedAt: &past},
		{ID: "key_stripe", Name: "billing", Env: "live", AllowServices: []string{"stripe"}},
		{ID: "key_none", Name: "none", Env: "live", AllowModels: []string{"claude-*"}},
	}
	got := routing.Breaks(keys, providers, before, after, now)
	var names []string
	for _, b := range got {
		names = append(names, b.KeyName+":"+b.What)
	}
	if strings.Join(names, ",") != "ci:model,billing:service" {
		t.Fatalf("breaks %v, want ci:model and billing:service", names)
	}
	if msg := got[0].String(); !strings.Contains(msg, `key "ci" (key_alias) would reach no model`) || !strings.Contains(msg, "alias fast") {
		t.Fatalf("message %q", msg)
	}
	// Keeping the alias with another deployment the key may use breaks nothing.
	after2, _ := routing.Merge(routing.File{}, []routing.Entry{dep("mini2", "openai", "gpt-4.1-mini"), alias("fast", "mini2"), service("stripe", "stripe")})
	if b := routing.Breaks(keys, providers, before, after2, now); len(b) != 0 {
		t.Fatalf("breaks %v", b)
	}
	// A key of another environment than the deployment's loses it too.
	envDep := dep("mini", "openai", "gpt-4o-mini")
	envDep.Deployment.Env = "test"
	after3, _ := routing.Merge(routing.File{}, []routing.Entry{envDep, alias("fast", "mini"), service("stripe", "stripe")})
	if b := routing.Breaks(keys[:1], providers, before, after3, now); len(b) != 1 {
		t.Fatalf("a deployment moved to another environment: breaks %v", b)
	}
}
