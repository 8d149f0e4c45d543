package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/mint"
	"github.com/keygate/keygate/internal/secret"
)

// keygate mints the OpenAI key it serves with through a fake OpenAI admin
// API (its real paths and shapes), rotates it while a request is in
// flight, and deletes the old service account after the overlap. No real
// OpenAI is called.
func TestMintedKeyRotatesWithARequestInFlight(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	fake := &fakecloud.OpenAIAdmin{AdminKey: "fake-openai-admin-key-" + t.Name(), Project: "proj_fake"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	client, err := adminclient.New(in.addrs.Admin, secret.New(in.admin))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := &mint.Rotator{Provider: "openai", Minter: &mint.OpenAI{BaseURL: srv.URL, AdminKey: secret.New(fake.AdminKey), Project: fake.Project},
		Admin: client, Overlap: time.Hour, Now: clock}
	ctx := context.Background()
	if err := r.Start(ctx, adminapi.CreateProviderRequest{Preset: "openai", BaseURL: srv.URL + "/v1", Models: []string{"gpt-*"}}); err != nil {
		t.Fatal(err)
	}
	key := in.createKey("--name", "minted-app")
	chat := func(stream bool) (int, string) {
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]`
		if stream {
			body += `,"stream":true`
		}
		return postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, body+"}")
	}
	if code, body := chat(false); code != 200 {
		t.Fatalf("with the minted key: %d %s", code, body)
	}

	// A streaming request is held open upstream while the key rotates.
	release := fake.HoldNext()
	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() { c, b := chat(true); done <- result{c, b} }()
	for deadline := time.Now().Add(10 * time.Second); fake.Held() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the upstream")
		}
	}
	fake.StopHolding()
	if err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if fake.Live() != 2 {
		t.Fatalf("during the overlap both keys live upstream; %d do", fake.Live())
	}
	if code, body := chat(false); code != 200 {
		t.Fatalf("a new request after the rotation: %d %s", code, body)
	}
	close(release)
	res := <-done
	if res.code != 200 || !strings.Contains(res.body, fakecloud.ReplyText) || !strings.Contains(res.body, "[DONE]") {
		t.Fatalf("the request in flight during the rotation: %d %s", res.code, res.body)
	}

	// Before the overlap ends nothing is deleted; after it the old account is.
	if _, err := r.RunDue(ctx); err != nil || len(fake.Deleted()) != 0 {
		t.Fatalf("deleted before the overlap ended: %v %v", fake.Deleted(), err)
	}
	mu.Lock()
	now = now.Add(time.Hour + time.Minute)
	mu.Unlock()
	if _, err := r.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if len(fake.Deleted()) != 1 || fake.Live() != 1 {
		t.Fatalf("after the overlap the old service account is deleted: deleted %v, live %d", fake.Deleted(), fake.Live())
	}
	if code, body := chat(false); code != 200 {
		t.Fatalf("the new key serves after the old one is gone: %d %s", code, body)
	}
	// The state kept in the vault holds ids, never a key.
	st := in.mustCLI(nil, "", "secret", "get", "mint/openai")
	if strings.Contains(st, "fake-openai-sa-key") || !strings.Contains(st, "svc_acct_") {
		t.Fatalf("minting state: %s", st)
	}
}

// TestProviderMintThroughTheCLI: keygate provider mint stores the OpenAI
// admin key in keygate's vault and registers a provider with a minted
// key; keygate provider mint-rotate (as after a leak report) rotates it
// with no key on the command line while a streaming request is in flight,
// which finishes; the old account is deleted upstream once the overlap has
// passed. No real OpenAI is called.
func TestProviderMintThroughTheCLI(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	fake := &fakecloud.OpenAIAdmin{AdminKey: "fake-openai-admin-key-" + t.Name(), Project: "proj_fake"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	in.mustCLI(map[string]string{"OPENAI_ADMIN_KEY": fake.AdminKey}, "", "provider", "mint", "openai", "--openai-project", fake.Project,
		"--admin-key-env", "OPENAI_ADMIN_KEY", "--openai-admin-url", srv.URL, "--base-url", srv.URL+"/v1", "--models", "gpt-*", "--overlap", "1s")
	if fake.Live() != 1 {
		t.Fatalf("one service account after provider mint; %d", fake.Live())
	}
	key := in.createKey("--name", "minted-cli")
	chat := func(stream bool) (int, string) {
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]`
		if stream {
			body += `,"stream":true`
		}
		return postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, body+"}")
	}
	if code, body := chat(false); code != 200 {
		t.Fatalf("with the minted key: %d %s", code, body)
	}
	release := fake.HoldNext()
	done := make(chan [2]string, 1)
	go func() { c, b := chat(true); done <- [2]string{fmt.Sprint(c), b} }()
	for deadline := time.Now().Add(10 * time.Second); fake.Held() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the upstream")
		}
	}
	fake.StopHolding()
	out := in.mustCLI(nil, "", "provider", "mint-rotate", "openai")
	if strings.Contains(out, fake.AdminKey) || fake.Live() != 2 {
		t.Fatalf("after mint-rotate both keys live during the overlap: %d", fake.Live())
	}
	if code, body := chat(false); code != 200 {
		t.Fatalf("a new request after the rotation: %d %s", code, body)
	}
	close(release)
	res := <-done
	if res[0] != "200" || !strings.Contains(res[1], "[DONE]") {
		t.Fatalf("the request in flight during the rotation: %s %s", res[0], res[1])
	}
	time.Sleep(1100 * time.Millisecond) // the 1s overlap passes
	in.mustCLI(nil, "", "provider", "mint-rotate", "openai", "--due-only")
	if len(fake.Deleted()) != 1 || fake.Live() != 1 {
		t.Fatalf("after the overlap the old account is deleted: deleted %v, live %d", fake.Deleted(), fake.Live())
	}
	if code, body := chat(false); code != 200 {
		t.Fatalf("the new key serves after the old one is gone: %d %s", code, body)
	}
	if strings.Contains(in.stderr.String(), fake.AdminKey) {
		t.Fatal("the admin key reached keygate's log")
	}
}
