package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/server"
)

// TestAgentClaudeCodeBedrockSigV4: Claude Code in its Bedrock mode
// (CLAUDE_CODE_USE_BEDROCK=1) with AWS credentials, the pair `keygate key
// aws-credentials` printed, and ANTHROPIC_BEDROCK_BASE_URL pointing at
// keygate's gateway, runs one turn in print mode. Its SigV4-signed calls
// are verified by keygate and reach the fake Bedrock runtime signed with
// keygate's own AWS key, and nothing of the client's credentials goes
// upstream. No real AWS is called.
func TestAgentClaudeCodeBedrockSigV4(t *testing.T) {
	bin, node := agentBin(t, "claude")
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	bedrockSrv := httptest.NewServer(fake)
	defer bedrockSrv.Close()
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "", server.WithGetenv(func(string) string { return "" }))
	cred := cloudauth.Credential{Kind: "aws", Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: c.AWSKey.SecretAccessKey}
	in.mustCLI(nil, "", "provider", "add", "bedrock", "--preset", "bedrock", "--base-url", bedrockSrv.URL, "--credential-file", credentialFile(t, cred))
	in.createKey("--name", "claude-bedrock")
	creds := in.awsCredentials(nil, "claude-bedrock")

	const model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
	path := "/usr/local/bin:/usr/bin:/bin"
	if node != "" {
		path = node + ":" + path
	}
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-p", "Say hello.")
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + path, "HOME=" + home, "TMPDIR=" + t.TempDir(), "LANG=C.UTF-8", "TERM=dumb", "CI=true", "NO_COLOR=1",
		"CLAUDE_CODE_USE_BEDROCK=1", "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
		"ANTHROPIC_BEDROCK_BASE_URL=" + in.addrs.Gateway,
		"ANTHROPIC_MODEL=" + model, "ANTHROPIC_SMALL_FAST_MODEL=" + model,
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1"}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("claude -p: %v\nstdout: %s\nstderr: %s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), fakecloud.ReplyText) {
		t.Fatalf("Claude Code did not print the model's answer\nstdout: %s\nstderr: %s", out.String(), errb.String())
	}
	seen := fake.Snapshot()
	if len(seen.Requests) == 0 {
		t.Fatal("no request reached the fake Bedrock runtime")
	}
	// Claude Code also asks its small and background models, which it
	// names itself; each call must be a Bedrock model path signed by
	// keygate, and the turn's own on the model given.
	asked := false
	for i, r := range seen.Requests {
		if !strings.HasPrefix(r, "POST /model/") || !strings.Contains(r, "anthropic.claude") || seen.KeyIDs[i] != c.AWSKey.AccessKeyID {
			t.Errorf("upstream request %s signed by %s; want keygate's own AWS key on Bedrock's path", r, seen.KeyIDs[i])
		}
		asked = asked || strings.HasPrefix(r, "POST /model/"+model+"/")
		for name, vals := range seen.Headers[i] {
			if v := strings.Join(vals, " "); strings.Contains(v, creds.AccessKeyID) || strings.Contains(v, creds.SecretAccessKey) {
				t.Errorf("upstream header %s carries the client's AWS credentials", name)
			}
		}
	}
	if !asked {
		t.Errorf("no upstream request for %s: %v", model, seen.Requests)
	}
	if strings.Contains(in.stderr.String(), creds.SecretAccessKey) {
		t.Error("the secret access key reached keygate's log")
	}
}
