package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/gatewaystore"
	"github.com/keygate/keygate/internal/store"
)

// sdkStatus is the HTTP status of an OpenAI SDK error, 0 for none.
func sdkStatus(err error) int {
	var e *openai.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// TestResponsesEndpointsWithTheSDK: the official OpenAI Go SDK uses the
// Responses API's other endpoints through keygate. A key reads, counts,
// compacts and deletes its own responses; another key gets 404 for them
// (the same answer as for an id that does not exist) and cannot continue
// them, and nothing of it reaches the provider. A compaction is metered
// and audited with its usage; a read and a count are charged as requests,
// never as tokens.
func TestResponsesEndpointsWithTheSDK(t *testing.T) {
	e := newWSEnv(t, fakeprovider.Options{}, nil)
	ctx := context.Background()
	client := func(key string) openai.Client {
		return openai.NewClient(option.WithBaseURL(e.g.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	}
	alice, bob := client(e.keys.issue("alice", nil)), client(e.keys.issue("bob", nil))

	created, err := alice.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello there")}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := alice.Responses.Get(ctx, created.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != created.ID || got.OutputText() != e.fake.ReplyText() {
		t.Fatalf("alice reads her response: %v %+v", err, got)
	}

	before := e.fake.RequestCount()
	if _, err := bob.Responses.Get(ctx, created.ID, responses.ResponseGetParams{}); sdkStatus(err) != http.StatusNotFound {
		t.Fatalf("bob reads alice's response: %v", err)
	}
	if err := bob.Responses.Delete(ctx, created.ID); sdkStatus(err) != http.StatusNotFound {
		t.Fatalf("bob deletes alice's response: %v", err)
	}
	if _, err := bob.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", PreviousResponseID: openai.String(created.ID), Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("what did she say?")}}); sdkStatus(err) != http.StatusNotFound {
		t.Fatalf("bob continues alice's response: %v", err)
	}
	if _, err := alice.Responses.Get(ctx, "resp_made_elsewhere", responses.ResponseGetParams{}); sdkStatus(err) != http.StatusNotFound {
		t.Fatalf("an id keygate never saw: %v", err)
	}
	if n := e.fake.RequestCount(); n != before {
		t.Fatalf("%d refused requests reached the provider", n-before)
	}

	next, err := alice.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", PreviousResponseID: openai.String(created.ID), Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("go on")}})
	if err != nil || next.ID == created.ID {
		t.Fatalf("alice continues her response: %v", err)
	}
	count, err := alice.Responses.InputTokens.Count(ctx, responses.InputTokenCountParams{Model: openai.String("gpt-4o-mini"), Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("one two three")}})
	if err != nil || count.InputTokens != 3 {
		t.Fatalf("input tokens: %v %+v", err, count)
	}
	compacted, err := alice.Responses.Compact(ctx, responses.ResponseCompactParams{Model: "gpt-4o-mini", Input: responses.ResponseCompactParamsInputUnion{OfString: openai.String("a long conversation to shrink")}})
	if err != nil || len(compacted.Output) != 1 || compacted.Usage.OutputTokens == 0 {
		t.Fatalf("compact: %v %+v", err, compacted)
	}

	if err := alice.Responses.Delete(ctx, created.ID); err != nil {
		t.Fatalf("alice deletes her response: %v", err)
	}
	if _, err := alice.Responses.Get(ctx, created.ID, responses.ResponseGetParams{}); sdkStatus(err) != http.StatusNotFound {
		t.Fatalf("a deleted response: %v", err)
	}

	// The trail: each call with its key, the refusals with their reason,
	// usage only where tokens were used.
	byResource := map[string][]map[string]string{}
	for _, ev := range e.events.of("request") {
		f := map[string]string{"key": ev.KeyID, "decision": ev.Decision}
		for k, v := range ev.Fields {
			f[k] = v
		}
		if len(ev.Reasons) > 0 {
			f["reason"] = ev.Reasons[0]
		}
		byResource[ev.Resource] = append(byResource[ev.Resource], f)
	}
	compactEv := byResource["POST /v1/responses/compact"]
	if len(compactEv) != 1 || compactEv[0]["input_tokens"] != "5" || compactEv[0]["output_tokens"] != strconv.FormatInt(compacted.Usage.OutputTokens, 10) {
		t.Fatalf("compact's audit event: %v", compactEv)
	}
	countEv := byResource["POST /v1/responses/input_tokens"]
	if len(countEv) != 1 || countEv[0]["output_tokens"] != "0" || countEv[0]["input_tokens"] != "0" {
		t.Fatalf("input_tokens' audit event: %v", countEv)
	}
	reads := byResource["GET /v1/responses/"+created.ID]
	refused := map[string]int{}
	for _, f := range reads {
		if f["decision"] == "deny" {
			refused[f["key"]]++
			if f["reason"] != "response_not_found" {
				t.Fatalf("a refused read: %v", f)
			}
		} else if f["output_tokens"] != "0" || f["response_id"] != created.ID {
			t.Fatalf("a read is charged tokens: %v", f)
		}
	}
	// Bob's read, and Alice's once she deleted it.
	if refused["key_bob"] != 1 || refused["key_alice"] != 1 {
		t.Fatalf("refused reads on the trail: %v", reads)
	}
	if ev := byResource["POST /v1/responses"]; len(ev) != 3 || ev[0]["response_id"] != created.ID || ev[1]["reason"] != "response_not_found" {
		t.Fatalf("the creations' audit events: %v", ev)
	}
}

// TestResponseOwnersAreBounded: the in-memory record forgets its oldest
// responses first, and a deleted one at once.
func TestResponseOwnersAreBounded(t *testing.T) {
	ctx := context.Background()
	m := gateway.NewMemoryResponseOwners(3)
	for i := range 5 {
		if err := m.Put(ctx, "resp_"+strconv.Itoa(i), gateway.ResponseOwner{KeyID: "key_" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		o, ok, _ := m.Get(ctx, "resp_"+strconv.Itoa(i))
		if want := i >= 2; ok != want || ok && o.KeyID != "key_"+strconv.Itoa(i) {
			t.Fatalf("resp_%d: %v %+v", i, ok, o)
		}
	}
	_ = m.Delete(ctx, "resp_4")
	if _, ok, _ := m.Get(ctx, "resp_4"); ok {
		t.Fatal("a deleted response is still known")
	}
}

// TestResponseOwnersAcrossNodes: two gateway nodes sharing one database
// (the shared owner record, gatewaystore over the store): a response
// created through one is read and deleted by its key through the other,
// which had never seen it, and is still refused to another key there.
func TestResponseOwnersAcrossNodes(t *testing.T) {
	ks := newKeys(t)
	v := ks.verifier()
	f := newFake(t, "openai", fakeprovider.Options{})
	node := func() string {
		return newGatewayWith(t, v, nil, func(o *gateway.Options) {
			o.ResponseOwners = gatewaystore.NewResponseOwners(ks.st, time.Now)
		}, f.upstream("openai", "openai", "gpt-*")).url
	}
	a, b := node(), node()
	client := func(url, key string) *openai.Client {
		c := openai.NewClient(option.WithBaseURL(url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
		return &c
	}
	aliceKey, bobKey := ks.issue("alice", nil), ks.issue("bob", nil)
	ctx := context.Background()
	created, err := client(a, aliceKey).Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello")}})
	if err != nil {
		t.Fatal(err)
	}
	// The record reaches the database just after the answer: node b
	// serves the response once it is there.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := client(b, aliceKey).Responses.Get(ctx, created.ID, responses.ResponseGetParams{})
		if err == nil {
			break
		}
		if sdkStatus(err) != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("alice reads her response through the other node: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := client(b, bobKey).Responses.Get(ctx, created.ID, responses.ResponseGetParams{}); sdkStatus(err) != http.StatusNotFound {
		t.Fatalf("bob reads alice's response through the other node: %v", err)
	}
	if err := client(b, aliceKey).Responses.Delete(ctx, created.ID); err != nil {
		t.Fatalf("alice deletes her response through the other node: %v", err)
	}
	if _, err := ks.st.GetResponseOwner(ctx, created.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the deleted response is still recorded: %v", err)
	}
}
