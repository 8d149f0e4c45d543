package policy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/policy"
)

func TestAction(t *testing.T) {
	for _, tc := range []struct {
		a    policy.Action
		name string
	}{{policy.Allow, "allow"}, {policy.StepUp, "step-up"}, {policy.Deny, "deny"}} {
		if got := tc.a.String(); got != tc.name {
			t.Errorf("%d.String() = %q, want %q", tc.a, got, tc.name)
		}
		for _, in := range []string{tc.name, strings.ToUpper(tc.name), " " + tc.name + " "} {
			if got, err := policy.ParseAction(in); err != nil || got != tc.a {
				t.Errorf("ParseAction(%q) = %v, %v", in, got, err)
			}
		}
	}
	if !(policy.Allow < policy.StepUp && policy.StepUp < policy.Deny) {
		t.Error("actions are not ordered by strength")
	}
	if got := policy.Action(9).String(); got != "action(9)" {
		t.Errorf("unknown action String() = %q", got)
	}
	for _, bad := range []string{"", "block", "stepup"} {
		if _, err := policy.ParseAction(bad); err == nil || !strings.Contains(err.Error(), `"allow", "step-up" or "deny"`) {
			t.Errorf("ParseAction(%q) err = %v", bad, err)
		}
	}
}

func TestActionJSON(t *testing.T) {
	var v struct{ A, B policy.Action }
	if err := json.Unmarshal([]byte(`{"A":"step-up","B":"deny"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != policy.StepUp || v.B != policy.Deny {
		t.Fatalf("decoded %+v", v)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"A":"step-up","B":"deny"}` {
		t.Fatalf("encoded %s, %v", b, err)
	}
	if _, err := json.Marshal(policy.Action(5)); err == nil {
		t.Error("encoded an unknown action")
	}
	if err := json.Unmarshal([]byte(`{"A":"maybe"}`), &v); err == nil {
		t.Error("decoded an unknown action")
	}
}
