package admin

import "testing"

// TestAuthorizeReturn: a single sign-on returns only to keygate's own
// authorization endpoint on this origin, however another place is
// dressed up.
func TestAuthorizeReturn(t *testing.T) {
	for next, want := range map[string]string{
		"/oauth/authorize?client_id=mcp_1&state=x%20y": "/oauth/authorize?client_id=mcp_1&state=x%20y",
		"/oauth/authorize":                        "/oauth/authorize",
		"":                                        "",
		"/keys":                                   "",
		"/oauth/authorizex?a=1":                   "",
		"/oauth/authorize/../../keys":             "",
		"/oauth/authorize%2F..%2Fkeys":            "",
		"https://evil.example/oauth/authorize":    "",
		"//evil.example/oauth/authorize":          "",
		"/\\evil.example/oauth/authorize":         "",
		"/oauth/authorize?a=1#frag":               "",
		"/oauth/authorize?a=1\r\nSet-Cookie: x=1": "",
		"/oauth/authorize\\@evil.example":         "",
	} {
		got, ok := authorizeReturn(next)
		if got != want || ok != (want != "") {
			t.Errorf("authorizeReturn(%q) = %q %v, want %q", next, got, ok, want)
		}
	}
}
