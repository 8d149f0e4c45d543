package cloudauth_test

import (
	"encoding/json"
	"net/url"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
