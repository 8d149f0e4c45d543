package workload

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"repo:acme/app:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/main", true},
		{"repo:acme/app:*", "repo:acme/app:ref:refs/heads/main", true},
		{"repo:acme/*:environment:prod", "repo:acme/app:environment:prod", true},
		{"repo:acme/*:environment:prod", "repo:acme/app:environment:prod-eu", false},
		{"repo:acme/*", "repo:acmex/app", false},
		{"repo:acme/app:*", "repo:acme/app", false},
		{"system:serviceaccount:payments:*", "system:serviceaccount:payments:api", true},
		{"system:serviceaccount:payments:*", "system:serviceaccount:payments-x:api", false},
		{"a?c", "abc", true},
		{"a?c", "aéc", true},
		{"a?c", "ac", false},
		{"*", "", true},
		{"", "", true},
		{"", "x", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"[a]", "a", false}, // brackets are literal
		{"[a]", "[a]", true},
		{"**a", "bbba", true},
	} {
		if got := Match(tc.p, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
	// No pathological backtracking.
	long := strings.Repeat("a", 10000)
	if Match(strings.Repeat("*a", 50)+"b", long) {
		t.Fatal("matched")
	}
}

func decodeClaims(t *testing.T, s string) claims {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var c claims
	if err := d.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClaimsAndTemplates(t *testing.T) {
	c := decodeClaims(t, `{"sub":"system:serviceaccount:payments:api","repository":"acme/app","run_number":42,
		"groups":["ops","dev"],"kubernetes.io":{"namespace":"payments","serviceaccount":{"name":"api"}},
		"https://example.com/team":"core","spaced":"a b","star":"ci/*","flag":true}`)
	for _, tc := range []struct {
		path string
		pats []string
		want bool
	}{
		{"repository", []string{"acme/*"}, true},
		{"kubernetes.io/namespace", []string{"payments"}, true},
		{"kubernetes.io/serviceaccount/name", []string{"api", "worker"}, true},
		{"kubernetes.io/serviceaccount/name", []string{"worker"}, false},
		{"groups", []string{"ops"}, true},
		{"groups", []string{"admin"}, false},
		{"run_number", []string{"42"}, true},
		{"flag", []string{"true"}, true},
		{"https://example.com/team", []string{"core"}, true},
		{"missing", []string{"*"}, false},
		{"kubernetes.io", []string{"*"}, false}, // an object is no value
	} {
		if got := c.matches(tc.path, tc.pats); got != tc.want {
			t.Errorf("matches(%q, %v) = %v, want %v", tc.path, tc.pats, got, tc.want)
		}
	}
	tpl, err := parseTemplate("model:gpt-4o* secret:ci/${repository} secret:k8s/${kubernetes.io/namespace}/db rpm:${run_number}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.fill(c)
	if err != nil || got != "model:gpt-4o* secret:ci/acme/app secret:k8s/payments/db rpm:42" {
		t.Fatalf("fill = %q, %v", got, err)
	}
	if p := tpl.placeholders("x"); p != "model:gpt-4o* secret:ci/x secret:k8s/x/db rpm:x" {
		t.Fatalf("placeholders = %q", p)
	}
	// A value that would add an item, widen a pattern, or is no text is
	// refused.
	for _, s := range []string{"secret:${spaced}", "secret:${star}", "x:${groups}", "x:${kubernetes.io}", "x:${missing}"} {
		tpl, err := parseTemplate(s)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := tpl.fill(c); err == nil {
			t.Errorf("%s filled as %q", s, v)
		}
	}
	for _, s := range []string{"secret:${", "secret:${}", "secret:${a b}"} {
		if _, err := parseTemplate(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}
