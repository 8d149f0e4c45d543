package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakecloud"
)

// gatewayHTTPClient trusts the gateway's self-signed certificate.
func gatewayHTTPClient(t *testing.T, in *instance) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(in.cfg.DataDir, "tls", "self-signed.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// sigV4BedrockClient is the official Bedrock runtime client in its default
// mode, signing every call with SigV4 with the AWS credentials given, as
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set it up, pointed at
// keygate's gateway.
func sigV4BedrockClient(t *testing.T, in *instance, c adminapi.AWSCredentials) *bedrockruntime.Client {
	t.Helper()
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(in.addrs.Gateway),
		HTTPClient:       gatewayHTTPClient(t, in),
		Credentials:      credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, ""),
		RetryMaxAttempts: 1,
	})
}

// awsCredentials asks the CLI for a key's AWS access key pair.
func (in *instance) awsCredentials(env map[string]string, ref string) adminapi.AWSCredentials {
	in.t.Helper()
	var c adminapi.AWSCredentials
	decodeJSON(in.t, in.mustCLI(env, "", "--json", "key", "aws-credentials", ref), &c)
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		in.t.Fatalf("key aws-credentials %s printed no pair", ref)
	}
	return c
}

// TestBedrockSigV4ThroughTheGateway: the official aws-sdk-go-v2 Bedrock
// runtime client, signing with SigV4 with the AWS access key pair
// `keygate key aws-credentials` printed, calls Converse, ConverseStream and
// InvokeModel through keygate, which verifies the client's signature,
// applies the bound key's scopes and limits, and signs each call upstream
// with its own cloud identity (verified by the fake Bedrock runtime). A
// wrong secret, a tampered body, a stale signing time, a revoked or
// suspended key and a model outside the key's scope are refused in
// Bedrock's own error shape, and nothing of theirs goes upstream. No real
// AWS is called.
func TestBedrockSigV4ThroughTheGateway(t *testing.T) {
	c := fakecloud.Start(t)
	fake := &fakecloud.Bedrock{Keys: &c.SM.Keys}
	in, env := converseGateway(t, fake, c)
	in.createKeyEnv(env, "--name", "claude-code")
	creds := in.awsCredentials(env, "claude-code")
	if !strings.HasPrefix(creds.AccessKeyID, "KGAK") || strings.HasPrefix(creds.AccessKeyID, "AKIA") {
		t.Fatalf("the access key id %s does not name keygate", creds.AccessKeyID)
	}
	// Handing out the pair is on the key's audit trail, naming who asked.
	until(t, "the issuance on the audit trail", func() bool {
		var evs adminapi.AuditEvents
		decodeJSON(t, in.mustCLI(env, "", "--json", "audit", "search", "--type", "key.aws_credentials_issued", "--since", "1h", "--limit", "100"), &evs)
		for _, raw := range evs.Events {
			var ev struct {
				KeyID  string            `json:"key_id"`
				Actor  string            `json:"actor"`
				Fields map[string]string `json:"fields"`
			}
			json.Unmarshal(raw, &ev)
			if ev.KeyID != "" && ev.Actor != "" && ev.Fields["access_key_id"] == creds.AccessKeyID && !strings.Contains(string(raw), creds.SecretAccessKey) {
				return true
			}
		}
		return false
	})
	// The plain form is shell exports, ready for eval.
	plain := in.mustCLI(env, "", "key", "aws-credentials", "claude-code")
	if !strings.Contains(plain, "export AWS_ACCESS_KEY_ID="+creds.AccessKeyID+"\n") || !strings.Contains(plain, "export AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey+"\n") {
		t.Fatalf("key aws-credentials printed %q", plain)
	}

	const model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
	client := sigV4BedrockClient(t, in, creds)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs := []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: "hi"}}}}

	conv, err := client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: msgs})
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	if out, ok := conv.Output.(*types.ConverseOutputMemberMessage); !ok || out.Value.Content[0].(*types.ContentBlockMemberText).Value != fakecloud.ReplyText {
		t.Fatalf("Converse answered %+v", conv.Output)
	}
	cs, err := client.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(model), Messages: msgs})
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	var text strings.Builder
	for ev := range cs.GetStream().Events() {
		if e, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
			text.WriteString(e.Value.Delta.(*types.ContentBlockDeltaMemberText).Value)
		}
	}
	if err := cs.GetStream().Close(); err != nil || text.String() != fakecloud.ReplyText {
		t.Fatalf("the converse stream: %v %q", err, text.String())
	}
	inv, err := client.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(model), ContentType: aws.String("application/json"),
		Body: []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil || !strings.Contains(string(inv.Body), fakecloud.ReplyText) {
		t.Fatalf("InvokeModel: %v", err)
	}

	// Upstream, each call carried keygate's own signature and nothing of
	// the client's: not its access key id, nor its signature.
	seen := fake.Snapshot()
	want := []string{"converse", "converse-stream", "invoke"}
	if len(seen.Requests) != len(want) {
		t.Fatalf("upstream requests %v", seen.Requests)
	}
	for i, op := range want {
		if seen.Requests[i] != "POST /model/"+model+"/"+op || seen.KeyIDs[i] != c.AWSKey.AccessKeyID {
			t.Fatalf("upstream request %d: %s signed by %s", i, seen.Requests[i], seen.KeyIDs[i])
		}
		for name, vals := range seen.Headers[i] {
			if strings.Contains(strings.Join(vals, " "), creds.AccessKeyID) {
				t.Fatalf("upstream header %s carries the client's access key id", name)
			}
		}
	}
	// The calls are the key's: metered to it.
	until(t, "the usage of the three calls", func() bool {
		var u adminapi.KeyUsage
		decodeJSON(t, in.mustCLI(env, "", "--json", "key", "usage", "claude-code"), &u)
		return len(u.Rows) == 1 && u.Rows[0].Requests == 3 && u.Rows[0].Model == model
	})

	refused := func(what string, err error, wantType, wantMsg string) {
		t.Helper()
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != wantType || !strings.Contains(apiErr.ErrorMessage(), wantMsg) {
			t.Fatalf("%s: got %v; want %s with %q", what, err, wantType, wantMsg)
		}
		if n := len(fake.Snapshot().Requests); n != len(want) {
			t.Fatalf("%s: a refused call went upstream (%d requests)", what, n)
		}
	}
	converse := func(cl *bedrockruntime.Client) error {
		_, err := cl.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(model), Messages: msgs})
		return err
	}

	// A wrong secret: Bedrock's own answer, before anything goes upstream.
	in.createKeyEnv(env, "--name", "other")
	otherCreds := in.awsCredentials(env, "other")
	wrong := creds
	wrong.SecretAccessKey = otherCreds.SecretAccessKey
	refused("a wrong secret", converse(sigV4BedrockClient(t, in, wrong)), "InvalidSignatureException", "The request signature we calculated does not match")
	// An AWS key keygate did not issue.
	foreign := creds
	foreign.AccessKeyID = "AKIA" + strings.ToUpper(hex.EncodeToString([]byte(t.Name())[:8]))
	refused("an AWS access key", converse(sigV4BedrockClient(t, in, foreign)), "UnrecognizedClientException", "security token included in the request is invalid")

	// A tampered body and a stale signing time, signed as the SDK signs
	// and sent as raw HTTP.
	hc := gatewayHTTPClient(t, in)
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	send := func(sentBody string, at time.Time) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, in.addrs.Gateway+"/model/"+strings.ReplaceAll(model, ":", "%3A")+"/converse", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256([]byte(body))
		if err := v4.NewSigner().SignHTTP(ctx, sdkCredentials(creds), req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", at); err != nil {
			t.Fatal(err)
		}
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(sentBody)), int64(len(sentBody))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Message string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), e.Message
	}
	// The request as signed goes through: the refusals below are the
	// tampering's.
	if status, typ, msg := send(body, time.Now()); status != http.StatusOK {
		t.Fatalf("a raw signed request: %d %s %q", status, typ, msg)
	}
	want = append(want, "converse")
	for _, tc := range []struct {
		what, body string
		at         time.Time
		msg        string
	}{
		{"a tampered body", strings.Replace(body, "hi", "ho", 1), time.Now(), "does not match"},
		{"a signing time 20 minutes old", body, time.Now().Add(-20 * time.Minute), "Signature expired"},
	} {
		status, typ, msg := send(tc.body, tc.at)
		if status != http.StatusForbidden || typ != "InvalidSignatureException" || !strings.Contains(msg, tc.msg) {
			t.Fatalf("%s: %d %s %q", tc.what, status, typ, msg)
		}
		if n := len(fake.Snapshot().Requests); n != len(want) {
			t.Fatalf("%s: a refused call went upstream (%d requests)", tc.what, n)
		}
	}

	// A model outside the key's scope: the key's own rules apply.
	in.createKeyEnv(env, "--name", "narrow", "--allow-model", "amazon.titan-*")
	refused("a model outside the key's scope", converse(sigV4BedrockClient(t, in, in.awsCredentials(env, "narrow"))), "AccessDeniedException", "")

	// Its limits too: one request a minute.
	in.createKeyEnv(env, "--name", "slow", "--rpm", "1")
	slow := sigV4BedrockClient(t, in, in.awsCredentials(env, "slow"))
	if err := converse(slow); err != nil {
		t.Fatalf("the first call of a key with --rpm 1: %v", err)
	}
	want = append(want, "converse")
	refused("a second call within the minute", converse(slow), "ThrottlingException", "")

	// A suspended key's pair is refused until the key is resumed; a
	// revoked key's for good, and no pair is issued for it any more.
	in.mustCLI(env, "", "key", "suspend", "claude-code")
	refused("a suspended key", converse(client), "AccessDeniedException", "suspended")
	in.mustCLI(env, "", "key", "resume", "claude-code")
	if err := converse(client); err != nil {
		t.Fatalf("a resumed key: %v", err)
	}
	want = append(want, "converse")
	in.mustCLI(env, "", "key", "revoke", "claude-code")
	refused("a revoked key", converse(client), "AccessDeniedException", "revoked")
	if _, errOut, err := in.cli(env, "", "key", "aws-credentials", "claude-code"); err == nil || !strings.Contains(errOut+err.Error(), "revoked") {
		t.Fatalf("AWS credentials were issued for a revoked key: %v %s", err, errOut)
	}

	// No secret in keygate's log.
	for _, s := range []string{creds.SecretAccessKey, otherCreds.SecretAccessKey, c.AWSKey.SecretAccessKey} {
		if strings.Contains(in.stderr.String(), s) {
			t.Fatal("a secret access key reached keygate's log")
		}
	}
}

// sdkCredentials is an issued pair as the SDK's credentials.
func sdkCredentials(c adminapi.AWSCredentials) aws.Credentials {
	return aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
}
