package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestResponsesAPIThroughKeygate: keygate serve, with its store, serves
// the Responses API the way Codex CLI and the OpenAI SDKs use it. Over the
// WebSocket mode (the official SDK's client): a response, one continuing
// it unstored on the same socket, a model outside the key's scope refused
// as an error event. Over HTTP: compact and input_tokens. After a restart,
// the key that created a response still reads it (its owner is in the
// database) and another key still cannot. The provider sees only its real
// key, and every response is on the audit trail with its transport and
// usage.
func TestResponsesAPIThroughKeygate(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = dbURL(t)
			in := start(t, cfg, "")
			up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
			in.register(up)
			key := in.createKey("--name", "codex", "--allow-model", "gpt-4o*")
			other := in.createKey("--name", "other")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			client := func(gateway, key string) *openai.Client {
				c := openai.NewClient(option.WithBaseURL(gateway+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
				return &c
			}
			oc := client(in.addrs.Gateway, key)

			conn, err := oc.Responses.Connect(ctx, responses.ResponseConnectionOptions{},
				option.WithHeader("OpenAI-Beta", "responses_websockets=2026-02-06"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			create := func(model, previous string) (*responses.Response, error) {
				ev := responses.ResponsesClientEventResponseCreateParam{Model: model, Store: openai.Bool(false),
					Input: responses.ResponsesClientEventResponseCreateInputUnionParam{OfString: openai.String("fix the failing test")}}
				if previous != "" {
					ev.PreviousResponseID = openai.String(previous)
				}
				if err := conn.Create(ctx, ev); err != nil {
					return nil, err
				}
				return conn.FinalResponse(ctx)
			}
			first, err := create("gpt-4o-mini", "")
			if err != nil || first.OutputText() != up.openai.ReplyText() {
				t.Fatalf("a response over the WebSocket: %v %+v", err, first)
			}
			if _, err := create("gpt-4o-mini", first.ID); err != nil {
				t.Fatalf("continuing it unstored on the same socket: %v", err)
			}
			_, err = create("gpt-4.1", "")
			var pe *responses.ResponseProtocolError
			if !errors.As(err, &pe) || !strings.Contains(pe.Event.RawJSON(), `"status":403`) || !strings.Contains(pe.Event.RawJSON(), "model_not_allowed") {
				t.Fatalf("a model outside the key's scope: %v", err)
			}

			stored, err := oc.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello")}})
			if err != nil {
				t.Fatal(err)
			}
			if c, err := oc.Responses.Compact(ctx, responses.ResponseCompactParams{Model: "gpt-4o-mini", PreviousResponseID: openai.String(stored.ID)}); err != nil || c.Usage.OutputTokens == 0 {
				t.Fatalf("compact: %v %+v", err, c)
			}
			if n, err := oc.Responses.InputTokens.Count(ctx, responses.InputTokenCountParams{Model: openai.String("gpt-4o-mini"), Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("one two")}}); err != nil || n.InputTokens != 2 {
				t.Fatalf("input tokens: %v %+v", err, n)
			}

			in = in.restart(cfg)
			if got, err := client(in.addrs.Gateway, key).Responses.Get(ctx, stored.ID, responses.ResponseGetParams{}); err != nil || got.ID != stored.ID {
				t.Fatalf("the key reads its response after a restart: %v", err)
			}
			var apiErr *openai.Error
			if _, err := client(in.addrs.Gateway, other).Responses.Get(ctx, stored.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
				t.Fatalf("another key reads it: %v", err)
			}

			for _, s := range up.openai.Requests() {
				if s.Header.Get("Authorization") != "Bearer "+up.openaiKey {
					t.Fatalf("the provider saw Authorization %q on %s %s", s.Header.Get("Authorization"), s.Method, s.Path)
				}
			}
			// The trail: each WebSocket response with its usage, the refusal.
			var evs adminapi.AuditEvents
			deadline := time.Now().Add(10 * time.Second)
			for {
				decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--key", "codex", "--since", "1h"), &evs)
				var allowed, denied int
				for _, raw := range evs.Events {
					var ev struct {
						Resource, Decision string
						Reasons            []string
						Fields             map[string]string
					}
					_ = json.Unmarshal(raw, &ev)
					if ev.Resource != "POST /v1/responses" || ev.Fields["transport"] != "websocket" {
						continue
					}
					switch {
					case ev.Decision == "allow" && ev.Fields["output_tokens"] != "" && ev.Fields["output_tokens"] != "0":
						allowed++
					case ev.Decision == "deny" && len(ev.Reasons) > 0 && ev.Reasons[0] == "model_not_allowed":
						denied++
					}
				}
				if allowed == 2 && denied == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the trail has %d metered WebSocket responses and %d refusals, want 2 and 1", allowed, denied)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
