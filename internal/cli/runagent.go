package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/secret"
)

// An agent profile points one coding agent at the run's gateway the way
// that agent expects: the variables it reads, and where a variable is not
// enough, a settings file or a config directory made for the run, and
// the arguments that make the agent use them ahead of anything the
// repository it works in sets.

// agentAuto picks the profile from the command's name.
const agentAuto = "auto"

// agentProfile is one agent's profile.
type agentProfile struct {
	name     string
	about    string   // the agent, for help and --print-config
	commands []string // executable names that select it under --agent auto
	setup    func(s *agentSetup) error
}

// agentSetup is what a profile works with and what it produces.
type agentSetup struct {
	gw  runGateway
	dir string // the run's temporary directory (owner 0700)

	vars  []envVar
	args  []string // inserted after the command's name
	files []string // written in dir, for --print-config
	notes []string // what the user should know, printed to stderr
	// helperFile is a file the profile reads a fresh credential from; the
	// run writes it, and rewrites it each time the credential rotates.
	helperFile string
}

func (s *agentSetup) set(name string, v string) { s.vars = append(s.vars, envVar{name, secret.New(v)}) }
func (s *agentSetup) setSecret(name string, v secret.String) {
	s.vars = append(s.vars, envVar{name, v})
}

// write makes a file in the run's directory, readable only by its owner.
func (s *agentSetup) write(rel string, data []byte) (string, error) {
	p := filepath.Join(s.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("making %s: %w", filepath.Dir(p), err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", p, err)
	}
	s.files = append(s.files, p)
	return p, nil
}

// agentProfiles lists every profile, generic last.
func agentProfiles() []agentProfile {
	return []agentProfile{
		{name: "claude", about: "Claude Code", commands: []string{"claude", "claude-code"}, setup: setupClaude},
		{name: "codex", about: "Codex CLI", commands: []string{"codex"}, setup: setupCodex},
		{name: "openclaw", about: "OpenClaw", commands: []string{"openclaw", "moltbot", "clawdbot"}, setup: setupOpenClaw},
		{name: "gemini", about: "Gemini CLI", commands: []string{"gemini"}, setup: setupGemini},
		{name: "opencode", about: "opencode", commands: []string{"opencode"}, setup: setupOpencode},
		{name: "aider", about: "Aider", commands: []string{"aider"}, setup: setupAider},
		{name: "generic", about: "any OpenAI or Anthropic client", setup: setupGeneric},
	}
}

// agentNames lists the names --agent takes.
func agentNames() []string {
	names := []string{agentAuto}
	for _, p := range agentProfiles() {
		names = append(names, p.name)
	}
	return names
}

// pickProfile returns the profile named, or under auto the one whose
// command is args[0].
func pickProfile(name string, args []string) (agentProfile, error) {
	all := agentProfiles()
	if name == "" || name == agentAuto {
		if len(args) > 0 {
			base := filepath.Base(args[0])
			for _, p := range all {
				if slices.Contains(p.commands, base) {
					return p, nil
				}
			}
		}
		return all[len(all)-1], nil
	}
	for _, p := range all {
		if p.name == name {
			return p, nil
		}
	}
	return agentProfile{}, fmt.Errorf("run: --agent %q is not a profile keygate knows: use one of %s", name, strings.Join(agentNames(), ", "))
}

// commandIs reports whether the command is one of the profile's, so its
// arguments may be extended: arguments put after `npx` or `node` would go
// to the wrong program.
func commandIs(p agentProfile, args []string) bool {
	return len(args) > 0 && slices.Contains(p.commands, filepath.Base(args[0]))
}

// genericVars are the four variables every OpenAI and Anthropic SDK reads.
func (s *agentSetup) genericVars() {
	s.setSecret(envOpenAIKey, s.gw.cred)
	s.set(envOpenAIBase, s.gw.root+"/v1")
	s.setSecret(envAnthropicKey, s.gw.cred)
	s.set(envAnthropicBase, s.gw.root)
}

func setupGeneric(s *agentSetup) error {
	s.genericVars()
	return nil
}

// claudeHelperTTL is how often Claude Code asks its apiKeyHelper again;
// the run's helper credential lives twice as long.
const claudeHelperTTL = 5 * 60 * 1000

// setupClaude gives Claude Code a settings file, passed with --settings
// (which outranks the project's .claude/settings.json and
// settings.local.json), whose apiKeyHelper prints a credential the run
// rotates, and whose env pins ANTHROPIC_BASE_URL to the run's gateway.
func setupClaude(s *agentSetup) error {
	s.helperFile = filepath.Join(s.dir, "claude", "credential")
	settings := map[string]any{
		"apiKeyHelper": "cat " + shellQuote(s.helperFile),
		"env": map[string]string{
			envAnthropicBase:                    s.gw.root,
			"CLAUDE_CODE_API_KEY_HELPER_TTL_MS": strconv.Itoa(claudeHelperTTL),
		},
	}
	b, _ := json.MarshalIndent(settings, "", "  ")
	p, err := s.write(filepath.Join("claude", "settings.json"), append(b, '\n'))
	if err != nil {
		return err
	}
	s.set(envAnthropicBase, s.gw.root)
	s.set("CLAUDE_CODE_API_KEY_HELPER_TTL_MS", strconv.Itoa(claudeHelperTTL))
	s.set("DISABLE_AUTOUPDATER", "1")
	s.set("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
	s.args = []string{"--settings", p}
	return nil
}

// setupCodex gives Codex CLI its own CODEX_HOME for the run, whose
// config.toml names keygate as the model provider (Responses API, over a
// WebSocket as Codex speaks it to OpenAI: keygate serves WebSocket mode),
// and repeats the choice with -c, which outranks a project's
// .codex/config.toml. The user's ~/.codex, with any auth.json, is out of
// the agent's sight.
func setupCodex(s *agentSetup) error {
	base := s.gw.root + "/v1"
	cfg := fmt.Sprintf(`# Written by keygate run for one run; removed when it ends.
model_provider = "keygate"

[model_providers.keygate]
name = "keygate"
base_url = %s
env_key = "OPENAI_API_KEY"
wire_api = "responses"
requires_openai_auth = false
supports_websockets = true
`, strconv.Quote(base))
	if _, err := s.write(filepath.Join("codex", "config.toml"), []byte(cfg)); err != nil {
		return err
	}
	s.set("CODEX_HOME", filepath.Join(s.dir, "codex"))
	s.setSecret(envOpenAIKey, s.gw.cred)
	s.set(envOpenAIBase, base)
	s.args = []string{"-c", `model_provider="keygate"`, "-c", "model_providers.keygate.base_url=" + strconv.Quote(base)}
	return nil
}

// setupOpenClaw points OpenClaw's OpenAI and Anthropic providers at the
// run's gateway. Its built-in providers do not read the base-URL
// variables (an embedded turn went to api.anthropic.com), so the run gets
// a configuration file of its own (OPENCLAW_CONFIG_PATH) whose
// models.providers entries carry the gateway's URL, the API each speaks,
// and the key as a ${VAR} reference: the file holds no credential, and
// OpenClaw persists the reference, not its value. The variables are set
// too, for plugins that read them. The user's own openclaw.json is out of
// the run's sight; its state directory (sessions) stays where it is.
func setupOpenClaw(s *agentSetup) error {
	cfg := map[string]any{
		"models": map[string]any{
			"mode": "merge",
			"providers": map[string]any{
				"anthropic": map[string]any{"baseUrl": s.gw.root, "api": "anthropic-messages", "apiKey": "${" + envAnthropicKey + "}"},
				"openai":    map[string]any{"baseUrl": s.gw.root + "/v1", "api": "openai-responses", "apiKey": "${" + envOpenAIKey + "}"},
			},
		},
		"update": map[string]any{"checkOnStart": false},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	p, err := s.write(filepath.Join("openclaw", "openclaw.json"), append(b, '\n'))
	if err != nil {
		return err
	}
	s.set("OPENCLAW_CONFIG_PATH", p)
	s.genericVars()
	return nil
}

// setupGemini points Gemini CLI (and the Google Gen AI SDK under it) at
// the gateway's native Gemini API, through the variables it reads, which
// win over a project's .env (loaded without overriding). Gemini CLI
// takes GOOGLE_GEMINI_BASE_URL as a choice of its "gateway"
// authentication, which its headless mode (-p) refuses ("Invalid auth
// method selected"); so the run gets its own GEMINI_CLI_HOME, whose
// settings select API-key authentication (which still reads the base URL
// from the variable) and turn off usage statistics and updates. The
// user's own ~/.gemini is out of the agent's sight. Vertex AI's base URL
// is keygate's too, so a project that switches the CLI to Vertex AI
// reaches keygate, which refuses it, and not some other server.
func setupGemini(s *agentSetup) error {
	settings := map[string]any{
		"security": map[string]any{"auth": map[string]any{"selectedType": "gemini-api-key"}},
		"privacy":  map[string]any{"usageStatisticsEnabled": false},
		"general":  map[string]any{"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
	}
	b, _ := json.MarshalIndent(settings, "", "  ")
	if _, err := s.write(filepath.Join("gemini", ".gemini", "settings.json"), append(b, '\n')); err != nil {
		return err
	}
	s.set("GEMINI_CLI_HOME", filepath.Join(s.dir, "gemini"))
	s.set("GOOGLE_GEMINI_BASE_URL", s.gw.root)
	s.set("GOOGLE_VERTEX_BASE_URL", s.gw.root)
	s.setSecret("GEMINI_API_KEY", s.gw.cred)
	s.set("GOOGLE_GENAI_USE_VERTEXAI", "false")
	s.set("GOOGLE_GENAI_USE_GCA", "false")
	s.set("GEMINI_CLI_NO_RELAUNCH", "true")
	return nil
}

// setupOpencode passes opencode its provider settings inline in
// OPENCODE_CONFIG_CONTENT, which outranks every config file, the
// project's opencode.json included.
func setupOpencode(s *agentSetup) error {
	cfg := map[string]any{
		"$schema":    "https://opencode.ai/config.json",
		"autoupdate": false,
		"provider": map[string]any{
			"openai":    map[string]any{"options": map[string]any{"baseURL": s.gw.root + "/v1", "apiKey": "{env:OPENAI_API_KEY}"}},
			"anthropic": map[string]any{"options": map[string]any{"baseURL": s.gw.root + "/v1", "apiKey": "{env:ANTHROPIC_API_KEY}"}},
		},
	}
	b, _ := json.Marshal(cfg)
	s.set("OPENCODE_CONFIG_CONTENT", string(b))
	s.set("OPENCODE_DISABLE_AUTOUPDATE", "1")
	s.genericVars()
	return nil
}

// setupAider sets the variables Aider reads and passes the base URL as
// --openai-api-base too: Aider loads a repository's .env over its
// environment, but its command line wins over both.
func setupAider(s *agentSetup) error {
	s.genericVars()
	s.set("OPENAI_API_BASE", s.gw.root+"/v1")
	s.set("AIDER_CHECK_UPDATE", "false")
	s.set("AIDER_ANALYTICS", "false")
	s.args = []string{"--openai-api-base", s.gw.root + "/v1"}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
