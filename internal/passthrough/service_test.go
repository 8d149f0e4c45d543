package passthrough

import (
	"errors"
	"strings"
	"testing"
)

func TestParseServiceAcceptsAndNormalizes(t *testing.T) {
	s := mustService(t, "stripe", "HTTPS://API.Stripe.com/", Auth{Kind: AuthBasic}, false)
	if s.BaseURL.Scheme != "https" || s.BaseURL.Host != "api.stripe.com" || s.BaseURL.Path != "" {
		t.Fatalf("base URL not normalized: %#v", s.BaseURL)
	}
	s = mustService(t, "ex-ample_2", "https://api.example.com:8443/v2/", Auth{Kind: AuthHeader, Name: "X-Api-Key"}, false)
	if s.BaseURL.Path != "/v2" || s.BaseURL.Host != "api.example.com:8443" {
		t.Fatalf("base path not trimmed: %#v", s.BaseURL)
	}
	s = mustService(t, "enc", "https://api.example.com/a%20b/", Auth{Kind: AuthBearer}, false)
	if s.BaseURL.EscapedPath() != "/a%20b" {
		t.Fatalf("escaped base path = %q", s.BaseURL.EscapedPath())
	}
	for _, a := range []Auth{
		{Kind: AuthHeader, Name: "Authorization", Prefix: "Token "},
		{Kind: AuthBearer},
		{Kind: AuthQuery, Name: "api_key"},
		{Kind: AuthBasic, User: "api"},
	} {
		mustService(t, "ok", "http://api.example.com", a, false)
	}
}

func TestParseServiceRefusesWithClearErrors(t *testing.T) {
	good := Auth{Kind: AuthBearer}
	cases := []struct {
		name, base string
		auth       Auth
		field      string
		says       string
	}{
		{"", "https://a.example", good, "name", "empty"},
		{"Stripe", "https://a.example", good, "name", "lower-case"},
		{"a/b", "https://a.example", good, "name", "lower-case"},
		{"..", "https://a.example", good, "name", "lower-case"},
		{"-x", "https://a.example", good, "name", "start with"},
		{strings.Repeat("a", 64), "https://a.example", good, "name", "longer"},
		{"s", "ftp://a.example", good, "base_url", "http or https"},
		{"s", "file:///etc/passwd", good, "base_url", "http or https"},
		{"s", "a.example/v1", good, "base_url", "http or https"},
		{"s", "https://user:pw@a.example", good, "base_url", "user info"},
		{"s", "https://a.example/v1?x=1", good, "base_url", "query"},
		{"s", "https://a.example/v1?", good, "base_url", "query"},
		{"s", "https://a.example/v1#frag", good, "base_url", "fragment"},
		{"s", "https:///v1", good, "base_url", "no host"},
		{"s", "https://a.example:99999", good, "base_url", "port"},
		{"s", "https://a.example/v1/../admin", good, "base_url", "dot segment"},
		{"s", "https://a.example/v1%2fadmin", good, "base_url", "encoded slash"},
		{"s", "https://a.example/%zz", good, "base_url", "valid URL"},
		{"s", "https://a.example", Auth{}, "auth", "no auth kind"},
		{"s", "https://a.example", Auth{Kind: "digest"}, "auth", "unknown auth kind"},
		{"s", "https://a.example", Auth{Kind: AuthHeader}, "auth", "header name"},
		{"s", "https://a.example", Auth{Kind: AuthHeader, Name: "Bad Name"}, "auth", "header name"},
		{"s", "https://a.example", Auth{Kind: AuthHeader, Name: "Host"}, "auth", "HTTP exchange"},
		{"s", "https://a.example", Auth{Kind: AuthHeader, Name: "X-K", Prefix: "a\r\nb"}, "auth", "control"},
		{"s", "https://a.example", Auth{Kind: AuthBearer, Name: "X"}, "auth", "remove"},
		{"s", "https://a.example", Auth{Kind: AuthQuery}, "auth", "parameter name"},
		{"s", "https://a.example", Auth{Kind: AuthQuery, Name: "k", User: "u"}, "auth", "no prefix or user"},
		{"s", "https://a.example", Auth{Kind: AuthBasic, User: "a:b"}, "auth", "':'"},
		{"s", "https://a.example", Auth{Kind: AuthBasic, Name: "X"}, "auth", "remove"},
	}
	for _, c := range cases {
		_, err := ParseService(c.name, c.base, c.auth, false)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("ParseService(%q, %q, %+v) = %v, want *ConfigError", c.name, c.base, c.auth, err)
			continue
		}
		if ce.Field != c.field || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseService(%q, %q, %+v): %v; want field %q and a message saying %q", c.name, c.base, c.auth, err, c.field, c.says)
		}
	}
}

func TestParseServiceDoesNotEchoURLPassword(t *testing.T) {
	_, err := ParseService("s", "https://user:"+testKey+"@a.example", Auth{Kind: AuthBearer}, false)
	if err == nil || strings.Contains(err.Error(), testKey) {
		t.Fatalf("error %v should refuse the URL without repeating its password", err)
	}
}

func TestValidateChecksFixedHeaders(t *testing.T) {
	s := mustService(t, "s", "https://a.example", Auth{Kind: AuthHeader, Name: "X-Secret"}, false)
	for _, h := range []map[string]string{
		{"Authorization": "x"},
		{"cookie": "x"},
		{"x-secret": "x"},
		{"Content-Length": "1"},
		{"Bad Name": "x"},
		{"X-Version": "a\nb"},
	} {
		s.Headers = h
		var ce *ConfigError
		if err := s.Validate(); !errors.As(err, &ce) || ce.Field != "headers" {
			t.Errorf("Headers %v: Validate = %v, want a headers *ConfigError", h, err)
		}
	}
	s.Headers = map[string]string{"Stripe-Version": "2024-06-20"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	var nilService *Service
	if err := nilService.Validate(); err == nil {
		t.Fatal("a nil service must not validate")
	}
}

func TestServiceFromPath(t *testing.T) {
	cases := []struct {
		path, name, rest string
		ok               bool
	}{
		{"/proxy/stripe/v1/charges", "stripe", "/v1/charges", true},
		{"/proxy/stripe", "stripe", "", true},
		{"/proxy/stripe/", "stripe", "/", true},
		{"/proxy/svc/../admin", "svc", "/../admin", true}, // split only; Rewrite refuses the rest
		{"/proxy/svc/a%2Fb", "svc", "/a%2Fb", true},
		{"/proxy/", "", "", false},
		{"/proxy", "", "", false},
		{"/proxy//x", "", "", false},
		{"/proxy/../x", "", "", false},
		{"/proxy/%73vc/x", "", "", false},
		{"/proxy/Svc/x", "", "", false},
		{"/other/svc/x", "", "", false},
		{"proxy/svc/x", "", "", false},
	}
	for _, c := range cases {
		name, rest, ok := ServiceFromPath(c.path)
		if name != c.name || rest != c.rest || ok != c.ok {
			t.Errorf("ServiceFromPath(%q) = %q, %q, %v; want %q, %q, %v", c.path, name, rest, ok, c.name, c.rest, c.ok)
		}
	}
}
