package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublicURL: public_url is read from the file or KEYGATE_PUBLIC_URL,
// given back as a lower-case origin, and refused with its name when it is
// not an http(s) origin.
func TestPublicURL(t *testing.T) {
	dir := t.TempDir()
	load := func(body string, env map[string]string) (Config, error) {
		p := filepath.Join(dir, "keygate.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, dir, func(k string) string { return env[k] })
		if err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	for body, want := range map[string]string{
		"listen: 127.0.0.1:8787\n":                   "",
		"public_url: https://Keygate.Example.com\n":  "https://keygate.example.com",
		"public_url: https://keygate.example.com/\n": "https://keygate.example.com",
		"public_url: http://127.0.0.1:9000\n":        "http://127.0.0.1:9000",
	} {
		c, err := load(body, nil)
		if err != nil || c.PublicOrigin() != want {
			t.Errorf("%q: %q %v, want %q", body, c.PublicOrigin(), err, want)
		}
	}
	if c, err := load("listen: 127.0.0.1:8787\n", map[string]string{"KEYGATE_PUBLIC_URL": "https://external.example"}); err != nil || c.PublicOrigin() != "https://external.example" {
		t.Errorf("KEYGATE_PUBLIC_URL: %q %v", c.PublicOrigin(), err)
	}
	for _, bad := range []string{"keygate.example.com", "ftp://keygate.example.com", "https://keygate.example.com/gw", "https://keygate.example.com?x=1",
		"https://u@keygate.example.com", "https://keygate.example.com#f", "https://"} {
		if _, err := load("public_url: "+bad+"\n", nil); err == nil || !strings.Contains(err.Error(), "public_url") {
			t.Errorf("public_url %q: %v, want an error naming public_url", bad, err)
		}
	}
}
