package authz

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// MCP tools are deny-by-default, like services and for the same reason: a
// tool runs with a credential from the vault (a GitHub token, a database
// URL) that is worth more than a model key.
//
// A tool is named server/tool. A key's tool list holds path.Match
// patterns over that name ("github/*", "pg/query", "*/read_*"); an entry
// starting with ! denies what it matches whatever else allows it
// ("!github/delete_*"). A server's resources and prompts are the items
// server/@resources and server/@prompts: "@" is not a character of MCP
// tool names, so these never collide with a tool, and "github/*" reaches
// them along with every tool.
//
// An access token narrows: its tool items must be within the key's
// (token exchange refuses others), a call must pass both lists, and a
// token whose scope narrows anything else but names no tool reaches no
// tool at all, as for services.

// Resources and Prompts are the tool-scope items that stand for a
// server's resources (resources/read) and prompts (prompts/get).
const (
	Resources = "@resources"
	Prompts   = "@prompts"
)

// ValidToolPattern reports why p is not a tool pattern Authorize can
// apply, or nil.
func ValidToolPattern(p string) error {
	raw := strings.TrimPrefix(p, "!")
	server, tool, ok := strings.Cut(raw, "/")
	if !ok || server == "" || tool == "" || strings.Contains(tool, "/") {
		return fmt.Errorf("%q must be SERVER/TOOL, such as github/* or github/create_issue (prefix ! to deny)", p)
	}
	if _, err := path.Match(raw, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern (use * and ? wildcards)", p)
	}
	return nil
}

// authorizeTool decides a call of tool on server.
func authorizeTool(p Principal, server, tool string) *Denial {
	name := server + "/" + tool
	if !toolAllowed(p.Tools, name) {
		return &Denial{"tool_not_allowed", fmt.Sprintf("this API key may not use MCP tool %s: tools are reachable only by keys that name them (keygate key update --allow-tool %s)", name, name)}
	}
	if tok := p.Token; tok != nil && tok.narrowsAllowances() && !toolAllowed(tok.Tools, name) {
		return &Denial{"tool_not_allowed", fmt.Sprintf("this access token may not use MCP tool %s; ask for tool:%s in its scope", name, name)}
	}
	return nil
}

// toolAllowed reports whether some allow pattern matches name and no deny
// pattern does.
func toolAllowed(patterns []string, name string) bool {
	allowed := false
	for _, p := range patterns {
		if deny, ok := strings.CutPrefix(p, "!"); ok {
			if m, _ := path.Match(deny, name); m {
				return false
			}
			continue
		}
		if !allowed {
			allowed, _ = path.Match(p, name)
		}
	}
	return allowed
}

// ToolServerAllowed reports whether p may reach anything of server at all:
// the aggregated /mcp leaves out servers of which nothing is in scope.
func ToolServerAllowed(p Principal, server string) bool {
	ok := func(patterns []string) bool {
		for _, pat := range patterns {
			if strings.HasPrefix(pat, "!") {
				continue
			}
			s, _, _ := strings.Cut(pat, "/")
			if m, _ := path.Match(s, server); m {
				return true
			}
		}
		return false
	}
	if !ok(p.Tools) {
		return false
	}
	if tok := p.Token; tok != nil && tok.narrowsAllowances() {
		return ok(tok.Tools)
	}
	return true
}

// toolsWithin reports the first requested tool pattern that reaches
// beyond the key's. Deny entries only narrow, so any is within; an allow
// entry is within when it is literal and allowed, or a pattern the key
// holds itself or that extends the literal start of a key's trailing-*
// pattern within one server ("github/list_*" inside "github/*").
func toolsWithin(granted, requested []string) error {
	for _, req := range requested {
		if err := ValidToolPattern(req); err != nil {
			return fmt.Errorf("scope item tool:%w", err)
		}
		if strings.HasPrefix(req, "!") {
			continue
		}
		if toolPatternWithin(granted, req) {
			continue
		}
		if len(granted) == 0 {
			return errors.New("scope item tool:" + req + ": this key may use no MCP tool")
		}
		return fmt.Errorf("scope item tool:%s is not within this key's tools (%s)", req, strings.Join(granted, ", "))
	}
	return nil
}

func toolPatternWithin(granted []string, req string) bool {
	if !hasWildcard(req) {
		return toolAllowed(granted, req)
	}
	for _, g := range granted {
		if strings.HasPrefix(g, "!") {
			continue
		}
		if g == req {
			return true
		}
		stem, ok := strings.CutSuffix(g, "*")
		if ok && !hasWildcard(stem) && strings.HasPrefix(req, stem) && !strings.Contains(req[len(stem):], "/") {
			return true
		}
	}
	return false
}
