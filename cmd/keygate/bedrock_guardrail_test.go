package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aopt "github.com/anthropics/anthropic-sdk-go/option"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/translate"
)

// TestBedrockProviderGuardrail: a Bedrock provider whose credential
// document names a guardrail has it applied to every Converse and
// ConverseStream call keygate makes for it (the stream's processing mode
// on ConverseStream only), and a document naming a guardrail Bedrock
// would refuse is refused when the provider is added, naming the field.
// An Anthropic top_k reaches Converse as additionalModelRequestFields.
func TestBedrockProviderGuardrail(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, env := converseGateway(t, fake, c)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)

	bad := cloudauth.Credential{Kind: "aws", Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: c.AWSKey.SecretAccessKey,
		BedrockGuardrail: &translate.ConverseGuardrail{Identifier: "Not A Guardrail!", Version: "1"}}
	_, stderr, err := in.cli(env, "", "provider", "add", "guarded-bad", "--preset", "bedrock", "--base-url", srv.URL, "--credential-file", credentialFile(t, bad))
	if err == nil || !strings.Contains(err.Error()+stderr, "guardrail: identifier") {
		t.Fatalf("a bad guardrail was taken: %v %s", err, stderr)
	}

	good := bad
	good.BedrockGuardrail = &translate.ConverseGuardrail{Identifier: "gr1abc2def3", Version: "DRAFT", Trace: "enabled", StreamProcessingMode: "async"}
	in.mustCLI(env, "", "provider", "add", "guarded", "--preset", "bedrock", "--base-url", srv.URL, "--credential-file", credentialFile(t, good))
	key := in.createKeyEnv(env, "--name", "guarded-app")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	an := anthropic.NewClient(aopt.WithBaseURL(in.addrs.Gateway), aopt.WithAPIKey(key), aopt.WithMaxRetries(0), aopt.WithHTTPClient(gatewayHTTP(t, in)))
	params := anthropic.MessageNewParams{Model: "guarded/" + llamaModel, MaxTokens: 64, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	withTopK := params
	withTopK.TopK = anthropic.Int(20) // Converse has no common field: additionalModelRequestFields
	if _, err := an.Messages.New(ctx, withTopK); err != nil {
		t.Fatalf("a guarded call: %v", err)
	}
	streamMessage(t, ctx, an, params)

	seen := fake.Snapshot()
	if len(seen.Bodies) != 2 {
		t.Fatalf("upstream requests %v", seen.Requests)
	}
	for i, stream := range []bool{false, true} {
		var body struct {
			GuardrailConfig map[string]string `json:"guardrailConfig"`
			Additional      map[string]int    `json:"additionalModelRequestFields"`
		}
		if err := json.Unmarshal(seen.Bodies[i], &body); err != nil {
			t.Fatal(err)
		}
		if topK, ok := body.Additional["top_k"]; ok == stream || (!stream && topK != 20) {
			t.Fatalf("call %d upstream carried additionalModelRequestFields %v", i, body.Additional)
		}
		g := body.GuardrailConfig
		if g["guardrailIdentifier"] != "gr1abc2def3" || g["guardrailVersion"] != "DRAFT" || g["trace"] != "enabled" {
			t.Fatalf("call %d upstream carried guardrailConfig %v", i, g)
		}
		if mode, ok := g["streamProcessingMode"]; ok != stream || (stream && mode != "async") {
			t.Fatalf("call %d (stream %v) upstream carried streamProcessingMode %q", i, stream, mode)
		}
	}
}
