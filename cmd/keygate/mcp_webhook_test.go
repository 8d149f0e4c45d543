package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/mcpgate"
)

// TestMCPApprovalWebhook: a server's approval webhook is asked about each
// call that waits for approval, with a body signed by the approvals
// webhook key and no arguments in clear. Its answer decides: an approval
// runs the call once, recorded as approved by "webhook NAME"; a denial
// fails it before it reaches the server; an answer about another approval
// is ignored, and the call waits for the queue until its time is up.
func TestMCPApprovalWebhook(t *testing.T) {
	up := newFakeToolServer(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Egress.Allow = []string{"127.0.0.1"} // the webhook runs on loopback
	in := start(t, cfg, "")
	var k adminapi.WebhookKey
	decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "webhook-key", "show", "--for", "approvals"), &k)
	key, err := hex.DecodeString(k.Key)
	if err != nil || len(key) == 0 {
		t.Fatalf("the approvals webhook key: %v %q", err, k.Key)
	}
	var (
		mu        sync.Mutex
		asked     []map[string]any
		badSigned int
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, key)
		m.Write(body)
		var q map[string]any
		json.Unmarshal(body, &q)
		mu.Lock()
		asked = append(asked, q)
		if !hmac.Equal([]byte(r.Header.Get("X-Keygate-Signature")), []byte("sha256="+hex.EncodeToString(m.Sum(nil)))) {
			badSigned++
		}
		mu.Unlock()
		id, _ := q["approval"].(string)
		switch q["tool"] {
		case "read_config":
			fmt.Fprintf(w, `{"approval":%q,"decision":"approve","by":"oncall-bot"}`, id)
		case "delete_repo":
			fmt.Fprintf(w, `{"approval":%q,"decision":"deny","by":"oncall-bot"}`, id)
		default:
			fmt.Fprint(w, `{"approval":"apr_someoneelse","decision":"approve","by":"replayed"}`)
		}
	}))
	t.Cleanup(hook.Close)
	in.mustCLI(nil, up.token, "secret", "put", "gh-token", "--stdin")
	if _, _, err := in.cli(nil, "", "mcp", "add", "nohook", "--url", up.url, "--allow-private", "--approval-webhook", hook.URL); err == nil {
		t.Fatal("an approval webhook without tools that need approval was accepted")
	}
	in.mustCLI(nil, "", "mcp", "add", "github", "--url", up.url, "--secret", "gh-token", "--allow-private",
		"--approval-required", "*", "--approval-timeout", "3s", "--approval-webhook", hook.URL+"/approve?token=hook-canary")
	if out := in.mustCLI(nil, "", "mcp", "show", "github"); !strings.Contains(out, "Approval webhook") || strings.Contains(out, "hook-canary") {
		t.Fatalf("mcp show does not name the webhook by its host alone:\n%s", out)
	}
	keyArg := in.createKey("--name", "agent", "--allow-tool", "github/*")
	cs := connectMCP(t, in.addrs.Gateway+mcpgate.Path, keyArg)
	call := func(tool string, args map[string]any) error {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "github__" + tool, Arguments: args})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %s", resultText(res))
		}
		return err
	}
	if err := call("read_config", map[string]any{}); err != nil {
		t.Fatalf("the call the webhook approved: %v", err)
	}
	if n := up.called("read_config"); n != 1 {
		t.Fatalf("the server saw %d calls of the approved tool, want 1", n)
	}
	if err := call("delete_repo", map[string]any{"text": "secret-argument"}); rpcCode(err) != mcpgate.CodeForbidden || !strings.Contains(err.Error(), "webhook oncall-bot denied") {
		t.Fatalf("the call the webhook denied: %v", err)
	}
	if err := call("echo", map[string]any{"text": "x"}); rpcCode(err) != mcpgate.CodeForbidden || !strings.Contains(err.Error(), "within 3s") {
		t.Fatalf("a call whose webhook answered about another approval: %v", err)
	}
	if n := up.called("delete_repo") + up.called("echo"); n != 0 {
		t.Fatalf("the server saw %d calls no one approved", n)
	}
	mu.Lock()
	if len(asked) != 3 || badSigned != 0 {
		t.Errorf("the webhook was asked %d times, %d with a bad signature", len(asked), badSigned)
	}
	for _, q := range asked {
		raw, _ := json.Marshal(q)
		if strings.Contains(string(raw), "secret-argument") || q["args_hmac"] == "" || q["key_id"] == "" || q["server"] != "github" {
			t.Errorf("the webhook was asked %s", raw)
		}
	}
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := in.mustCLI(nil, "", "--json", "audit", "search", "--type", "mcp.call")
		if strings.Contains(out, `"approved_by": "webhook oncall-bot"`) && strings.Contains(out, "approval_denied") && strings.Contains(out, "approval_timeout") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit trail lacks the webhook's decisions:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
