package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // keygate's default store, as cmd/keygate registers it
)

// TestRunInProcess runs the whole harness briefly with the servers in this
// process: every target must answer every request, and the report must carry
// each row. Throughput ratios are checked by `keygate bench --short
// --min-ratio` in CI, outside the race detector.
func TestRunInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Concurrencies: []int{4}, Round: 300 * time.Millisecond, Rounds: 2, StreamSamples: 5, NoLeakCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{Direct, Baseline, Pooled, Keygate, NoLeaks, Limited, Translated} {
		row, ok := rep.Row(target, 4)
		if !ok || row.Requests == 0 || row.Errors != 0 || row.RPS <= 0 || row.P50 <= 0 {
			t.Fatalf("%s: %+v (present %v)", target, row, ok)
		}
	}
	for _, tt := range rep.TTFB {
		if tt.P50 <= 0 || tt.TextP50 < tt.P50 {
			t.Fatalf("streaming times for %s: first byte %v, first text %v", tt.Target, tt.P50, tt.TextP50)
		}
	}
	translated := false
	for _, tt := range rep.TTFB {
		translated = translated || tt.Target == Translated
	}
	if !translated {
		t.Fatalf("no streaming times for %s: %+v", Translated, rep.TTFB)
	}
	var out bytes.Buffer
	rep.WriteMarkdown(&out)
	if !strings.Contains(out.String(), "| 4 | keygate |") || !strings.Contains(out.String(), "| 4 | "+Translated+" |") || !strings.Contains(out.String(), "Credential check at c=4") || rep.Ratio(4) <= 0 {
		t.Fatalf("report:\n%s", out.String())
	}
}

// TestTranslatedTarget sends the translated target's request once through
// a keygate whose provider for the model speaks Anthropic's dialect: the
// answer must be an OpenAI chat completion built from the Anthropic
// fake's message, with the fake's reply in it.
func TestTranslatedTarget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := launcher{dir: t.TempDir(), logs: io.Discard}
	up, err := l.upstream(ctx, "bench-anthropic-test-key", true)
	if err != nil {
		t.Fatal(err)
	}
	defer up.stop()
	kg, err := l.keygate(ctx, "keygate", variant{})
	if err != nil {
		t.Fatal(err)
	}
	defer kg.stop()
	key, err := configureTranslated(ctx, kg, up.url, "bench-anthropic-test-key")
	if err != nil {
		t.Fatal(err)
	}
	tgt := target{name: Translated, url: kg.url, keys: []string{key}, model: translatedModel}
	body, err := answer(ctx, tgt, key)
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, body)
	}
	if resp.Object != "chat.completion" || !strings.HasPrefix(resp.ID, "msg_") || resp.Model != translatedModel ||
		len(resp.Choices) != 1 || resp.Choices[0].Message.Role != "assistant" || len(resp.Choices[0].Message.Content) < 400 ||
		resp.Choices[0].FinishReason != "stop" || resp.Usage.CompletionTokens == 0 {
		t.Fatalf("not the Anthropic fake's message translated to a chat completion:\n%s", body)
	}
	// The same target against the OpenAI fake must fail the check: it is
	// what tells a translated answer from an untranslated one.
	oup, err := l.upstream(ctx, "bench-openai-test-key", false)
	if err != nil {
		t.Fatal(err)
	}
	defer oup.stop()
	if _, err := answer(ctx, target{name: Translated, url: oup.url, keys: []string{"bench-openai-test-key"}}, "bench-openai-test-key"); err == nil {
		t.Fatal("an untranslated OpenAI answer passed the translated target's check")
	}
}
