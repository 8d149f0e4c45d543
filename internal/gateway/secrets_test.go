package gateway_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/workload"
)

// TestSecretsEndpoint: a key reads the vault secrets the configuration
// grants it and nothing else; a token of the key only what its scope
// names; a refusal is the same whether the secret exists or not, and only
// a readable name that holds no secret is a 404.
func TestSecretsEndpoint(t *testing.T) {
	e := newWorkloadEnv(t, func(string, string) []workload.Policy { return nil }, map[string][]string{"key_eso": {"prod/*"}})
	eso := e.keys.issue("eso", nil)
	plain := e.keys.issue("plain", nil)
	suspended := e.keys.issue("paused", func(k *store.Key) { at := time.Now(); k.SuspendedAt = &at })
	e.putSecret(t, "prod/db", "first-value-for-test")
	e.putSecret(t, "prod/db", "second-value-for-test")
	e.putSecret(t, "staging/db", "staging-value-for-test")

	if v := secretValue(t, e.readSecret(t, eso, "prod/db")); v.Version != 2 || v.Value != "second-value-for-test" {
		t.Fatalf("current version: %+v", v)
	}
	if v := secretValue(t, send(t, "GET", e.url+"/secrets?name=prod/db&version=1", "", "x-api-key", eso)); v.Version != 1 || v.Value != "first-value-for-test" {
		t.Fatalf("version 1: %+v", v)
	}
	for _, tc := range []struct {
		name, cred, secret string
		status             int
		code               string
	}{
		{"outside the grant", eso, "staging/db", 403, "secret_not_allowed"},
		{"outside the grant, and missing", eso, "staging/none", 403, "secret_not_allowed"},
		{"a key without grants", plain, "prod/db", 403, "secret_not_allowed"},
		{"readable but missing", eso, "prod/none", 404, "not_found"},
		{"a suspended key", suspended, "prod/db", 403, "key_suspended"},
		{"no credential", "", "prod/db", 401, "missing_api_key"},
		{"a bad credential", "kg_live_nope", "prod/db", 401, "invalid_api_key"},
		{"a bad name", eso, "prod//db", 400, "invalid_request_error"},
		{"no name", eso, "", 400, "invalid_request_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.cred != "" {
				hdr = []string{"Authorization", "Bearer " + tc.cred}
			}
			a := send(t, "GET", e.url+"/secrets?name="+url.QueryEscape(tc.secret), "", hdr...)
			msg, code := openAIError(t, a, tc.status)
			if code != tc.code {
				t.Fatalf("code %q, want %q (%s)", code, tc.code, msg)
			}
			if strings.Contains(string(a.body), "value-for-test") || tc.secret != "" && strings.Contains(msg, tc.secret) {
				t.Fatalf("the refusal tells of the secret: %s", a.body)
			}
		})
	}
	if _, code := openAIError(t, send(t, "GET", e.url+"/secrets?name=prod/db&version=7", "", "x-api-key", eso), 404); code != "not_found" {
		t.Fatalf("a missing version: %q", code)
	}
	if _, code := openAIError(t, send(t, "POST", e.url+"/secrets?name=prod/db", "{}", "x-api-key", eso), http.StatusMethodNotAllowed); code == "" {
		t.Fatal("POST was not refused with a code")
	}

	// A token of the key reads only what its scope names, within the grant.
	exchange := func(scope string) tokenAnswer {
		return e.post(t, url.Values{"grant_type": {grantExchange}, "subject_token": {eso}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "scope": {scope}})
	}
	if a := exchange("secret:staging/db"); a.status != 400 || a.Error != "invalid_scope" || !strings.Contains(a.Description, "secret:staging/db") {
		t.Fatalf("a scope beyond the grant: %+v", a)
	}
	if a := exchange("secret:prod/[a-z]b"); a.status != 400 || a.Error != "invalid_scope" {
		t.Fatalf("a character class: %+v", a)
	}
	narrow := exchange("secret:prod/db")
	if narrow.status != 200 || narrow.Scope != "secret:prod/db" {
		t.Fatalf("a narrowed token: %+v", narrow)
	}
	if v := secretValue(t, e.readSecret(t, narrow.AccessToken, "prod/db")); v.Value != "second-value-for-test" {
		t.Fatalf("the narrowed token: %+v", v)
	}
	e.putSecret(t, "prod/cache", "cache-value-for-test")
	if _, code := openAIError(t, e.readSecret(t, narrow.AccessToken, "prod/cache"), 403); code != "secret_not_allowed" {
		t.Fatalf("the narrowed token read another secret: %q", code)
	}
	models := exchange("model:gpt-4o")
	if _, code := openAIError(t, e.readSecret(t, models.AccessToken, "prod/db"), 403); code != "secret_not_allowed" {
		t.Fatalf("a token for models read a secret: %q", code)
	}

	// Every read, allowed or refused, is recorded under the secret's
	// reference; no log line or audit event names it.
	reads := e.audit.of("secret.read")
	allowed := 0
	for _, ev := range reads {
		if ev.Decision == "allow" {
			allowed++
		}
		if !strings.HasPrefix(ev.Resource, "secret ref:") || strings.Contains(ev.Resource, "prod") || ev.KeyID == "" {
			t.Fatalf("audit event %+v", ev)
		}
	}
	if allowed != 3 || len(reads) < 9 {
		t.Fatalf("%d reads recorded, %d allowed", len(reads), allowed)
	}
	if log := e.log.String(); strings.Contains(log, "prod/db") || strings.Contains(log, "value-for-test") {
		t.Fatalf("the log names a secret or holds its value:\n%s", log)
	}
}
