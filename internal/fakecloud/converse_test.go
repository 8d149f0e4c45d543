package fakecloud

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConverseGoldenBodiesPass: every Converse body keygate's translator
// writes in its golden files (internal/translate/testdata) passes the
// fake's validation, for the operation it is meant for.
func TestConverseGoldenBodiesPass(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "translate", "testdata", "m2v_req_*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden Converse requests: %v", err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(b), "error ") {
			continue
		}
		var c struct {
			Stream bool            `json:"stream"`
			Body   json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := checkConverseBody(c.Body, c.Stream); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("only %d golden Converse requests checked", n)
	}
}

// TestConverseBodyRefusals: what Bedrock's validation refuses in documents,
// cache points and guardrails, the fake refuses too.
func TestConverseBodyRefusals(t *testing.T) {
	const user = `{"messages":[{"role":"user","content":[%s]}]%s}`
	for _, tc := range []struct {
		name, block, extra string
		stream             bool
		want               string
	}{
		{"document name", `{"document":{"format":"pdf","name":"a_b.pdf","source":{"bytes":"JVBERg=="}}}`, "", false, "file name can only contain"},
		{"document double space", `{"document":{"format":"pdf","name":"a  b","source":{"bytes":"JVBERg=="}}}`, "", false, "file name can only contain"},
		{"document format", `{"document":{"format":"tiff","name":"scan","source":{"bytes":"JVBERg=="}}}`, "", false, "document.format"},
		{"document url", `{"document":{"format":"pdf","name":"a","source":{"url":"https://x"}}}`, "", false, "Malformed input request"},
		{"cache type", `{"text":"hi"},{"cachePoint":{"type":"ephemeral"}}`, "", false, "type default"},
		{"cache ttl", `{"text":"hi"},{"cachePoint":{"type":"default","ttl":"1d"}}`, "", false, "cachePoint.ttl"},
		{"guardrail mode on Converse", `{"text":"hi"}`, `,"guardrailConfig":{"guardrailIdentifier":"gr1","guardrailVersion":"1","streamProcessingMode":"async"}`, false, "streamProcessingMode"},
		{"guardrail version", `{"text":"hi"}`, `,"guardrailConfig":{"guardrailIdentifier":"gr1"}`, true, "guardrailVersion"},
	} {
		body := []byte(strings.Replace(strings.Replace(user, "%s", tc.block, 1), "%s", tc.extra, 1))
		if _, err := checkConverseBody(body, tc.stream); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := `{"messages":[{"role":"user","content":[{"document":{"format":"pdf","name":"Q3 report (final) [v2]","source":{"bytes":"JVBERg=="}}},{"cachePoint":{"type":"default","ttl":"1h"}},{"text":"hi"}]}],` +
		`"guardrailConfig":{"guardrailIdentifier":"gr1","guardrailVersion":"DRAFT","trace":"enabled","streamProcessingMode":"sync"}}`
	if _, err := checkConverseBody([]byte(ok), true); err != nil {
		t.Fatalf("a valid ConverseStream body: %v", err)
	}
}
