package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aopt "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	oopt "github.com/openai/openai-go/v3/option"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/server"
)

// Cloud-identity upstreams through keygate serve, driven by the official
// Anthropic and OpenAI SDKs pointed at the gateway with a keygate key.
// Bedrock, Vertex AI and Azure OpenAI are local fakes that verify SigV4
// signatures (against keys they issued, STS session keys included) and
// bearer tokens from their fake token endpoints. No real cloud is called.

// credentialFile writes a cloud credential document for provider add --credential-file.
func credentialFile(t *testing.T, c cloudauth.Credential) string {
	p := filepath.Join(t.TempDir(), "cred.json")
	doc := c.Seal()
	if err := os.WriteFile(p, []byte(doc.Reveal()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func anthropicThrough(t *testing.T, in *instance, key, model string) {
	t.Helper()
	client := anthropic.NewClient(aopt.WithBaseURL(in.addrs.Gateway), aopt.WithAPIKey(key), aopt.WithMaxRetries(0))
	ctx := context.Background()
	params := anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatalf("anthropic SDK, %s: %v", model, err)
	}
	if len(msg.Content) == 0 || msg.Content[0].Text != fakecloud.ReplyText {
		t.Fatalf("anthropic SDK, %s: %+v", model, msg)
	}
	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("anthropic SDK stream, %s: %v", model, err)
	}
	if len(acc.Content) == 0 || acc.Content[0].Text != fakecloud.ReplyText || acc.StopReason != "end_turn" {
		t.Fatalf("anthropic SDK stream, %s: %+v", model, acc)
	}
}

func openAIThrough(t *testing.T, in *instance, key, model string, stream bool) {
	t.Helper()
	client := openai.NewClient(oopt.WithBaseURL(in.addrs.Gateway+"/v1"), oopt.WithAPIKey(key), oopt.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("openai SDK, %s: %v", model, err)
	}
	if resp.Choices[0].Message.Content != fakecloud.ReplyText {
		t.Fatalf("openai SDK, %s: %q", model, resp.Choices[0].Message.Content)
	}
	if !stream {
		return
	}
	s := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("openai SDK stream, %s: %v", model, err)
	}
	if len(acc.Choices) == 0 || acc.Choices[0].Message.Content != fakecloud.ReplyText {
		t.Fatalf("openai SDK stream, %s: %+v", model, acc.Choices)
	}
}

// TestCloudIdentityUpstreamsThroughTheGateway: Bedrock with static keys
// sealed in the vault, an assumed role and a web identity (IRSA); Vertex
// AI with a sealed service-account key; Azure OpenAI with Entra ID. Each
// is added with provider add --preset ... --credential-file and reached
// through the gateway by the Anthropic SDK (plain and streaming) and the
// OpenAI SDK (plain and streaming, translated), signed or given a token by
// keygate. No cloud credential leaves the vault.
func TestCloudIdentityUpstreamsThroughTheGateway(t *testing.T) {
	c := fakecloud.Start(t)
	bedrockSrv := httptest.NewServer(&fakecloud.Bedrock{Keys: &c.SM.Keys})
	defer bedrockSrv.Close()
	vertexSrv := httptest.NewServer(&fakecloud.Vertex{Token: c.Google})
	defer vertexSrv.Close()
	azureSrv := httptest.NewServer(&fakecloud.AzureOpenAI{Entra: c.Entra})
	defer azureSrv.Close()

	tokenFile := filepath.Join(t.TempDir(), "web-identity-token")
	if err := os.WriteFile(tokenFile, []byte("fake-web-identity-token-"+t.Name()), 0o600); err != nil {
		t.Fatal(err)
	}
	role := "arn:aws:iam::111122223333:role/keygate-bedrock"
	c.STS.WebIdentityTokens = map[string]string{"fake-web-identity-token-" + t.Name(): role}

	cfg := testConfig(t, t.TempDir())
	sourcesConfig(t, &cfg, c) // the CA of the fakes' token endpoints and STS
	in := start(t, cfg, "", server.WithGetenv(func(string) string { return "" }))

	aws := cloudauth.Credential{Kind: "aws", Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: c.AWSKey.SecretAccessKey}
	assumed := aws
	assumed.RoleARN, assumed.STSEndpoint = role, c.STSURL
	irsa := cloudauth.Credential{Kind: "aws", Region: "us-east-1", RoleARN: role, WebIdentityTokenFile: tokenFile, STSEndpoint: c.STSURL}
	for name, cred := range map[string]cloudauth.Credential{"bedrock": aws, "bedrock-role": assumed, "bedrock-irsa": irsa} {
		in.mustCLI(nil, "", "provider", "add", name, "--preset", "bedrock", "--base-url", bedrockSrv.URL, "--credential-file", credentialFile(t, cred))
	}
	in.mustCLI(nil, "", "provider", "add", "vertex", "--preset", "vertex", "--base-url", vertexSrv.URL+"/v1/projects/"+fakecloud.GCPProject+"/locations/us-east5",
		"--credential-file", credentialFile(t, cloudauth.Credential{Kind: "google", ServiceAccount: c.SAJSON}))
	in.mustCLI(nil, "", "provider", "add", "azure", "--preset", "azure-openai-entra", "--base-url", azureSrv.URL,
		"--credential-file", credentialFile(t, cloudauth.Credential{Kind: "entra", TenantID: c.Entra.TenantID, ClientID: c.Entra.ClientID,
			ClientSecret: c.Entra.ClientSecret, AuthorityHost: c.EntraURL}))

	// A document of the wrong kind, or none, is refused and stores nothing.
	if _, errb, err := in.cli(nil, "", "provider", "add", "bad", "--preset", "bedrock", "--base-url", bedrockSrv.URL,
		"--credential-file", credentialFile(t, cloudauth.Credential{Kind: "google"})); err == nil || !strings.Contains(errb+err.Error(), "aws") {
		t.Fatalf("a google document for bedrock: %v %s", err, errb)
	}
	if _, errb, err := in.cli(nil, "", "provider", "add", "bad", "--preset", "bedrock", "--base-url", bedrockSrv.URL,
		"--credential-file", credentialFile(t, cloudauth.Credential{Kind: "aws", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: c.AWSKey.SecretAccessKey})); err == nil ||
		!strings.Contains(errb+err.Error(), "region") || strings.Contains(errb+err.Error(), c.AWSKey.SecretAccessKey) {
		t.Fatalf("a document without a region: %v %s", err, errb)
	}
	if _, _, err := in.cli(nil, "", "provider", "show", "bad"); err == nil {
		t.Fatal("a refused provider was stored")
	}

	key := in.createKey("--name", "cloud-app")
	const model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
	for _, p := range []string{"bedrock", "bedrock-role", "bedrock-irsa"} {
		anthropicThrough(t, in, key, p+"/"+model)
		openAIThrough(t, in, key, p+"/"+model, true)
	}
	anthropicThrough(t, in, key, "vertex/claude-sonnet-4-5@20250929")
	openAIThrough(t, in, key, "vertex/claude-sonnet-4-5@20250929", true)
	openAIThrough(t, in, key, "azure/gpt-4o-prod", false)

	// Temporary credentials and tokens are fetched once and cached.
	if n := len(c.STS.Calls()); n != 2 {
		t.Fatalf("one STS call per role identity, then cached: %d", n)
	}
	if n := c.Google.Tokens.Issued(); n != 1 {
		t.Fatalf("one Google token for every Vertex request: %d", n)
	}
	if n := c.Entra.Tokens.Issued(); n != 1 {
		t.Fatalf("one Entra token for every Azure request: %d", n)
	}

	// No static cloud key or document in output, logs or the database.
	shown := in.mustCLI(nil, "", "--json", "provider", "list") + in.stderr.String() + in.stdout.String() + string(databaseBytes(t, cfg))
	for _, s := range []string{c.AWSKey.SecretAccessKey, c.Entra.ClientSecret, string(c.SAJSON[len(c.SAJSON)/2 : len(c.SAJSON)/2+40])} {
		if strings.Contains(shown, s) {
			t.Fatal("a cloud credential left the vault")
		}
	}
}
