package gateway_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestLargeScrubbedErrorArrivesWhole: scrubbing an echoed key shortens the
// first window of a large error body; the rest must still follow.
func TestLargeScrubbedErrorArrivesWhole(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "big")
	pad := strings.Repeat("0123456789abcdef", (3<<20)/16)
	up := echoUpstream(t, http.StatusBadRequest, func(auth string) []byte {
		return []byte(`{"error":{"message":"bad key ` + strings.TrimPrefix(auth, "Bearer ") + `","pad":"` + pad + `"},"end":"END"}`)
	})
	g := newGateway(t, ks.verifier(), nil, upstreamAt("big", "openai", up.URL+"/v1", realKey))
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
	want := `{"error":{"message":"bad key ` + mask(realKey) + `","pad":"` + pad + `"},"end":"END"}`
	if a.status != http.StatusBadRequest || string(a.body) != want {
		t.Fatalf("status %d, %d bytes (want %d); tail %q", a.status, len(a.body), len(want), a.body[max(0, len(a.body)-12):])
	}
	if bytes.Contains(a.body, []byte(realKey)) {
		t.Fatal("the echoed key reached the client")
	}
}

// TestTrailersNeverCarryTheKey: a provider that echoes the credential in an
// HTTP trailer does not get it to the client.
func TestTrailersNeverCarryTheKey(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "trailer")
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Echo")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"chat.completion"}`))
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
	}))
	g := newGateway(t, ks.verifier(), nil, upstreamAt("t", "openai", up.URL+"/v1", realKey))
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var all bytes.Buffer
	resp.Header.Write(&all)
	resp.Trailer.Write(&all)
	all.Write(body)
	if resp.StatusCode != 200 || strings.Contains(all.String(), realKey) {
		t.Fatalf("status %d; the key reached the client: %q", resp.StatusCode, all.String())
	}
}

// TestModelIDsWithSlashesRouteBack: a provider that lists OpenRouter-style
// ids ("openai/gpt-4o-mini") gets them prefixed with its own name, so the id
// sent back reaches it with the model name it listed.
func TestModelIDsWithSlashesRouteBack(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	f := newFake(t, "openai", fakeprovider.Options{Models: []string{"openai/gpt-4o-mini", "plain-model"}})
	g := newGateway(t, ks.verifier(), nil, f.upstream("openai", "openai"))
	l := listOpenAI(t, g, key)
	if got := l.ids(); got != "openai/openai/gpt-4o-mini,plain-model" {
		t.Fatalf("ids %s", got)
	}
	for _, m := range l.Data {
		f.Reset()
		a := send(t, "POST", g.url+"/v1/chat/completions", `{"model":"`+m.ID+`","messages":[]}`, "Authorization", "Bearer "+key)
		seen := f.Requests()
		if a.status != 200 || len(seen) != 1 {
			t.Fatalf("%s: %d %s", m.ID, a.status, a.body)
		}
		want := strings.TrimPrefix(m.ID, "openai/")
		if m.ID == "plain-model" {
			want = m.ID
		}
		if !bytes.Contains(seen[0].Body, []byte(`"model":"`+want+`"`)) {
			t.Fatalf("%s reached the upstream as %s", m.ID, seen[0].Body)
		}
	}
}

// TestClientAddressClaimsAreNotForwarded: headers in which a client claims
// an address do not reach the provider.
func TestClientAddressClaimsAreNotForwarded(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	f := newFake(t, "openai", fakeprovider.Options{})
	g := newGateway(t, ks.verifier(), nil, f.upstream("openai", "openai"))
	claims := []string{"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Cluster-Client-Ip"}
	hdr := []string{"Authorization", "Bearer " + key}
	for _, h := range claims {
		hdr = append(hdr, h, "198.51.100.7")
	}
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, hdr...); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var sent bytes.Buffer
	f.Requests()[0].Header.Write(&sent)
	sc := bufio.NewScanner(&sent)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "198.51.100.7") {
			t.Fatalf("upstream saw %q", sc.Text())
		}
	}
}
