package mint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// bearerAuth sets key as the Bearer credential.
func bearerAuth(key secret.String) func(http.Header) {
	return func(h http.Header) { h.Set("Authorization", "Bearer "+key.Reveal()) }
}

// callJSON sends in (when not nil) as JSON to base+path with the
// credential auth sets and decodes a 2xx answer into out (when not nil).
// Errors name api, the method and the path, and quote the answer's error
// message (OpenAI's, OpenRouter's and Anthropic's error bodies put it at
// error.message), never the credential.
func callJSON(ctx context.Context, hc *http.Client, api, base string, auth func(http.Header), method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: %s %s: %w", api, method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", api, method, path, err)
	}
	auth(req.Header)
	req.Header.Set("Content-Type", "application/json")
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", api, method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("%s: %s %s answered %d: %s", api, method, path, resp.StatusCode, e.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s: %s %s: unreadable answer", api, method, path)
		}
	}
	return nil
}
