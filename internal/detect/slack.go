package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// SlackNotifier posts each alert to a Slack incoming webhook as a message with a text
// fallback and a section block holding the summary and the alert's fields.
type SlackNotifier struct {
	// URL is the incoming-webhook URL; it is a credential, so errors name only its host.
	URL secret.String
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Retry governs retries.
	Retry Retry
}

// Notify posts a to Slack.
func (s *SlackNotifier) Notify(ctx context.Context, a Alert) error {
	body, err := json.Marshal(SlackMessage(a))
	if err != nil {
		return fmt.Errorf("detect: slack: encode alert %s: %w", a.ID, err)
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	return postWithRetry(ctx, s.Client, s.URL, hdr, body, s.Retry, "slack")
}

// SlackMessage builds the incoming-webhook payload for a: {"text": ..., "blocks": [...]}.
func SlackMessage(a Alert) map[string]any {
	head := fmt.Sprintf("[%s] %s", strings.ToUpper(a.Severity), a.Rule)
	if a.Recovered {
		head = "[RECOVERED] " + a.Rule
	}
	field := func(name, v string) map[string]any {
		return map[string]any{"type": "mrkdwn", "text": "*" + name + "*\n" + slackEscape(v)}
	}
	fields := []map[string]any{field("Rule", a.Rule), field("Severity", a.Severity)}
	if a.KeyID != "" {
		fields = append(fields, field("Key", a.KeyID))
	}
	if a.KeyPrefix != "" {
		fields = append(fields, field("Key prefix", a.KeyPrefix))
	}
	if a.Client != "" {
		fields = append(fields, field("Client", a.Client))
	}
	fields = append(fields, field("At", a.At.UTC().Format(time.RFC3339)))
	names := make([]string, 0, len(a.Numbers))
	for k := range a.Numbers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if len(fields) == 10 { // Slack allows ten fields in a section
			break
		}
		fields = append(fields, field(k, strconv.FormatFloat(a.Numbers[k], 'g', 4, 64)))
	}
	blocks := []map[string]any{{
		"type":   "section",
		"text":   map[string]any{"type": "mrkdwn", "text": "*" + slackEscape(head) + "*\n" + slackEscape(a.Summary)},
		"fields": fields,
	}}
	if len(a.Events) > 0 {
		blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{
			{"type": "mrkdwn", "text": fmt.Sprintf("alert %s, audit events %v", slackEscape(a.ID), a.Events)},
		}})
	}
	return map[string]any{"text": head + ": " + a.Summary, "blocks": blocks}
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
