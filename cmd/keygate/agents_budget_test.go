package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/cli"
)

// TestAgentsStopWhenTheBudgetIsSpent: each real agent, run with a key
// whose lifetime budget cannot pay for its turn, gets keygate's refusal
// in its own API's shape, tells its user why, and gives up at once:
// no retry loop, no hang, and nothing upstream. Each agent's own
// default would retry a 429 five to ten times with backoff; keygate's
// refusal says no wait helps (x-should-retry: false for the OpenAI and
// Anthropic SDKs, a day's RetryInfo for Gemini CLI).
func TestAgentsStopWhenTheBudgetIsSpent(t *testing.T) {
	budget := []string{"--budget", "0.0001usd"} // lifetime: it never resets
	for _, tt := range []struct {
		agent string
		run   func(bin string) []string
		// tries is how many refused requests the agent may send: one,
		// and a second where an agent lists models or names a session
		// first; opencode retries every 429 a fixed number of times
		// whatever the answer says, as it does against OpenAI itself.
		tries int
	}{
		{"gemini", func(bin string) []string {
			return []string{bin, "--skip-trust", "-m", "gemini-2.5-flash", "-p", "Say hello."}
		}, 2},
		{"codex", func(bin string) []string {
			return []string{bin, "exec", "--skip-git-repo-check", "-m", "gpt-5", "Say hello."}
		}, 2},
		{"claude", func(bin string) []string { return []string{bin, "-p", "Say hello.", "--model", "claude-sonnet-4-5"} }, 2},
		{"opencode", func(launcher string) []string {
			return []string{filepath.Join(filepath.Dir(filepath.Dir(launcher)), "opencode-linux-x64", "bin", "opencode"), "run", "-m", "openai/gpt-5", "Say hello."}
		}, 8},
		{"openclaw", func(bin string) []string {
			return []string{bin, "agent", "--local", "--message", "Say hello.", "--model", "anthropic/claude-sonnet-4-6", "--timeout", "120"}
		}, 2},
	} {
		t.Run(tt.agent, func(t *testing.T) {
			bin, node := agentBin(t, tt.agent)
			if tt.agent == "opencode" {
				node = "" // its own binary, as in TestAgentOpencode
			}
			r := runAgentKey(t, tt.agent, node, budget, tt.run(bin)...)
			var exit *cli.ExitCodeError
			if !errors.As(r.err, &exit) || exit.Code == 0 {
				t.Errorf("the agent did not fail its turn: %v\nstdout: %s\nstderr: %s", r.err, r.stdout, r.stderr)
			}
			out := r.stdout + r.stderr
			if !strings.Contains(strings.ToLower(out), "budget") {
				t.Errorf("the agent's output does not say the budget stopped it\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
			}
			if n := r.up.openai.RequestCount() + r.up.anthropic.RequestCount() + r.gemini.fake.RequestCount(); n != 0 {
				t.Errorf("%d refused turns reached a provider", n)
			}
			// The trail is written behind the calls: count the refusals
			// once the first has landed and the trail has settled.
			var denied []string
			awaitCond(t, "the refusal on the audit trail", func() (bool, string) {
				denied = denied[:0]
				for _, ev := range auditRequests(t, r.in) {
					if ev.Decision == "deny" {
						denied = append(denied, ev.Resource+" "+strings.Join(ev.Reasons, ","))
					}
				}
				return len(denied) > 0, fmt.Sprint(denied)
			})
			time.Sleep(time.Second)
			denied = denied[:0]
			for _, ev := range auditRequests(t, r.in) {
				if ev.Decision == "deny" {
					denied = append(denied, ev.Resource+" "+strings.Join(ev.Reasons, ","))
				}
			}
			if len(denied) > tt.tries {
				t.Errorf("the agent retried a refusal no wait cures: %d refused requests %v", len(denied), denied)
			}
		})
	}
}
