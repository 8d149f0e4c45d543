package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/store"
)

// adminCall sends one admin API request to a node and returns the status and body.
func adminCall(t *testing.T, n *Node, cred, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.Listening().Admin+adminapi.Prefix+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// chatModel sends one chat completion for model and returns the status
// and the model the answer names.
func chatModel(t *testing.T, n *Node, key, model string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.Listening().Gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Model string `json:"model"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Model
}

// within polls cond until it holds, failing the test when it has not
// held by the deadline d after start.
func within(t *testing.T, start time.Time, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v of the change", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s: %v after the change", what, time.Since(start).Round(time.Millisecond))
}

// TestRoutingLiveAcrossNodes: two nodes share one database (SQLite file,
// and PostgreSQL when configured). A deployment and alias added through
// node A's admin API are served by node B within a second, though B's
// provider refresh is an hour away: B follows the routing generation. A
// removal that would leave a key with no model is refused naming the key,
// is made with force, and B stops serving the alias within a second. Every
// change is on the audit trail.
func TestRoutingLiveAcrossNodes(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			dir := t.TempDir()
			url := db.url(t)
			if url == "" {
				url = "sqlite://" + filepath.Join(dir, "shared.db")
			}
			cfgA := testConfig(filepath.Join(dir, "a"), url)
			cfgA.MasterKeyFile = filepath.Join(dir, "master.key")
			cfgA.ProviderRefresh = time.Hour
			cfgB := cfgA
			cfgB.DataDir = filepath.Join(dir, "b")
			a := startNode(t, cfgA, nil)
			cred := adminCredential.FindString(a.stdout.String())
			if cred == "" {
				t.Fatalf("no admin credential:\n%s", a.stdout.String())
			}
			code, body := adminCall(t, a.Node, cred, "POST", "/providers",
				`{"name":"up","base_url":"`+fakeUpstream(t)+`","api_key":"`+fakeUpstreamKey+`","models":["gpt-*"]}`)
			if code != http.StatusCreated {
				t.Fatalf("add provider: %d %s", code, body)
			}
			b := startNode(t, cfgB, nil)
			_, key := addKey(t, b.Node, "fast-only", func(k *store.Key) { k.AllowModels = []string{"fast"} })
			if code, _ := chatModel(t, b.Node, key, "fast"); code == http.StatusOK {
				t.Fatal("alias fast served before it was added")
			}

			code, body = adminCall(t, a.Node, cred, "POST", "/routing/deployments", `{"name":"mini","deployment":{"provider":"up","model":"gpt-4o-mini"}}`)
			if code != http.StatusCreated {
				t.Fatalf("add deployment: %d %s", code, body)
			}
			code, body = adminCall(t, a.Node, cred, "POST", "/routing/aliases", `{"name":"fast","alias":{"deployments":["mini"]}}`)
			if code != http.StatusCreated {
				t.Fatalf("add alias: %d %s", code, body)
			}
			added := time.Now()
			within(t, added, time.Second, "node B serves the alias added through node A", func() bool {
				code, model := chatModel(t, b.Node, key, "fast")
				return code == http.StatusOK && model == "gpt-4o-mini"
			})

			// Removing the alias would leave the key with no model.
			code, body = adminCall(t, b.Node, cred, "DELETE", "/routing/aliases/fast", "")
			if code != http.StatusConflict || !strings.Contains(body, `key \"fast-only\" (key_fast-only) would reach no model`) || !strings.Contains(body, "alias fast") {
				t.Fatalf("a removal that breaks a key: %d %s", code, body)
			}
			if code, _ := chatModel(t, a.Node, key, "fast"); code != http.StatusOK {
				t.Fatalf("the refused removal changed routing: %d", code)
			}
			code, body = adminCall(t, b.Node, cred, "DELETE", "/routing/aliases/fast?force=true", "")
			if code != http.StatusOK {
				t.Fatalf("forced removal: %d %s", code, body)
			}
			removed := time.Now()
			within(t, removed, time.Second, "node A stops serving the alias removed through node B", func() bool {
				code, _ := chatModel(t, a.Node, key, "fast")
				return code != http.StatusOK
			})

			// A node whose file defines a name the database holds refuses
			// to start, naming both places.
			cfgC := cfgA
			cfgC.DataDir = filepath.Join(dir, "c")
			cfgC.Routing = config.Routing{Deployments: []config.Deployment{{Name: "mini", Provider: "up", Model: "gpt-4o"}}}
			if n, err := Build(context.Background(), cfgC, io.Discard, io.Discard); err == nil {
				_ = n.Shutdown(context.Background())
				t.Fatal("a node started with a file deployment the database also defines")
			} else if !strings.Contains(err.Error(), `deployment "mini" is defined in the configuration file (routing.deployments) and in the database`) {
				t.Fatalf("conflicting start: %v", err)
			}

			waitFor(t, "the changes on the audit trail", func() bool {
				code, body := adminCall(t, a.Node, cred, "GET", "/audit/events?type=routing.change", "")
				return code == http.StatusOK && strings.Count(body, `"routing.change"`) == 3 && strings.Contains(body, "forced_breaks")
			})
		})
	}
}
