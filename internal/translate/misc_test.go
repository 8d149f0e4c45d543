package translate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMessagesToChatResponseIsDatedNow(t *testing.T) {
	out, err := MessagesToChatResponse(readTestdata(t, "m2c_resp_text.in.json"), "client-model-test")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Created int64 `json:"created"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(time.Unix(resp.Created, 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("created %d is not now", resp.Created)
	}
}

// TestUnsupportedErrorsNameTheField checks callers can tell a refusal from a
// malformed body and show the field to the user.
func TestUnsupportedErrorsNameTheField(t *testing.T) {
	_, err := ChatToMessagesRequest([]byte(`{"model":"x","n":3,"messages":[{"role":"user","content":"hi"}]}`), "m", 10)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Field != "n" || !strings.Contains(err.Error(), "set it to 1") {
		t.Fatalf("err = %v", err)
	}
	_, err = MessagesToChatRequest([]byte(`{"model":"x","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"file_fake"}}]}]}`), "m")
	if !errors.As(err, &ue) || ue.Field != "messages[0].content[0].source.type" {
		t.Fatalf("err = %v", err)
	}
	_, err = MessagesToChatRequest([]byte(`{"model":"x"`), "m")
	var ie *InvalidError
	if !errors.As(err, &ie) || errors.As(err, &ue) {
		t.Fatalf("err = %v, want *InvalidError", err)
	}
}

// TestDefaultMaxTokens checks the caller's default applies only when the
// client set no limit, and max_completion_tokens wins over max_tokens.
func TestDefaultMaxTokens(t *testing.T) {
	for body, want := range map[string]int{
		`{"messages":[{"role":"user","content":"hi"}]}`:                                                777,
		`{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`:                                 5,
		`{"max_tokens":5,"max_completion_tokens":9,"messages":[{"role":"user","content":"hi"}]}`:       9,
		`{"max_tokens":null,"max_completion_tokens":null,"messages":[{"role":"user","content":"hi"}]}`: 777,
	} {
		out, err := ChatToMessagesRequest([]byte(body), "m", 777)
		if err != nil {
			t.Fatal(err)
		}
		var req struct {
			MaxTokens int `json:"max_tokens"`
		}
		if err := json.Unmarshal(out, &req); err != nil || req.MaxTokens != want {
			t.Errorf("%s: max_tokens %d, want %d", body, req.MaxTokens, want)
		}
	}
}
