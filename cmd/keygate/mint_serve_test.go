package main

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/secret"
)

// mintedServe starts keygate (looking for due work every 200ms) and a
// fake OpenAI admin API, and mints provider openai with extra flags.
func mintedServe(t *testing.T, flags ...string) (*instance, *fakecloud.OpenAIAdmin, func(stream bool) (int, string)) {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Sources.Poll = 200 * time.Millisecond
	in := start(t, cfg, "")
	fake := &fakecloud.OpenAIAdmin{AdminKey: "fake-openai-admin-key-" + t.Name(), Project: "proj_fake"}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	in.mustCLI(map[string]string{"OPENAI_ADMIN_KEY": fake.AdminKey}, "", append([]string{"provider", "mint", "openai", "--openai-project", fake.Project,
		"--admin-key-env", "OPENAI_ADMIN_KEY", "--openai-admin-url", srv.URL, "--base-url", srv.URL + "/v1", "--models", "gpt-*"}, flags...)...)
	key := in.createKey("--name", "minted-app")
	chat := func(stream bool) (int, string) {
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]`
		if stream {
			body += `,"stream":true`
		}
		return postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, body+"}")
	}
	return in, fake, chat
}

// until waits, for up to 20s, for cond.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for " + what)
		}
	}
}

// auditHas reports whether the audit trail holds an event of type typ
// whose resource, reasons or fields contain each of want ("field=value"
// for a field).
func auditHas(in *instance, typ string, want ...string) bool {
	var evs struct {
		Events []struct {
			Resource string            `json:"resource"`
			Reasons  []string          `json:"reasons"`
			Fields   map[string]string `json:"fields"`
		} `json:"events"`
	}
	decodeJSON(in.t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", typ, "--limit", "1000"), &evs)
next:
	for _, ev := range evs.Events {
		for _, w := range want {
			k, v, isField := strings.Cut(w, "=")
			if isField && ev.Fields[k] != v || !isField && !strings.Contains(ev.Resource+" "+strings.Join(ev.Reasons, " "), w) {
				continue next
			}
		}
		return true
	}
	return false
}

// TestMintedKeyRotatesInsideServe: keygate serve rotates a minted key on
// its schedule, with no command run, while a streaming request through the
// old key is in flight, which finishes; a new request uses the new key;
// the old service account is deleted upstream after the overlap; both
// steps are on the audit trail; mint-schedule changes the schedule (off
// here). No real OpenAI is called.
func TestMintedKeyRotatesInsideServe(t *testing.T) {
	in, fake, chat := mintedServe(t, "--rotate-every", "4s", "--overlap", "2s")
	if code, body := chat(false); code != 200 {
		t.Fatalf("with the minted key: %d %s", code, body)
	}
	first := fake.Keys()

	release := fake.HoldNext()
	done := make(chan [2]string, 1)
	go func() { c, b := chat(true); done <- [2]string{strconv.Itoa(c), b} }()
	until(t, "the request to reach the upstream", func() bool { return fake.Held() == 1 })
	fake.StopHolding()

	until(t, "keygate serve to rotate on schedule", func() bool { return fake.Live() == 2 })
	in.mustCLI(nil, "", "provider", "mint-schedule", "openai", "--rotate-every", "off")
	if code, body := chat(false); code != 200 {
		t.Fatalf("a new request after the rotation: %d %s", code, body)
	}
	close(release)
	if res := <-done; res[0] != "200" || !strings.Contains(res[1], fakecloud.ReplyText) || !strings.Contains(res[1], "[DONE]") {
		t.Fatalf("the request in flight during the rotation: %s %s", res[0], res[1])
	}

	until(t, "the old service account to be deleted after the overlap", func() bool { return len(fake.Deleted()) == 1 })
	if keys := fake.Keys(); len(keys) != 1 || keys[0] == first[0] {
		t.Fatalf("after the overlap only the new key lives: %d keys", len(keys))
	}
	if code, body := chat(false); code != 200 {
		t.Fatalf("the new key serves after the old one is gone: %d %s", code, body)
	}
	until(t, "the rotation and the deletion on the audit trail", func() bool {
		return auditHas(in, "provider.minted_key_rotated", "reason=schedule", "provider:openai") &&
			auditHas(in, "provider.minted_key_deleted", "reason=overlap_ended")
	})
	// The schedule is off: past the old due time nothing more is minted.
	time.Sleep(4500 * time.Millisecond)
	if fake.Live() != 1 || len(fake.Deleted()) != 1 {
		t.Fatalf("rotated again with the schedule off: live %d, deleted %d", fake.Live(), len(fake.Deleted()))
	}
	if strings.Contains(in.stderr.String(), fake.AdminKey) || strings.Contains(in.stderr.String(), fake.Keys()[0]) {
		t.Fatal("a key reached keygate's log")
	}
}

// TestMintedKeyLeakRotates: a minted key found in a request body (the
// outbound check refuses it) is rotated at once by keygate serve, with an
// alert and an audit event; the same key found again is not rotated twice;
// a leak report of the new key through the admin API rotates it too.
func TestMintedKeyLeakRotates(t *testing.T) {
	in, fake, chat := mintedServe(t)
	if code, body := chat(false); code != 200 {
		t.Fatalf("with the minted key: %d %s", code, body)
	}
	leaked := fake.Keys()[0]
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"my key is ` + leaked + `"}]}`
	careless := in.createKey("--name", "careless")
	// The outbound check learns the minted key as the vault changes (within a second or so).
	until(t, "the outbound check to refuse the provider's key", func() bool {
		code, answer := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", careless, body)
		if strings.Contains(answer, leaked) {
			t.Fatal("the key was echoed")
		}
		return code == 400 && strings.Contains(answer, "credential_in_request")
	})
	until(t, "keygate serve to rotate the leaked key", func() bool { return fake.Live() == 2 })
	until(t, "the rotation and the alert on the audit trail", func() bool {
		return auditHas(in, "provider.minted_key_rotated", "reason=leak", "found=found_in_traffic") &&
			auditHas(in, "alert", "minted_key_leaked", "provider openai", "after the overlap (5m0s)") // a leaked key's overlap is capped
	})
	if code, body := chat(false); code != 200 {
		t.Fatalf("the new key serves: %d %s", code, body)
	}
	// Found again (the old value, by a node whose check had not moved on):
	// the key made since is not replaced.
	postJSON(t, in.addrs.Gateway+"/v1/chat/completions", in.createKey("--name", "careless-2"), body)
	time.Sleep(time.Second)
	if fake.Live() != 2 {
		t.Fatalf("the leaked key was rotated twice: %d live", fake.Live())
	}

	// A leak report of the current key, as GitHub's or a person's.
	var current string
	for _, k := range fake.Keys() {
		if k != leaked {
			current = k
		}
	}
	c, err := adminclient.New(in.addrs.Admin, secret.New(in.admin))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ReportLeak(context.Background(), secret.New(current), "https://paste.example/abc")
	if err != nil || !out.TruePositive || out.KeyName != "provider:openai" || out.Action != "rotating" {
		t.Fatalf("report of the provider's key: %+v %v", out, err)
	}
	until(t, "the reported key to be rotated", func() bool { return fake.Live() == 3 })
	until(t, "the report's rotation on the audit trail", func() bool {
		return auditHas(in, "provider.minted_key_rotated", "found=leak_report") && auditHas(in, "key.leak_reported", "provider:openai")
	})
	for _, k := range fake.Keys() {
		if strings.Contains(in.stderr.String(), k) {
			t.Fatal("a minted key reached keygate's log")
		}
	}
}

// TestProviderMintOpenRouter: keygate provider mint with an OpenRouter
// provisioning key creates the key it serves with through a fake of
// OpenRouter's key management API; a chat through keygate uses it;
// mint-rotate replaces it and, after the overlap, deletes the old one by
// its hash. No real OpenRouter is called.
func TestProviderMintOpenRouter(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	fake := &fakecloud.OpenRouter{ProvisioningKey: "fake-openrouter-provisioning-" + t.Name()}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	in.mustCLI(map[string]string{"OPENROUTER_PROVISIONING_KEY": fake.ProvisioningKey}, "", "provider", "mint", "openrouter",
		"--provisioning-key-env", "OPENROUTER_PROVISIONING_KEY", "--key-api-url", srv.URL, "--base-url", srv.URL+"/api/v1", "--models", "mistralai/*", "--overlap", "1s")
	if fake.Live() != 1 {
		t.Fatalf("one key after provider mint; %d", fake.Live())
	}
	key := in.createKey("--name", "openrouter-app")
	chat := func() (int, string) {
		return postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"mistralai/mistral-small","messages":[{"role":"user","content":"hi"}]}`)
	}
	if code, body := chat(); code != 200 || !strings.Contains(body, fakecloud.ReplyText) {
		t.Fatalf("with the minted key: %d %s", code, body)
	}
	in.mustCLI(nil, "", "provider", "mint-rotate", "openrouter")
	if fake.Live() != 2 {
		t.Fatalf("both keys live during the overlap: %d", fake.Live())
	}
	if code, body := chat(); code != 200 {
		t.Fatalf("after the rotation: %d %s", code, body)
	}
	time.Sleep(1100 * time.Millisecond)
	in.mustCLI(nil, "", "provider", "mint-rotate", "openrouter", "--due-only")
	if len(fake.Deleted()) != 1 || fake.Live() != 1 {
		t.Fatalf("after the overlap the old key is deleted: deleted %d, live %d", len(fake.Deleted()), fake.Live())
	}
	if code, body := chat(); code != 200 || fake.Chats() != 3 {
		t.Fatalf("the new key serves after the old one is gone: %d %s", code, body)
	}
	st := in.mustCLI(nil, "", "secret", "get", "mint/openrouter")
	if strings.Contains(st, "sk-or-v1-") || strings.Contains(in.stderr.String(), fake.ProvisioningKey) {
		t.Fatal("a key reached the minting state or keygate's log")
	}
}

// TestAnthropicKeyLeakDisabled: an Anthropic provider whose admin key
// keygate holds (provider admin-key) has its key disabled at Anthropic,
// through a fake of its Admin API, as soon as the key is found in a
// request body; an alert says a new key is needed; keygate's other keys of
// the organization are untouched. No real Anthropic is called.
func TestAnthropicKeyLeakDisabled(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Sources.Poll = 200 * time.Millisecond
	in := start(t, cfg, "")
	fake := &fakecloud.AnthropicAdmin{AdminKey: "fake-anthropic-admin-" + t.Name()}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	_, other := fake.AddKey("someone-else")
	served, id := fake.AddKey("keygate")
	in.mustCLI(map[string]string{"ANTHROPIC_API_KEY": served}, "", "provider", "add", "anthropic", "--preset", "anthropic", "--base-url", srv.URL,
		"--api-key-env", "ANTHROPIC_API_KEY", "--models", "claude-*")
	if _, _, err := in.cli(map[string]string{"ANTHROPIC_ADMIN_KEY": fake.AdminKey}, "", "provider", "mint", "anthropic-2", "--kind", "anthropic",
		"--admin-key-env", "ANTHROPIC_ADMIN_KEY"); err == nil {
		t.Fatal("provider mint took an Anthropic admin key")
	}
	in.mustCLI(map[string]string{"ANTHROPIC_ADMIN_KEY": fake.AdminKey}, "", "provider", "admin-key", "anthropic", "--kind", "anthropic",
		"--admin-key-env", "ANTHROPIC_ADMIN_KEY", "--key-api-url", srv.URL)
	key := in.createKey("--name", "claude-app")
	msg := func(text string) (int, string) {
		return postJSON(t, in.addrs.Gateway+"/v1/messages", key, `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"`+text+`"}]}`)
	}
	if code, body := msg("hi"); code != 200 {
		t.Fatalf("with the provider's key: %d %s", code, body)
	}
	until(t, "the outbound check to refuse the provider's key", func() bool {
		code, body := msg("my key is " + served)
		return code == 400 && strings.Contains(body, "a value held in keygate's vault")
	})
	until(t, "keygate serve to disable the leaked key at Anthropic", func() bool { return fake.Status(id) == "inactive" })
	if fake.Status(other) != "active" {
		t.Fatal("another key of the organization was disabled")
	}
	until(t, "the alert and the audit event", func() bool {
		return auditHas(in, "provider.key_disabled", "reason=leak", "anthropic_key_id="+id) &&
			auditHas(in, "alert", "provider_key_disabled", "keygate provider rotate anthropic")
	})
	if code, _ := msg("hi"); code == 200 {
		t.Fatal("the disabled key still served")
	}
	if strings.Contains(in.stderr.String(), served) || strings.Contains(in.stderr.String(), fake.AdminKey) {
		t.Fatal("a key reached keygate's log")
	}
}

// TestMintedKeyLeakOnTwoNodes: two nodes on one database both find the
// same minted key in requests at the same moment; the key is rotated once,
// by whichever node holds the provider's lease, and both serve the new
// key. SQLite always, PostgreSQL when KEYGATE_TEST_POSTGRES_URL is set.
func TestMintedKeyLeakOnTwoNodes(t *testing.T) {
	for dbName, db := range databases(t) {
		t.Run(dbName, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = db(t)
			cfg.Sources.Poll = 200 * time.Millisecond
			a := start(t, cfg, "")
			b := start(t, secondNode(t, cfg), a.admin)
			fake := &fakecloud.OpenAIAdmin{AdminKey: "fake-openai-admin-key-" + t.Name(), Project: "proj_fake"}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			a.mustCLI(map[string]string{"OPENAI_ADMIN_KEY": fake.AdminKey}, "", "provider", "mint", "openai", "--openai-project", fake.Project,
				"--admin-key-env", "OPENAI_ADMIN_KEY", "--openai-admin-url", srv.URL, "--base-url", srv.URL+"/v1", "--models", "gpt-*")
			key := a.createKey("--name", "two-nodes")
			leaked := fake.Keys()[0]
			body := `{"model":"gpt-4o","messages":[{"role":"user","content":"my key is ` + leaked + `"}]}`
			for _, in := range []*instance{a, b} {
				until(t, "both nodes to serve the minted key", func() bool {
					code, _ := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
					return code == 200 && fake.Live() == 1
				})
			}
			// Both nodes learn the key, then find it at once.
			time.Sleep(time.Second)
			var wg sync.WaitGroup
			codes := make([]int, 2)
			for i, in := range []*instance{a, b} {
				wg.Go(func() { codes[i], _ = postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, body) })
			}
			wg.Wait()
			if codes[0] != 400 || codes[1] != 400 {
				t.Fatalf("the leaked key was not refused on both nodes: %v", codes)
			}
			until(t, "a rotation", func() bool { return fake.Live() == 2 })
			time.Sleep(2 * time.Second) // both nodes' tasks have run several times
			if fake.Live() != 2 {
				t.Fatalf("one leak, %d service accounts: rotated more than once", fake.Live())
			}
			for _, in := range []*instance{a, b} {
				until(t, "both nodes to serve the new key", func() bool {
					code, _ := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
					return code == 200
				})
			}
		})
	}
}
