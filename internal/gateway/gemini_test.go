package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/tracing"
)

// geminiFake is a fake of Gemini's native API registered as a provider
// of the gemini dialect, at the fake's host.
func geminiFake(t *testing.T, name string, opts fakeprovider.Options) (*fakeprovider.Server, *route.Upstream) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = upstreamKey(t, name)
	}
	f := fakeprovider.NewGemini(opts)
	t.Cleanup(f.Close)
	return f, upstreamAt(name, "gemini", serve(t, f).URL, opts.APIKey, "gemini-*")
}

const geminiBody = `{"contents":[{"role":"user","parts":[{"text":"hi there"}]}]}`

// googleError reads Google's error body.
func googleError(t *testing.T, a answer) (status, reason string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    int
			Status  string
			Details []struct{ Reason string }
		}
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Code != a.status {
		t.Fatalf("not Google's error shape: %d %s", a.status, a.body)
	}
	if len(e.Error.Details) > 0 {
		reason = e.Error.Details[0].Reason
	}
	return e.Error.Status, reason
}

// TestGeminiAliasRebuildsThePath: an alias whose deployments serve
// Gemini's API sends the call to the deployment's model, in the path,
// and fails over like any alias.
func TestGeminiAliasRebuildsThePath(t *testing.T) {
	k := newKeys(t)
	busy, busyUp := geminiFake(t, "busy", fakeprovider.Options{FailStatus: http.StatusServiceUnavailable})
	good, goodUp := geminiFake(t, "good", fakeprovider.Options{})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("busy", "busy", "gemini-2.5-pro"), deployment("good", "good", "gemini-2.5-flash")},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"busy", "good"}}},
	}
	g := aliasGateway(t, k, r, nil, busyUp, goodUp)
	key := k.issue("alias", nil)
	a := send(t, "POST", g.url+"/v1beta/models/smart:generateContent", geminiBody, "x-goog-api-key", key)
	if a.status != 200 || !strings.Contains(string(a.body), good.ReplyText()) {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if got := busy.Requests()[0].Path; got != "/v1beta/models/gemini-2.5-pro:generateContent" {
		t.Fatalf("first deployment saw %s", got)
	}
	if got := good.Requests()[0]; got.Path != "/v1beta/models/gemini-2.5-flash:generateContent" || got.Header.Get("X-Goog-Api-Key") != goodUp.Key.Reveal() {
		t.Fatalf("second deployment saw %s with its own key %v", got.Path, got.Header.Get("X-Goog-Api-Key") == goodUp.Key.Reveal())
	}
	// Reading the alias as a model answers with its name.
	a = send(t, "GET", g.url+"/v1beta/models/smart", "", "x-goog-api-key", key)
	if a.status != 200 || !strings.Contains(string(a.body), `"name":"models/smart"`) {
		t.Fatalf("get alias: %d %s", a.status, a.body)
	}
}

// TestGeminiAcrossDialects: keygate does not translate Gemini's API; a
// call across is refused with where to send it, in the caller's shape,
// and an alias of another dialect's deployments is refused too.
func TestGeminiAcrossDialects(t *testing.T) {
	k := newKeys(t)
	gem, gemUp := geminiFake(t, "google", fakeprovider.Options{})
	oa := newFake(t, "openai", fakeprovider.Options{})
	r := config.Routing{
		Deployments: []config.Deployment{deployment("gpt", "openai", "gpt-4o-mini"), deployment("flash", "google", "gemini-2.5-flash")},
		Aliases:     map[string]config.Alias{"chatty": {Deployments: []string{"gpt"}}, "mixed": {Deployments: []string{"flash", "gpt"}}},
	}
	g := aliasGateway(t, k, r, nil, gemUp, oa.upstream("openai", "openai", "gpt-*"))
	key := k.issue("across", nil)
	a := send(t, "POST", g.url+"/v1beta/models/gpt-4o-mini:generateContent", geminiBody, "x-goog-api-key", key)
	if st, reason := googleError(t, a); a.status != 400 || st != "INVALID_ARGUMENT" || reason != "WRONG_API_DIALECT" {
		t.Fatalf("a Gemini call for an OpenAI model: %d %s", a.status, a.body)
	}
	a = send(t, "POST", g.url+"/v1beta/models/chatty:generateContent", geminiBody, "x-goog-api-key", key)
	if _, reason := googleError(t, a); a.status != 400 || reason != "WRONG_API_DIALECT" {
		t.Fatalf("a Gemini call for an alias of OpenAI deployments: %d %s", a.status, a.body)
	}
	a = send(t, "POST", g.url+"/v1/chat/completions", chatFor("gemini-2.5-flash"), "Authorization", "Bearer "+key)
	if msg, code := openAIError(t, a, 400); code != "wrong_api_dialect" || !strings.Contains(msg, "generateContent") {
		t.Fatalf("an OpenAI call for a Gemini model: %q %q", msg, code)
	}
	// An OpenAI client's alias with a Gemini deployment uses only the
	// deployments it can reach.
	a = send(t, "POST", g.url+"/v1/chat/completions", chatFor("mixed"), "Authorization", "Bearer "+key)
	if a.status != 200 || gem.RequestCount() != 0 || oa.RequestCount() != 1 {
		t.Fatalf("mixed alias: %d, gemini saw %d, openai %d: %s", a.status, gem.RequestCount(), oa.RequestCount(), a.body)
	}
}

// TestGeminiQueryKeyNeverTraced: with tracing, the access log and the
// audit trail on, a ?key= credential is in no span, no log line and no
// upstream URL; the spans name Gemini's operation and route.
func TestGeminiQueryKeyNeverTraced(t *testing.T) {
	rcv := &otlpReceiver{}
	collector := httptest.NewServer(rcv)
	t.Cleanup(collector.Close)
	tp, err := tracing.New(context.Background(), tracing.Options{Endpoint: collector.URL, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	k := newKeys(t)
	gem, up := geminiFake(t, "google", fakeprovider.Options{})
	g := newGatewayWith(t, k.verifier(), nil, func(o *gateway.Options) { o.Tracer = tp.Tracer() }, up)
	key := k.issue("query", nil)
	a := send(t, "POST", g.url+"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key="+key, geminiBody)
	if a.status != 200 || strings.Count(string(a.body), "data: ") != fakeprovider.DefaultChunks {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if q := gem.Requests()[0]; q.RawQuery != "alt=sse" || q.Header.Get("X-Goog-Api-Key") != up.Key.Reveal() {
		t.Fatalf("upstream saw ?%s", q.RawQuery)
	}
	// Two keys, one in the query and one in the header, are refused.
	a = send(t, "POST", g.url+"/v1beta/models/gemini-2.5-flash:generateContent?key="+key, geminiBody, "x-goog-api-key", key+"x")
	if st, _ := googleError(t, a); a.status != 400 || st != "INVALID_ARGUMENT" || gem.RequestCount() != 1 {
		t.Fatalf("two keys: %d %s", a.status, a.body)
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.take()
	found := false
	for _, s := range spans {
		as := attrs(s.Attributes)
		for _, v := range as {
			if strings.Contains(v, key) || strings.Contains(v, up.Key.Reveal()) {
				t.Fatalf("span %q holds a credential", s.Name)
			}
		}
		if s.Name == "generate_content gemini-2.5-flash" {
			found = as["http.route"] == "/v1beta/models/{model}:streamGenerateContent" && as["gen_ai.provider.name"] == "gcp.gemini" && as["gen_ai.usage.output_tokens"] == "9"
		}
	}
	if !found {
		t.Fatalf("no generate_content span with Gemini's route, provider and usage among %v", names(spans))
	}
	if log := g.log.String(); strings.Contains(log, key) || !strings.Contains(log, "streamGenerateContent") {
		t.Fatalf("the access log holds the key, or has no line for the call:\n%s", log)
	}
}
