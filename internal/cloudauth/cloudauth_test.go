package cloudauth_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
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
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/translate"
)

// Every test drives an Authorizer with the requests the official Anthropic
// and OpenAI SDKs make (translated as keygate's gateway translates them)
// against local fakes that verify SigV4 signatures and bearer tokens. No
// real cloud is called.

// placeholder is what the gateway injects as the key of a cloud-identity
// provider; the Authorizer must never let it through.
const placeholder = "keygate-cloud-identity-placeholder"

// anthropicClient is an Anthropic SDK client whose requests reach base
// through a: as they leave keygate's gateway for an anthropic upstream.
func anthropicClient(base string, a cloudauth.Authorizer, next http.RoundTripper) anthropic.Client {
	return anthropic.NewClient(aopt.WithBaseURL(base), aopt.WithAPIKey(placeholder), aopt.WithMaxRetries(0),
		aopt.WithHTTPClient(&http.Client{Transport: cloudauth.Transport(a, next)}))
}

// gatewayTranslation stands in for the gateway's OpenAI-to-Anthropic
// translation: a chat completion request becomes a Messages request, and
// the answer (stream or not) a chat completion again.
type gatewayTranslation struct{ next http.RoundTripper }

func (g gatewayTranslation) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	var peek struct {
		Model  string
		Stream bool
	}
	_ = jsonUnmarshal(body, &peek)
	msgs, err := translate.ChatToMessagesRequest(body, peek.Model, 1024)
	if err != nil {
		return nil, err
	}
	out := r.Clone(r.Context())
	out.URL.Path = strings.TrimSuffix(strings.TrimSuffix(out.URL.Path, "/chat/completions"), "/v1") + "/v1/messages"
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(msgs)), int64(len(msgs))
	out.Header.Del("Content-Length")
	out.Header.Set("X-Api-Key", placeholder)
	resp, err := g.next.RoundTrip(out)
	if err != nil || resp.StatusCode != 200 {
		return resp, err
	}
	if peek.Stream {
		resp.Body = translate.MessagesToChatStream(resp.Body, peek.Model, true)
		return resp, nil
	}
	b, _ := io.ReadAll(resp.Body)
	chat, err := translate.MessagesToChatResponse(b, peek.Model)
	if err != nil {
		return nil, err
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(chat)), int64(len(chat))
	resp.Header.Del("Content-Length")
	return resp, nil
}

const bedrockModel = "anthropic.claude-sonnet-4-5-20250929-v1:0"

func checkAnthropicSDK(t *testing.T, client anthropic.Client, model string) {
	t.Helper()
	ctx := context.Background()
	params := anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatalf("plain: %v", err)
	}
	if len(msg.Content) == 0 || msg.Content[0].Text != fakecloud.ReplyText || msg.Usage.OutputTokens != 7 {
		t.Fatalf("plain: %+v", msg)
	}
	stream := client.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Content) == 0 || acc.Content[0].Text != fakecloud.ReplyText || acc.StopReason != "end_turn" {
		t.Fatalf("stream: %+v", acc)
	}
}

func checkOpenAISDK(t *testing.T, base string, rt http.RoundTripper, model string) {
	t.Helper()
	client := openai.NewClient(oopt.WithBaseURL(base), oopt.WithAPIKey("kg_client_key_is_not_forwarded"), oopt.WithMaxRetries(0),
		oopt.WithHTTPClient(&http.Client{Transport: rt}))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("openai plain: %v", err)
	}
	if resp.Choices[0].Message.Content != fakecloud.ReplyText {
		t.Fatalf("openai plain: %q", resp.Choices[0].Message.Content)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("openai stream: %v", err)
	}
	if acc.Choices[0].Message.Content != fakecloud.ReplyText {
		t.Fatalf("openai stream: %q", acc.Choices[0].Message.Content)
	}
}

func TestBedrockSigV4ThroughBothSDKs(t *testing.T) {
	c := fakecloud.Start(t)
	br := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	srv := httptest.NewTLSServer(br)
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("fake-web-identity-token"), 0o600)
	role := "arn:aws:iam::111122223333:role/keygate-bedrock"
	c.STS.WebIdentityTokens = map[string]string{"fake-web-identity-token": role}

	ids := map[string]cloudauth.AWSIdentity{
		"static keys from the vault": {Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: secret.New(c.AWSKey.SecretAccessKey)},
		"assumed role":               {Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: secret.New(c.AWSKey.SecretAccessKey), RoleARN: role, STSEndpoint: c.STSURL},
		"web identity (IRSA)":        {Region: "us-east-1", RoleARN: role, WebIdentityTokenFile: tokenFile, STSEndpoint: c.STSURL},
	}
	for name, id := range ids {
		t.Run(name, func(t *testing.T) {
			before := len(c.STS.Calls())
			a, err := cloudauth.NewBedrock(context.Background(), id, c.Client)
			if err != nil {
				t.Fatal(err)
			}
			checkAnthropicSDK(t, anthropicClient(srv.URL, a, c.Client.Transport), bedrockModel)
			checkOpenAISDK(t, srv.URL+"/v1", gatewayTranslation{next: cloudauth.Transport(a, c.Client.Transport)}, bedrockModel)
			sts := c.STS.Calls()[before:]
			br2 := br.KeyIDs[len(br.KeyIDs)-4:]
			switch {
			case id.RoleARN == "" && len(sts) != 0:
				t.Fatalf("static keys called STS: %v", sts)
			case id.RoleARN != "" && len(sts) != 1:
				t.Fatalf("temporary credentials are fetched once and cached for four requests: %v", sts)
			case id.RoleARN != "" && !strings.HasPrefix(br2[0], "ASIAFAKE"):
				t.Fatalf("requests were not signed with the role's session credentials: %v", br2)
			}
		})
	}
	paths := strings.Join(br.Requests, "\n")
	if !strings.Contains(paths, "/invoke-with-response-stream") || !strings.Contains(paths, "/invoke\n") {
		t.Fatalf("InvokeModel and its streaming form were not both used:\n%s", paths)
	}
	for _, b := range br.Bodies {
		if bytes.Contains(b, []byte(placeholder)) {
			t.Fatal("the placeholder key reached Bedrock")
		}
	}
}

func TestBedrockNativePathsAreSignedAndPassedThrough(t *testing.T) {
	c := fakecloud.Start(t)
	br := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	srv := httptest.NewTLSServer(br)
	defer srv.Close()
	a, err := cloudauth.NewBedrock(context.Background(), cloudauth.AWSIdentity{Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: secret.New(c.AWSKey.SecretAccessKey)}, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/model/"+bedrockModel+"/converse", strings.NewReader(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`))
	// A client in Bedrock mode pointed at keygate signs with nothing real.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=client/forged")
	resp, err := cloudauth.Transport(a, c.Client.Transport).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), fakecloud.ReplyText) {
		t.Fatalf("converse: %d %s", resp.StatusCode, b)
	}
}

func TestBedrockRefusesAWrongKey(t *testing.T) {
	c := fakecloud.Start(t)
	srv := httptest.NewTLSServer(&fakecloud.Bedrock{Keys: &c.SM.Keys})
	defer srv.Close()
	a, _ := cloudauth.NewBedrock(context.Background(), cloudauth.AWSIdentity{Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: secret.New("fake-wrong-secret")}, c.Client)
	cl := anthropicClient(srv.URL, a, c.Client.Transport)
	_, err := cl.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: bedrockModel, MaxTokens: 8, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("a signature made with the wrong secret must be refused, in Anthropic's error shape: %v", err)
	}
}

func TestVertexServiceAccountTokensThroughBothSDKs(t *testing.T) {
	c := fakecloud.Start(t)
	vx := &fakecloud.Vertex{Token: c.Google}
	srv := httptest.NewTLSServer(vx)
	defer srv.Close()
	doc := cloudauth.Credential{Kind: "google", ServiceAccount: c.SAJSON}.Seal()
	p, _ := cloudauth.LookupPreset(cloudauth.PresetVertex)
	var cache cloudauth.Cache
	base := srv.URL + "/v1/projects/" + fakecloud.GCPProject + "/locations/us-east5"
	a, err := cache.Get(context.Background(), p, mustURL(base), doc, cloudauth.Options{HTTP: c.Client})
	if err != nil {
		t.Fatal(err)
	}
	checkAnthropicSDK(t, anthropicClient(base, a, c.Client.Transport), "claude-sonnet-4-5@20250929")
	// A table reload gets the same Authorizer, and its cached token.
	a2, _ := cache.Get(context.Background(), p, mustURL(base), doc, cloudauth.Options{HTTP: c.Client})
	checkOpenAISDK(t, base+"/v1", gatewayTranslation{next: cloudauth.Transport(a2, c.Client.Transport)}, "claude-sonnet-4-5@20250929")
	if n := c.Google.Tokens.Issued(); n != 1 {
		t.Fatalf("one token serves every request until shortly before it expires; minted %d", n)
	}
	if !strings.Contains(strings.Join(vx.Paths, " "), ":streamRawPredict") {
		t.Fatalf("streaming did not use streamRawPredict: %v", vx.Paths)
	}
	// A key the token endpoint does not know signs a JWT it refuses.
	other := cloudauth.Credential{Kind: "google", ServiceAccount: (&fakecloud.GoogleToken{URL: c.Google.URL}).ServiceAccountJSON("intruder@x.iam.gserviceaccount.com", "x", c.GoogleKey)}.Seal()
	bad, err := cloudauth.New(context.Background(), p, mustURL(base), other, cloudauth.Options{HTTP: c.Client})
	if err != nil {
		t.Fatal(err)
	}
	cl := anthropicClient(base, bad, c.Client.Transport)
	_, err = cl.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model: "claude-x", MaxTokens: 8, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	if err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("an unknown service account must get no token: %v", err)
	}
}

func TestAzureOpenAIEntraToken(t *testing.T) {
	c := fakecloud.Start(t)
	srv := httptest.NewTLSServer(&fakecloud.AzureOpenAI{Entra: c.Entra})
	defer srv.Close()
	p, _ := cloudauth.LookupPreset(cloudauth.PresetAzureEntra)
	doc := cloudauth.Credential{Kind: "entra", TenantID: c.Entra.TenantID, ClientID: c.Entra.ClientID, ClientSecret: c.Entra.ClientSecret, AuthorityHost: c.EntraURL}.Seal()
	a, err := cloudauth.New(context.Background(), p, mustURL(srv.URL), doc, cloudauth.Options{HTTP: c.Client})
	if err != nil {
		t.Fatal(err)
	}
	// As the azure-openai preset leaves it: deployment path, api-version, api-key.
	client := openai.NewClient(oopt.WithBaseURL(srv.URL+"/openai/deployments/gpt-4o-prod"), oopt.WithQuery("api-version", "2024-10-21"),
		oopt.WithHeader("api-key", placeholder), oopt.WithAPIKey(""), oopt.WithMaxRetries(0),
		oopt.WithHTTPClient(&http.Client{Transport: cloudauth.Transport(a, c.Client.Transport)}))
	for range 3 {
		resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o-prod",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		if err != nil || resp.Choices[0].Message.Content != fakecloud.ReplyText {
			t.Fatalf("%v %+v", err, resp)
		}
	}
	if n := c.Entra.Tokens.Issued(); n != 1 {
		t.Fatalf("Entra tokens are cached; minted %d", n)
	}
	wrong := cloudauth.Credential{Kind: "entra", TenantID: c.Entra.TenantID, ClientID: c.Entra.ClientID, ClientSecret: "fake-wrong", AuthorityHost: c.EntraURL}.Seal()
	b, _ := cloudauth.New(context.Background(), p, mustURL(srv.URL), wrong, cloudauth.Options{HTTP: c.Client})
	req, _ := http.NewRequest("POST", srv.URL+"/openai/deployments/d/chat/completions?api-version=1", strings.NewReader("{}"))
	if _, err := b.RoundTrip(req, c.Client.Transport); err == nil || strings.Contains(err.Error(), "fake-wrong") {
		t.Fatalf("a wrong client secret gets no token, and the error does not repeat it: %v", err)
	}
}

// TestBedrockAPIChoice: with bedrock_api auto, an Anthropic model goes to
// InvokeModel and any other model to Converse; "converse" and "invoke"
// send every model to one of them; any other value is refused when the
// Authorizer is built, without quoting the document. The Converse answers
// reach the Anthropic SDK translated, plain and streaming.
func TestBedrockAPIChoice(t *testing.T) {
	c := fakecloud.Start(t)
	br := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	srv := httptest.NewTLSServer(br)
	defer srv.Close()
	doc := func(api string) secret.String {
		return cloudauth.Credential{Kind: "aws", Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: c.AWSKey.SecretAccessKey, BedrockAPI: api}.Seal()
	}
	bedrockPreset, _ := cloudauth.LookupPreset(cloudauth.PresetBedrock)
	const nova = "amazon.nova-pro-v1:0"
	for _, tc := range []struct {
		api, model, op string
	}{
		{"", bedrockModel, "invoke"},
		{"auto", "us." + bedrockModel, "invoke"},
		{"auto", nova, "converse"},
		{"converse", bedrockModel, "converse"},
		{"invoke", "us." + bedrockModel, "invoke"},
	} {
		a, err := cloudauth.New(context.Background(), bedrockPreset, mustURL(srv.URL), doc(tc.api), cloudauth.Options{HTTP: c.Client})
		if err != nil {
			t.Fatal(err)
		}
		before := len(br.Snapshot().Requests)
		checkAnthropicSDK(t, anthropicClient(srv.URL, a, c.Client.Transport), tc.model)
		got := br.Snapshot().Requests[before:]
		want := []string{"POST /model/" + tc.model + "/" + tc.op, "POST /model/" + tc.model + "/" + tc.op + "-with-response-stream"}
		if tc.op == "converse" {
			want[1] = "POST /model/" + tc.model + "/converse-stream"
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("bedrock_api %q, %s: upstream %v, want %v", tc.api, tc.model, got, want)
		}
	}
	_, err := cloudauth.New(context.Background(), bedrockPreset, mustURL(srv.URL), doc("chat"), cloudauth.Options{})
	if err == nil || !strings.Contains(err.Error(), "bedrock_api") || strings.Contains(err.Error(), c.AWSKey.SecretAccessKey) {
		t.Fatalf("bedrock_api chat: %v", err)
	}
}
