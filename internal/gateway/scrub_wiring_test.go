package gateway_test

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestKeyEchoedInASuccessIsScrubbed: a 2xx JSON body that echoes the key
// reaches the client without it, at its length.
func TestKeyEchoedInASuccessIsScrubbed(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "ok")
	up := echoUpstream(t, http.StatusOK, func(auth string) []byte {
		return []byte(`{"object":"chat.completion","debug":{"auth":"` + auth + `","b64":"` + base64.StdEncoding.EncodeToString([]byte(strings.TrimPrefix(auth, "Bearer "))) + `"}}`)
	})
	g := newGateway(t, ks.verifier(), nil, upstreamAt("ok", "openai", up.URL+"/v1", realKey))
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
	if a.status != 200 || bytes.Contains(a.body, []byte(realKey)) || bytes.Contains(a.body, []byte(base64.StdEncoding.EncodeToString([]byte(realKey)))) {
		t.Fatalf("status %d, body %s", a.status, a.body)
	}
	if cl := a.header.Get("Content-Length"); cl != strconv.Itoa(len(a.body)) {
		t.Fatalf("Content-Length %q for %d bytes", cl, len(a.body))
	}
}

// TestKeyEchoedAcrossStreamedEventsIsScrubbed: a key split across two
// flushed SSE writes never reaches the client, and the events still flow.
func TestKeyEchoedAcrossStreamedEventsIsScrubbed(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "sse")
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "text/event-stream")
		for _, part := range []string{
			"data: {\"choices\":[{\"delta\":{\"content\":\"key " + k[:len(k)/2],
			k[len(k)/2:] + "\"}}]}\n\n",
			"data: [DONE]\n\n",
		} {
			_, _ = w.Write([]byte(part))
			w.(http.Flusher).Flush()
		}
	}))
	g := newGateway(t, ks.verifier(), nil, upstreamAt("sse", "openai", up.URL+"/v1", realKey))
	a := send(t, "POST", g.url+"/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "Authorization", "Bearer "+key)
	if a.status != 200 || bytes.Contains(a.body, []byte(realKey)) || !bytes.HasSuffix(a.body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("status %d, body %q", a.status, a.body)
	}
}

// TestPassthroughBasicCredentialEchoes: a Basic service's base64 value,
// user:key and key, echoed in headers, a redirect and the body, never
// reach the client.
func TestPassthroughBasicCredentialEchoes(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	api := &recordingAPI{answer: func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		b64 := strings.TrimPrefix(auth, "Basic ")
		up, _ := base64.StdEncoding.DecodeString(b64)
		w.Header().Set("X-Echo", auth)
		w.Header().Set("Location", "https://elsewhere.example/?auth="+url.QueryEscape(b64)+"&u="+url.QueryEscape(string(up)))
		w.WriteHeader(200)
		_, _ = w.Write([]byte(`{"seen":"` + b64 + `","user":"` + string(up) + `"}`))
	}}
	cred := upstreamKey(t, "svc")
	g, _ := passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "basic", AuthUser: "acct_test", AllowPrivate: true}, cred)
	key := l.serviceKey(t, "caller", adminapi.Limits{})
	a := send(t, "GET", g.url+"/proxy/svc/v1/me", "", "Authorization", "Bearer "+key)
	if a.status != 200 || api.count() != 1 {
		t.Fatalf("status %d, %d calls reached the service", a.status, api.count())
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("acct_test:" + cred))
	all := string(a.body)
	for _, v := range a.header {
		all += strings.Join(v, " ")
	}
	for _, form := range []string{cred, b64, url.QueryEscape(b64), "acct_test:" + cred} {
		if strings.Contains(all, form) {
			t.Fatalf("status %d: %q reached the client: %s", a.status, form, all)
		}
	}
}

// TestDeflatedErrorWithTheKeyPastTheFirstMiB: a deflate error body with
// the key after its first MiB arrives plain and scrubbed.
func TestDeflatedErrorWithTheKeyPastTheFirstMiB(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "deflate")
	pad := strings.Repeat("0123456789abcdef", (1<<20)/16+10)
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var zb bytes.Buffer
		zw := zlib.NewWriter(&zb)
		_, _ = zw.Write([]byte(`{"error":{"pad":"` + pad + `","message":"bad key ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}}`))
		_ = zw.Close()
		w.Header().Set("Content-Encoding", "deflate")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(zb.Bytes())
	}))
	g := newGateway(t, ks.verifier(), nil, upstreamAt("d", "openai", up.URL+"/v1", realKey))
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
	if a.status != 401 || a.header.Get("Content-Encoding") != "" || bytes.Contains(a.body, []byte(realKey)) || !bytes.Contains(a.body, []byte(pad)) {
		t.Fatalf("status %d, Content-Encoding %q, %d bytes, key present: %v", a.status, a.header.Get("Content-Encoding"), len(a.body), bytes.Contains(a.body, []byte(realKey)))
	}
}

// TestUndecodableEncodingIsRefused: a body in an encoding keygate cannot
// decode is not passed on.
func TestUndecodableEncodingIsRefused(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "br")
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("\x0b\x02\x80 opaque brotli"))
	}))
	g := newGateway(t, ks.verifier(), nil, upstreamAt("b", "openai", up.URL+"/v1", realKey))
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
	if a.status != http.StatusBadGateway || bytes.Contains(a.body, []byte("opaque")) || !bytes.Contains(a.body, []byte(`Content-Encoding \"br\"`)) {
		t.Fatalf("status %d, body %q", a.status, a.body)
	}
}
