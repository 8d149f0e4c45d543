package authz

import "testing"

func TestAuthorizeTool(t *testing.T) {
	key := Grant{Tools: []string{"github/*", "!github/delete_*", "pg/query"}}
	cases := []struct {
		p            Principal
		server, tool string
		want         string
	}{
		{Principal{Grant: key}, "github", "create_issue", ""},
		{Principal{Grant: key}, "github", "delete_repo", "tool_not_allowed"},
		{Principal{Grant: key}, "github", Resources, ""},
		{Principal{Grant: key}, "pg", "query", ""},
		{Principal{Grant: key}, "pg", "drop", "tool_not_allowed"},
		{Principal{Grant: key}, "pg", Prompts, "tool_not_allowed"},
		{Principal{Grant: Grant{}}, "github", "create_issue", "tool_not_allowed"},
		// A token narrows, and cannot lift the key's deny.
		{Principal{Grant: key, Token: &Scope{Tools: []string{"github/create_issue"}}}, "github", "create_issue", ""},
		{Principal{Grant: key, Token: &Scope{Tools: []string{"github/create_issue"}}}, "github", "list_issues", "tool_not_allowed"},
		{Principal{Grant: key, Token: &Scope{Tools: []string{"github/*"}}}, "github", "delete_repo", "tool_not_allowed"},
		{Principal{Grant: key, Token: &Scope{Tools: []string{"github/*", "!github/list_*"}}}, "github", "list_issues", "tool_not_allowed"},
		// A token for models reaches no tool; an unscoped token the key's.
		{Principal{Grant: key, Token: &Scope{Models: []string{"gpt-4o"}}}, "github", "create_issue", "tool_not_allowed"},
		{Principal{Grant: key, Token: &Scope{}}, "github", "create_issue", ""},
	}
	for _, c := range cases {
		d := Authorize(c.p, Target{Kind: Tool, Provider: c.server, Model: c.tool})
		got := ""
		if d != nil {
			got = d.Code
		}
		if got != c.want {
			t.Errorf("%s/%s with %+v: %q, want %q", c.server, c.tool, c.p.Token, got, c.want)
		}
	}
	if !ToolServerAllowed(Principal{Grant: key}, "pg") || ToolServerAllowed(Principal{Grant: key}, "slack") {
		t.Error("ToolServerAllowed does not follow the key's patterns")
	}
}

func TestToolsWithin(t *testing.T) {
	key := Grant{Tools: []string{"github/*", "!github/delete_*", "pg/query"}}
	for _, ok := range [][]string{{"github/create_issue"}, {"github/list_*"}, {"github/*"}, {"pg/query"}, {"!pg/query"}} {
		if err := Within(key, Scope{Tools: ok}); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range [][]string{{"pg/*"}, {"slack/post"}, {"github/delete_repo"}, {"*/*"}, {"github"}, {"a/b/c"}} {
		if err := Within(key, Scope{Tools: bad}); err == nil {
			t.Errorf("%v is within the key's tools", bad)
		}
	}
	if err := Within(Grant{}, Scope{Tools: []string{"github/x"}}); err == nil {
		t.Error("a key with no tools granted a token one")
	}
}
