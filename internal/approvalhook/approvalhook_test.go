package approvalhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/secret"
)

// TestAsk: what each answer of a webhook means. Only a 200 naming the same
// approval with approve or deny decides; 202 leaves the call to the queue;
// an error status, an answer about another approval, an unknown decision
// or an oversized answer is an error naming the host, never the URL's
// token; every question is signed with the key.
func TestAsk(t *testing.T) {
	key := secret.New("approvals-webhook-test-key")
	q := mcpgate.WebhookQuestion{Approval: "apr_0123", Server: "github", Tool: "delete_repo", KeyID: "key_a", ArgsHMAC: "ab", Expires: time.Now().Add(time.Minute)}
	for _, tt := range []struct {
		name    string
		status  int
		body    string
		approve bool
		by      string
		ok      bool
		err     string
	}{
		{"approve", 200, `{"approval":"apr_0123","decision":"approve","by":"ann"}`, true, "ann", true, ""},
		{"deny", 200, `{"approval":"apr_0123","decision":"deny","by":"bob\n\u0007"}`, false, "bob", true, ""},
		{"undecided", 202, ``, false, "", false, ""},
		{"no decision yet", 200, `{"approval":"apr_0123"}`, false, "", false, ""},
		{"another approval", 200, `{"approval":"apr_9999","decision":"approve"}`, false, "", false, "not apr_0123"},
		{"unknown decision", 200, `{"approval":"apr_0123","decision":"maybe"}`, false, "", false, "want approve or deny"},
		{"not JSON", 200, `yes`, false, "", false, "not JSON"},
		{"error status", 500, `oops`, false, "", false, "HTTP 500"},
		{"oversized", 200, `{"approval":"apr_0123","by":"` + strings.Repeat("x", maxAnswer) + `"}`, false, "", false, "over"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			signed := false
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				signed = detect.VerifySignature(key, b, r.Header.Get(SignatureHeader)) && r.Header.Get("X-Keygate-Approval-Id") == "apr_0123"
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &Client{Key: func(context.Context) (secret.String, error) { return key, nil }}
			approve, by, ok, err := c.Ask(context.Background(), srv.URL+"/hook?token=hook-canary", q)
			if approve != tt.approve || by != tt.by || ok != tt.ok || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Ask = %v %q %v %v", approve, by, ok, err)
			}
			if err != nil && strings.Contains(err.Error(), "hook-canary") {
				t.Fatalf("the error names the URL's token: %v", err)
			}
			if !signed {
				t.Fatal("the question was not signed with the key")
			}
		})
	}
}
