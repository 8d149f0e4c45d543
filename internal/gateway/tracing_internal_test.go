package gateway

import "testing"

// TestResponseModel: the model an answer names is its first top-level
// "model", the model sent itself when it is that one, and "" when there
// is none or the answer is not JSON.
func TestResponseModel(t *testing.T) {
	for _, tc := range []struct{ body, sent, want string }{
		{`{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","usage":{"model":"x"}}`, "gpt-4o-mini", "gpt-4o-mini"},
		{`{"id":"c1","model":"gpt-4o-mini-2024-07-18"}`, "gpt-4o-mini", "gpt-4o-mini-2024-07-18"},
		{`{"choices":[{"model":"inner"}],"model":"outer"}`, "", "outer"},
		{`{"model":"gpt\u002d4o"}`, "gpt-4o", "gpt-4o"},
		{`{"model":"gpt\u002d4o"}`, `gpt\u002d4o`, "gpt-4o"},
		{`{"model":42}`, "", ""},
		{`{"id":"c1"}`, "gpt-4o", ""},
		{`not json`, "gpt-4o", ""},
	} {
		got := responseModel([]byte(tc.body), tc.sent)
		if got != tc.want {
			t.Errorf("responseModel(%s, %q) = %q, want %q", tc.body, tc.sent, got, tc.want)
		}
	}
}
