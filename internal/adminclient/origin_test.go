package adminclient

import (
	"errors"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

func TestOrigin(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"http://127.0.0.1:8788":             "http://127.0.0.1:8788",
		"http://127.0.0.1:8788/":            "http://127.0.0.1:8788",
		" HTTP://LocalHost:8788/keygate/ ":  "http://localhost:8788",
		"http://localhost":                  "http://localhost:80",
		"https://Keygate.Example.COM.":      "https://keygate.example.com:443",
		"https://keygate.example.com:443/x": "https://keygate.example.com:443",
		"https://keygate.example.com:8443":  "https://keygate.example.com:8443",
		"http://[::1]:8788":                 "http://[::1]:8788",
		"http://[0:0:0:0:0:0:0:1]:8788":     "http://[::1]:8788",
		"https://[2001:DB8::1]":             "https://[2001:db8::1]:443",
	}
	for in, want := range cases {
		got, err := Origin(in)
		if err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:8788", "ftp://x", "https://user:pw@x", "http://x/?q=1"} {
		if got, err := Origin(bad); err == nil {
			t.Errorf("Origin(%q) = %q, want an error", bad, got)
		}
	}
}

func TestNewRefusesPlainHTTPToAnotherMachine(t *testing.T) {
	t.Parallel()
	tok := secret.New(testToken(t))
	for _, u := range []string{
		"http://127.0.0.1:8788", "http://127.9.8.7:1", "http://localhost:8788", "http://LOCALHOST.:8788",
		"http://[::1]:8788", "http://[::ffff:127.0.0.1]:8788",
		"https://192.0.2.10:8788", "https://keygate.example.com",
	} {
		if _, err := New(u, tok); err != nil {
			t.Errorf("New(%s): %v", u, err)
		}
	}
	for _, u := range []string{
		"http://192.0.2.10:8788", "http://keygate.example.com", "http://localhost.example.com:8788",
		"http://[2001:db8::1]:8788", "http://0.0.0.0:8788", "http://[::]:8788", "http://127.0.0.1.example.com",
	} {
		_, err := New(u, tok)
		if !errors.Is(err, ErrPlainHTTP) {
			t.Errorf("New(%s): %v, want ErrPlainHTTP", u, err)
			continue
		}
		if _, err := New(u, tok, AllowPlainHTTP()); err != nil {
			t.Errorf("New(%s, AllowPlainHTTP()): %v", u, err)
		}
	}
}
