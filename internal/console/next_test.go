package console

import "testing"

// TestLocalNext: the sign-in returns only to a path of this origin, never
// to another host however the path is dressed up.
func TestLocalNext(t *testing.T) {
	for next, want := range map[string]string{
		"/oauth/authorize?client_id=mcp_1&state=x": "/oauth/authorize?client_id=mcp_1&state=x",
		"/keys":                 "/keys",
		"":                      "",
		"https://evil.example/": "",
		"//evil.example/":       "",
		"/\\evil.example/":      "",
		"/a\r\nSet-Cookie: x":   "",
		"evil":                  "",
	} {
		if got := localNext(next); got != want {
			t.Errorf("localNext(%q) = %q, want %q", next, got, want)
		}
	}
}
