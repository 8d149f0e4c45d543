package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	smithybearer "github.com/aws/smithy-go/auth/bearer"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakecloud"
)

// bedrockClient is the official Bedrock runtime client in Bedrock API key
// mode (as AWS_BEARER_TOKEN_BEDROCK sets it up), pointed at keygate's
// gateway with the keygate key as its token. Bearer tokens go only over
// HTTPS, so the gateway serves its self-signed certificate.
func bedrockClient(t *testing.T, in *instance, key string) *bedrockruntime.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(in.cfg.DataDir, "tls", "self-signed.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return bedrockruntime.New(bedrockruntime.Options{
		Region:                  "us-east-1",
		BaseEndpoint:            aws.String(in.addrs.Gateway),
		HTTPClient:              &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		BearerAuthTokenProvider: smithybearer.StaticTokenProvider{Token: smithybearer.Token{Value: key}},
		AuthSchemePreference:    []string{"httpBearerAuth"},
		RetryMaxAttempts:        1,
	})
}

// createKeyEnv is createKey with extra environment for the CLI.
func (in *instance) createKeyEnv(env map[string]string, args ...string) string {
	in.t.Helper()
	out := in.mustCLI(env, "", append([]string{"key", "create"}, args...)...)
	k := regexp.MustCompile(`kg_[a-z0-9]+_[0-9A-Za-z]+`).FindString(out)
	if k == "" {
		in.t.Fatalf("key create printed no key: %q", out)
	}
	return k
}

// TestBedrockNativePathsThroughTheGateway: the official aws-sdk-go-v2
// Bedrock runtime client, in Bedrock API key mode with a keygate key,
// calls InvokeModel, InvokeModelWithResponseStream, Converse and
// ConverseStream through keygate, which signs each call upstream with its
// own cloud identity (SigV4, verified by the fake Bedrock runtime) and
// passes the AWS event stream through; usage is metered from the answers
// and streams; a key not allowed the model is refused in Bedrock's error
// shape before anything goes upstream. No real AWS is called.
func TestBedrockNativePathsThroughTheGateway(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, certEnv := converseGateway(t, fake, c)
	key := in.createKeyEnv(certEnv, "--name", "bedrock-app")
	const model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
	client := bedrockClient(t, in, key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	inv, err := client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(model), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil || !strings.Contains(string(inv.Body), fakecloud.ReplyText) {
		t.Fatalf("InvokeModel: %v", err)
	}

	st, err := client.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{ModelId: aws.String(model), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatalf("InvokeModelWithResponseStream: %v", err)
	}
	var chunks strings.Builder
	for ev := range st.GetStream().Events() {
		if ch, ok := ev.(*types.ResponseStreamMemberChunk); ok {
			chunks.Write(ch.Value.Bytes)
		}
	}
	if err := st.GetStream().Close(); err != nil || !strings.Contains(chunks.String(), `"text":"cloud model"`) || !strings.Contains(chunks.String(), "message_stop") {
		t.Fatalf("the invoke stream: %v %s", err, chunks.String())
	}

	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}
	conv, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: msgs})
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	out, ok := conv.Output.(*types.ConverseOutputMemberMessage)
	if !ok || len(out.Value.Content) != 1 || out.Value.Content[0].(*types.ContentBlockMemberText).Value != fakecloud.ReplyText || aws.ToInt32(conv.Usage.OutputTokens) != 7 {
		t.Fatalf("Converse answered %+v", conv.Output)
	}

	cs, err := client.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: msgs})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	var text strings.Builder
	var streamUsage *types.TokenUsage
	for ev := range cs.GetStream().Events() {
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			text.WriteString(e.Value.Delta.(*types.ContentBlockDeltaMemberText).Value)
		case *types.ConverseStreamOutputMemberMetadata:
			streamUsage = e.Value.Usage
		}
	}
	if err := cs.GetStream().Close(); err != nil || text.String() != fakecloud.ReplyText || streamUsage == nil || aws.ToInt32(streamUsage.InputTokens) != 10 {
		t.Fatalf("the converse stream: %v %q %+v", err, text.String(), streamUsage)
	}

	// Every call reached the fake signed with keygate's AWS key, on Bedrock's own paths.
	fake2 := fake.Snapshot()
	want := []string{"invoke", "invoke-with-response-stream", "converse", "converse-stream"}
	if len(fake2.Requests) != len(want) {
		t.Fatalf("upstream requests %v", fake2.Requests)
	}
	for i, op := range want {
		if fake2.Requests[i] != "POST /model/"+model+"/"+op || fake2.KeyIDs[i] != c.AWSKey.AccessKeyID {
			t.Fatalf("upstream request %d: %s signed by %s", i, fake2.Requests[i], fake2.KeyIDs[i])
		}
	}

	// Metered: four calls of 10 input and 7 output tokens.
	until(t, "the usage of the four calls", func() bool {
		var u adminapi.KeyUsage
		decodeJSON(t, in.mustCLI(certEnv, "", "--json", "key", "usage", "bedrock-app"), &u)
		return len(u.Rows) == 1 && u.Rows[0].Requests == 4 && u.Rows[0].InputTokens == 40 && u.Rows[0].OutputTokens == 28 && u.Rows[0].Model == model
	})

	// A key that may not use the model is refused, in Bedrock's shape, before anything goes upstream.
	narrow := in.createKeyEnv(certEnv, "--name", "narrow", "--allow-model", "amazon.titan-*")
	_, err = bedrockClient(t, in, narrow).Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: msgs})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("a key without the model: %v", err)
	}
	if n := len(fake.Snapshot().Requests); n != 4 {
		t.Fatalf("a refused call went upstream: %d requests", n)
	}
	// No AWS secret in logs.
	if strings.Contains(in.stderr.String(), c.AWSKey.SecretAccessKey) || strings.Contains(in.stderr.String(), key) {
		t.Fatal("a credential reached keygate's log")
	}
}
