package sigv4auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keygate/keygate/internal/sigv4auth"
)

func newDeriver(t *testing.T) *sigv4auth.Deriver {
	t.Helper()
	d, err := sigv4auth.NewDeriver([]byte(rand.Text() + rand.Text()))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestIssue(t *testing.T) {
	d := newDeriver(t)
	id := "key_" + hex.EncodeToString([]byte(rand.Text())[:12])
	c, err := d.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.AccessKeyID, sigv4auth.AccessKeyPrefix) || len(c.SecretAccessKey.Reveal()) != 40 {
		t.Fatalf("issued %s with a secret of %d characters", c.AccessKeyID, len(c.SecretAccessKey.Reveal()))
	}
	// Not shaped like an AWS key, so no scanner or person takes it for one.
	if regexp.MustCompile(`^(A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)`).MatchString(c.AccessKeyID) {
		t.Fatalf("%s looks like an AWS access key id", c.AccessKeyID)
	}
	if got, err := sigv4auth.KeyID(c.AccessKeyID); err != nil || got != id {
		t.Fatalf("KeyID(%s) = %q, %v; want %q", c.AccessKeyID, got, err, id)
	}
	again, _ := d.Issue(id)
	if again.AccessKeyID != c.AccessKeyID || !again.SecretAccessKey.Equal(c.SecretAccessKey) {
		t.Fatal("the same key got two pairs: the pair must be re-derivable")
	}
	other, _ := d.Issue(id + "0")
	if other.SecretAccessKey.Equal(c.SecretAccessKey) {
		t.Fatal("two keys share a secret")
	}
	if c2, _ := newDeriver(t).Issue(id); c2.SecretAccessKey.Equal(c.SecretAccessKey) {
		t.Fatal("another derivation key gave the same secret")
	}
	if _, err := d.Issue("tok_123"); err == nil {
		t.Fatal("issued credentials for something that is not a key id")
	}
	// An AWS access key id (AWS's documented example, written in pieces
	// so the source holds nothing shaped like a live key).
	awsShaped := "AKIA" + "IOSFODNN7" + "EXAMPLE"
	for _, bad := range []string{awsShaped, "KGAK1", "KGAK2MFRGG", "KGAK1mfrgg", "KGAK1MFRGG===", "KGAK1AE"} {
		if _, err := sigv4auth.KeyID(bad); err == nil {
			t.Errorf("KeyID(%q) named a key", bad)
		}
	}
	if _, err := sigv4auth.NewDeriver(make([]byte, 16)); err == nil {
		t.Fatal("a short derivation key was taken")
	}
}

// signed is how a client request is built and signed for one case.
type signed struct {
	path    string
	body    string
	headers map[string]string
	creds   aws.Credentials
	service string
	region  string
	at      time.Time
	// after runs on the signed request before it is sent: the case's
	// tampering.
	after func(r *http.Request)
}

// TestVerify signs requests with the AWS SDK's signer, as the AWS SDKs do,
// sends them over HTTP and checks Parse and Verify on the server's side.
func TestVerify(t *testing.T) {
	d := newDeriver(t)
	good, err := d.Issue("key_" + hex.EncodeToString([]byte(rand.Text())[:12]))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := d.Issue("key_" + hex.EncodeToString([]byte(rand.Text())[:12]))
	creds := aws.Credentials{AccessKeyID: good.AccessKeyID, SecretAccessKey: good.SecretAccessKey.Reveal()}
	const body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	sum := sha256.Sum256([]byte(body))
	bodyHash := hex.EncodeToString(sum[:])

	type result struct {
		s   *sigv4auth.Signed
		err error
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s, err := sigv4auth.Parse(r, "bedrock", time.Now())
		if err == nil {
			err = d.Verify(r, s, b)
		}
		results <- result{s, err}
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name     string
		req      signed
		wantType string // "" for a verified request
		wantMsg  string
	}{
		{name: "signed as the Go SDK signs", req: signed{}},
		{name: "an inference profile ARN, escaped in the path", req: signed{path: "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.anthropic.claude-3-7%3A0/converse"}},
		{name: "with x-amz-content-sha256 signed", req: signed{headers: map[string]string{"X-Amz-Content-Sha256": bodyHash}}},
		{name: "another region", req: signed{region: "eu-central-1"}},
		{name: "a query string", req: signed{path: "/model/m/invoke?b=2&a=1"}},
		{name: "the wrong secret", req: signed{creds: aws.Credentials{AccessKeyID: good.AccessKeyID, SecretAccessKey: other.SecretAccessKey.Reveal()}},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "does not match"},
		{name: "another key's id with this key's secret", req: signed{creds: aws.Credentials{AccessKeyID: other.AccessKeyID, SecretAccessKey: good.SecretAccessKey.Reveal()}},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "does not match"},
		{name: "an AWS access key", req: signed{creds: aws.Credentials{AccessKeyID: "AKIA" + strings.ToUpper(hex.EncodeToString([]byte(rand.Text())[:8])), SecretAccessKey: good.SecretAccessKey.Reveal()}},
			wantType: sigv4auth.ErrTypeUnrecognizedClient, wantMsg: "keygate key aws-credentials"},
		{name: "a tampered body", req: signed{after: func(r *http.Request) { setBody(r, strings.Replace(body, "hi", "ho", 1)) }},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "does not match"},
		{name: "a tampered body under x-amz-content-sha256", req: signed{headers: map[string]string{"X-Amz-Content-Sha256": bodyHash},
			after: func(r *http.Request) { setBody(r, strings.Replace(body, "hi", "ho", 1)) }},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "x-amz-content-sha256"},
		{name: "an unsigned payload", req: signed{headers: map[string]string{"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "x-amz-content-sha256"},
		{name: "a tampered path", req: signed{after: func(r *http.Request) { r.URL.Path = "/model/other/converse" }},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "does not match"},
		{name: "a tampered query", req: signed{path: "/model/m/invoke?a=1", after: func(r *http.Request) { r.URL.RawQuery = "a=2" }},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "does not match"},
		{name: "a tampered signed header", req: signed{after: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "does not match"},
		{name: "a signing time 20 minutes old", req: signed{at: time.Now().Add(-20 * time.Minute)},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "Signature expired"},
		{name: "a signing time 20 minutes ahead", req: signed{at: time.Now().Add(20 * time.Minute)},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "not yet current"},
		{name: "a signing time 10 minutes old", req: signed{at: time.Now().Add(-10 * time.Minute)}},
		{name: "another service", req: signed{service: "s3"},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "correct service: 'bedrock'"},
		{name: "a malformed region", req: signed{region: "US_EAST"},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "valid region"},
		{name: "a changed X-Amz-Date", req: signed{after: func(r *http.Request) {
			r.Header.Set("X-Amz-Date", time.Now().UTC().Add(-time.Minute).Format("20060102T150405Z"))
		}}, wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "does not match"},
		{name: "the scope's date not the signing date", req: signed{after: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/"+time.Now().UTC().Format("20060102")+"/", "/20200101/", 1))
		}}, wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "Date in Credential scope"},
		{name: "no signature", req: signed{after: func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:strings.Index(a, ", Signature=")])
		}}, wantType: sigv4auth.ErrTypeIncompleteSignature, wantMsg: "'Signature' parameter"},
		{name: "host left out of the signed headers", req: signed{after: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=content-length;content-type;host;", "SignedHeaders=content-length;content-type;", 1))
		}}, wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "'host' must be a 'SignedHeader'"},
		{name: "x-amz-content-sha256 sent but not signed", req: signed{after: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", bodyHash) }},
			wantType: sigv4auth.ErrTypeInvalidSignature, wantMsg: "'x-amz-content-sha256' is sent"},
		{name: "no X-Amz-Date", req: signed{after: func(r *http.Request) { r.Header.Del("X-Amz-Date") }},
			wantType: sigv4auth.ErrTypeIncompleteSignature, wantMsg: "X-Amz-Date"},
		{name: "SigV4a", req: signed{after: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1))
		}}, wantType: sigv4auth.ErrTypeIncompleteSignature, wantMsg: "SigV4a"},
		{name: "a presigned URL", req: signed{path: "/model/m/converse?X-Amz-Signature=00&X-Amz-Credential=x"},
			wantType: sigv4auth.ErrTypeIncompleteSignature, wantMsg: "presigned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req
			if r.path == "" {
				r.path = "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
			}
			if r.creds.AccessKeyID == "" {
				r.creds = creds
			}
			if r.service == "" {
				r.service = "bedrock"
			}
			if r.region == "" {
				r.region = "us-east-1"
			}
			if r.at.IsZero() {
				r.at = time.Now()
			}
			req, err := http.NewRequest(http.MethodPost, srv.URL+r.path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range r.headers {
				req.Header.Set(k, v)
			}
			if err := v4.NewSigner().SignHTTP(context.Background(), r.creds, req, bodyHash, r.service, r.region, r.at); err != nil {
				t.Fatal(err)
			}
			if r.after != nil {
				r.after(req)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := <-results
			if tc.wantType == "" {
				if got.err != nil {
					t.Fatalf("refused: %v", got.err)
				}
				if got.s.AccessKeyID != r.creds.AccessKeyID || got.s.Region != r.region {
					t.Fatalf("verified as %+v", got.s)
				}
				return
			}
			var e *sigv4auth.Error
			if !errors.As(got.err, &e) || e.Type != tc.wantType || !strings.Contains(e.Message, tc.wantMsg) {
				t.Fatalf("got %v; want %s with %q", got.err, tc.wantType, tc.wantMsg)
			}
			if strings.Contains(e.Message, good.SecretAccessKey.Reveal()) || strings.Contains(e.Message, other.SecretAccessKey.Reveal()) {
				t.Fatal("the message holds a secret")
			}
		})
	}
}

func setBody(r *http.Request, s string) {
	r.Body = io.NopCloser(bytes.NewReader([]byte(s)))
	r.ContentLength = int64(len(s))
}
