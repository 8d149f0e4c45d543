package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/store"
)

func TestKeyScopes(t *testing.T) {
	k := newKeys(t)
	up := newFake(t, "openai", fakeprovider.Options{})
	prod := up.upstream("prodai", "openai", "prod-*")
	prod.Env = "prod"
	g := newGateway(t, k.verifier(), nil, up.upstream("openai", "openai", "gpt-*", "text-embedding-*"), prod)
	embed := `{"model":"text-embedding-3-small","input":"hello"}`

	embedOnly := k.issue("embed-only", func(key *store.Key) { key.AllowPaths = []string{"POST /v1/embeddings"} })
	if a := send(t, "POST", g.url+"/v1/embeddings", embed, "Authorization", "Bearer "+embedOnly); a.status != 200 {
		t.Fatalf("embeddings with an embeddings-only key: %d %s", a.status, a.body)
	}
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+embedOnly), http.StatusForbidden); code != "path_not_allowed" {
		t.Fatalf("chat with an embeddings-only key: %q", code)
	}
	readOnly := k.issue("read-only", func(key *store.Key) { key.AllowPaths = []string{"GET /v1/models"} })
	if a := send(t, "GET", g.url+"/v1/models", "", "Authorization", "Bearer "+readOnly); a.status != 200 {
		t.Fatalf("models with a read-only key: %d", a.status)
	}
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/embeddings", embed, "Authorization", "Bearer "+readOnly), http.StatusForbidden); code != "path_not_allowed" {
		t.Fatalf("embeddings with a read-only key: %q", code)
	}

	// The test client connects from 127.0.0.1; a spoofed X-Forwarded-For
	// from that untrusted socket changes nothing.
	office := k.issue("office", func(key *store.Key) { key.AllowIPs = []string{"10.0.0.0/8", "2001:db8::/32"} })
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+office, "X-Forwarded-For", "10.1.2.3")
	if _, code := openAIError(t, a, http.StatusForbidden); code != "address_not_allowed" {
		t.Fatalf("outside the allowed networks, spoofing X-Forwarded-For: %q", code)
	}
	local := k.issue("local", func(key *store.Key) { key.AllowIPs = []string{"127.0.0.0/8"} })
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+local); a.status != 200 {
		t.Fatalf("inside the allowed network: %d", a.status)
	}

	// gatewayNow is a Sunday at 12:00 UTC.
	weekdays := k.issue("weekdays", func(key *store.Key) { key.Hours = "mon-fri 08:00-20:00 Europe/Berlin" })
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+weekdays), http.StatusForbidden); code != "outside_allowed_hours" {
		t.Fatalf("on a Sunday with a weekday key: %q", code)
	}
	weekends := k.issue("weekends", func(key *store.Key) { key.Hours = "sat,sun 10:00-16:00 Europe/Berlin" })
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+weekends); a.status != 200 {
		t.Fatalf("inside the window: %d", a.status)
	}

	// A dev key cannot reach a deployment marked prod; a prod key can.
	dev := k.issue("dev", func(key *store.Key) { key.Env = "dev" })
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/chat/completions", `{"model":"prod-model","messages":[]}`, "Authorization", "Bearer "+dev), http.StatusForbidden); code != "environment_not_allowed" {
		t.Fatalf("dev key to a prod deployment: %q", code)
	}
	prodKey := k.issue("prod", func(key *store.Key) { key.Env = "prod" })
	if a := send(t, "POST", g.url+"/v1/chat/completions", `{"model":"prod-model","messages":[]}`, "Authorization", "Bearer "+prodKey); a.status != 200 && a.status != 404 {
		t.Fatalf("prod key to a prod deployment: %d %s", a.status, a.body)
	}

	suspended := k.issue("suspended", func(key *store.Key) { at := gatewayNow.Add(-time.Minute); key.SuspendedAt = &at })
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+suspended), http.StatusForbidden); code != "key_suspended" {
		t.Fatalf("suspended key: %q", code)
	}
}
